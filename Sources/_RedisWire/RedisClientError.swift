/// The error of the Redis wire client.
///
/// `description` names the code, a message written by this client and, for server errors, the
/// error prefix (`WRONGTYPE`, `MOVED`…); it never holds a password, a key or a value. The
/// server's full message and the underlying error are in ``debugDescription``.
public struct RedisClientError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case connectionFailed
            case connectionClosed
            case timeout
            case authenticationFailed
            case tls
            case protocolError
            case serverError
            case poolExhausted
            case shutdown
            case sentinel
            case transactionAborted
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// No connection could be made (refused, unreachable, resolution failed).
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection closed while a request was in flight: its outcome is unknown.
        public static let connectionClosed = Code(.connectionClosed)
        /// A connect, send or read timeout passed.
        public static let timeout = Code(.timeout)
        /// The server refused the credentials (`WRONGPASS`, `NOAUTH`, `NOPERM` on `HELLO`/`AUTH`).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The TLS handshake failed (unknown CA, wrong host name, server without TLS…).
        public static let tls = Code(.tls)
        /// The server sent bytes that are not RESP, or a reply of an unexpected shape.
        public static let protocolError = Code(.protocolError)
        /// The server answered with an error reply; see ``RedisClientError/serverError``.
        public static let serverError = Code(.serverError)
        /// The pool and its backlog are full.
        public static let poolExhausted = Code(.poolExhausted)
        /// The client was shut down.
        public static let shutdown = Code(.shutdown)
        /// No Sentinel could name a master, or the named node is not a master.
        public static let sentinel = Code(.sentinel)
        /// `EXEC` answered nil (a watched key changed) or `EXECABORT`.
        public static let transactionAborted = Code(.transactionAborted)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A message written by this client; never holds a secret, a key or a value.
    public var message: String
    /// The server's error reply, for ``Code/serverError`` and failed handshakes.
    public var serverError: RESPError?
    /// The error of the layer below (an I/O error, a TLS error, a decoding error…).
    public var underlying: (any Error)?
    /// Whether the request never left this process (the connection was closed before it was
    /// written): it is then safe to retry on another connection.
    public var requestWasNotSent: Bool = false
    /// Where the error was thrown.
    public var file: String
    /// Where the error was thrown.
    public var line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        message: String,
        serverError: RESPError? = nil,
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

    /// The server's error prefix (`WRONGTYPE`, `MOVED`, `ASK`, `READONLY`, `ERR`…), if any.
    public var serverErrorPrefix: String? {
        serverError.map { String($0.prefix) }
    }

    public var description: String {
        var result = "RedisClientError(code: \(code), message: \"\(message)\""
        if let prefix = serverErrorPrefix { result += ", serverError: \(prefix)" }
        return result + ")"
    }

    public var debugDescription: String {
        var result = "RedisClientError(code: \(code), message: \"\(message)\""
        if let serverError { result += ", serverMessage: \"\(serverError.message)\"" }
        if let underlying { result += ", underlying: \(String(reflecting: underlying))" }
        return result + ", file: \(file), line: \(line))"
    }

    /// The error of a server's error reply.
    static func server(_ error: RESPError, file: String = #fileID, line: Int = #line) -> RedisClientError {
        RedisClientError(.serverError, message: "the server answered with an error", serverError: error, file: file, line: line)
    }
}
