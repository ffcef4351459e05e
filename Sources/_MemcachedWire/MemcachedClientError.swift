/// The error every API of this memcached client throws.
///
/// `description` names the code and a message written by this client; it never contains a
/// key or a value. The server's own message and the underlying error are shown by
/// ``debugDescription`` only.
public struct MemcachedClientError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, as a small closed set of cases.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidKey
            case keyTooLong
            case valueTooLarge
            case serverError
            case clientError
            case unknownCommand
            case protocolError
            case connectionFailed
            case connectionClosed
            case timeout
            case tls
            case poolExhausted
            case shutdown
            case invalidConfiguration
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A key that memcached cannot take: empty, or holding whitespace or control characters.
        public static let invalidKey = Code(.invalidKey)
        /// A key longer than 250 bytes.
        public static let keyTooLong = Code(.keyTooLong)
        /// The server refused the value as larger than its item size limit
        /// (`SERVER_ERROR object too large for cache`), or a reply exceeded the client's limit.
        public static let valueTooLarge = Code(.valueTooLarge)
        /// The server answered `SERVER_ERROR`.
        public static let serverError = Code(.serverError)
        /// The server answered `CLIENT_ERROR`.
        public static let clientError = Code(.clientError)
        /// The server answered `ERROR` (a command it does not know).
        public static let unknownCommand = Code(.unknownCommand)
        /// The server sent something this client cannot parse, or out of order.
        public static let protocolError = Code(.protocolError)
        /// No connection could be made to the server.
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection closed while the request was in flight: its outcome is unknown.
        public static let connectionClosed = Code(.connectionClosed)
        /// A connect, send or read timeout passed.
        public static let timeout = Code(.timeout)
        /// The TLS handshake failed.
        public static let tls = Code(.tls)
        /// Every connection is busy and the backlog of waiting requests is full.
        public static let poolExhausted = Code(.poolExhausted)
        /// The client was shut down, or its `run()` is not running.
        public static let shutdown = Code(.shutdown)
        /// The configuration cannot work (no servers, an empty socket path…).
        public static let invalidConfiguration = Code(.invalidConfiguration)

        /// The code's name, e.g. `invalidKey`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A message written by this client; never holds a key or a value.
    public var message: String
    /// The server's own error text (after `SERVER_ERROR`/`CLIENT_ERROR`), if any.
    public var serverMessage: String?
    /// The error of the layer below (an I/O or TLS error…).
    public var underlying: (any Error)?
    /// Where the error was thrown.
    public var file: String
    /// Where the error was thrown.
    public var line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        message: String,
        serverMessage: String? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.serverMessage = serverMessage
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    public var description: String {
        "MemcachedClientError(code: \(code), message: \"\(message)\")"
    }

    public var debugDescription: String {
        var result = "MemcachedClientError(code: \(code), message: \"\(message)\""
        if let serverMessage { result += ", serverMessage: \"\(serverMessage)\"" }
        if let underlying { result += ", underlying: \(String(reflecting: underlying))" }
        result += ", file: \(file), line: \(line))"
        return result
    }
}
