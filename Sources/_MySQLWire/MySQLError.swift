/// The error of the MySQL / MariaDB wire client.
///
/// `description` names the code, the server's error number and SQLSTATE, and a message written
/// by this client: never a password, a bound value or SQL text. The server's own message (which
/// may quote a value) and the underlying error are in ``debugDescription`` only.
public struct MySQLError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case connectionFailed
            case connectionClosed
            case timeout
            case authenticationFailed
            case unsupportedAuthenticationPlugin
            case tls
            case protocolError
            case server
            case packetTooLarge
            case poolExhausted
            case shutdown
            case invalidArgument
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// No connection could be made (refused, unreachable, DNS…).
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection closed; a command in flight has an unknown outcome.
        public static let connectionClosed = Code(.connectionClosed)
        /// A connect, send or read timeout passed.
        public static let timeout = Code(.timeout)
        /// The server refused the credentials (server errors 1045 and 1698, or a failed auth exchange).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The server asked for an authentication plugin this client does not implement.
        public static let unsupportedAuthenticationPlugin = Code(.unsupportedAuthenticationPlugin)
        /// TLS was required but the server does not offer it, or the TLS handshake failed.
        public static let tls = Code(.tls)
        /// The server sent bytes this client cannot parse, or out of order.
        public static let protocolError = Code(.protocolError)
        /// The server answered a command with an error packet (see ``MySQLError/serverError``).
        public static let server = Code(.server)
        /// A packet over `maxPacketSize`: a command refused before sending, or a reply.
        public static let packetTooLarge = Code(.packetTooLarge)
        /// Every pooled connection is busy and the backlog is full.
        public static let poolExhausted = Code(.poolExhausted)
        /// The client was shut down.
        public static let shutdown = Code(.shutdown)
        /// The caller passed something the protocol cannot carry.
        public static let invalidArgument = Code(.invalidArgument)

        /// The code's name.
        public var description: String { base.rawValue }
    }

    /// The error packet of the server: error number, SQLSTATE and message.
    public struct ServerError: Sendable, Hashable {
        /// The server's error number, e.g. 1062 (duplicate entry).
        public var errorCode: UInt16
        /// The five-character SQLSTATE, e.g. `23000`.
        public var sqlState: String
        /// The server's message; may quote values, so it only appears in `debugDescription`.
        public var message: String

        /// Creates a server error.
        public init(errorCode: UInt16, sqlState: String, message: String) {
            self.errorCode = errorCode
            self.sqlState = sqlState
            self.message = message
        }
    }

    /// What went wrong.
    public var code: Code
    /// A message written by this client; never holds a secret or a value.
    public var message: String
    /// The server's error packet, if the server sent one.
    public var serverError: ServerError?
    /// The error of the layer below (I/O, TLS…).
    public var underlying: (any Error)?
    /// Where the error was created.
    public var file: String
    /// Where the error was created.
    public var line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        message: String,
        serverError: ServerError? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.serverError = serverError
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// The server's error number, if the server sent an error packet.
    public var errorCode: UInt16? { serverError?.errorCode }
    /// The SQLSTATE, if the server sent an error packet.
    public var sqlState: String? { serverError?.sqlState }

    /// An error for a server error packet: ``Code/authenticationFailed`` for 1045 (access denied)
    /// and 1698 (access denied without password), ``Code/server`` otherwise.
    static func server(_ packet: ServerError, during what: String) -> MySQLError {
        switch packet.errorCode {
        case 1045, 1698:
            return MySQLError(.authenticationFailed, message: "access denied", serverError: packet)
        default:
            return MySQLError(.server, message: "the server refused \(what)", serverError: packet)
        }
    }

    public var description: String {
        var result = "MySQLError(code: \(code)"
        if let serverError {
            result += ", errorCode: \(serverError.errorCode), sqlState: \(serverError.sqlState)"
        }
        result += ", message: \"\(message)\")"
        return result
    }

    public var debugDescription: String {
        var result = "MySQLError(code: \(code)"
        if let serverError {
            result += ", errorCode: \(serverError.errorCode), sqlState: \(serverError.sqlState)"
            result += ", serverMessage: \"\(serverError.message)\""
        }
        result += ", message: \"\(message)\""
        if let underlying { result += ", underlying: \(String(reflecting: underlying))" }
        result += ", file: \(file), line: \(line))"
        return result
    }
}
