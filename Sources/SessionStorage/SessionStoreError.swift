/// The error every storage backend throws.
///
/// `description` names the code, the backend and a message written by this project; it never
/// contains a password, a session id, a cookie, a stored value or a bound SQL parameter.
/// The server's own message and the underlying error are in ``debugDescription`` only.
public struct SessionStoreError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, as a small closed set of cases to switch over.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidArgument
            case valueTooLarge
            case keyTooLong
            case connectionFailed
            case connectionClosed
            case timeout
            case authenticationFailed
            case tls
            case poolExhausted
            case serverError
            case protocolError
            case redirectionsExhausted
            case unavailable
            case shutdown
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A caller error: empty key, negative TTL, mismatched audiences and subjects, characters
        /// the backend cannot store…
        public static let invalidArgument = Code(.invalidArgument)
        /// The value does not fit: over the zone's capacity, memcached's item size, Redis's
        /// `proto-max-bulk-len`, MySQL's `max_packet_size`.
        public static let valueTooLarge = Code(.valueTooLarge)
        /// A key name over the backend's limit (memcached: 250 bytes after escaping).
        public static let keyTooLong = Code(.keyTooLong)
        /// No connection could be made to any configured server.
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection closed while a request was in flight: the request's outcome is unknown.
        public static let connectionClosed = Code(.connectionClosed)
        /// A connect, send or read timeout passed.
        public static let timeout = Code(.timeout)
        /// The server refused the credentials.
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The TLS handshake failed (unknown CA, wrong host name, server without TLS…).
        public static let tls = Code(.tls)
        /// The pool is full and its backlog too.
        public static let poolExhausted = Code(.poolExhausted)
        /// The server answered with an error.
        public static let serverError = Code(.serverError)
        /// The server sent something this client cannot parse.
        public static let protocolError = Code(.protocolError)
        /// A cluster kept redirecting past `max_redirections`.
        public static let redirectionsExhausted = Code(.redirectionsExhausted)
        /// The store is temporarily unavailable (cluster down, failover in progress, loading).
        public static let unavailable = Code(.unavailable)
        /// The store was shut down.
        public static let shutdown = Code(.shutdown)

        /// The code's name, e.g. `invalidArgument`; used as the `code` dimension of metrics.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A message written by this project; never holds a secret, a key or a value.
    public var message: String
    /// The backend that threw, e.g. `redis`, `memory`.
    public var backend: String?
    /// The server's own error message, if any (shown in ``debugDescription`` only).
    public var serverMessage: String?
    /// The error of the layer below (a wire client's error, an I/O error…).
    public var underlying: (any Error)?
    /// Where the error was thrown.
    public var file: String
    /// Where the error was thrown.
    public var line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        message: String,
        backend: String? = nil,
        serverMessage: String? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.backend = backend
        self.serverMessage = serverMessage
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    public var description: String {
        var result = "SessionStoreError(code: \(code)"
        if let backend { result += ", backend: \(backend)" }
        result += ", message: \"\(message)\")"
        return result
    }

    public var debugDescription: String {
        var result = "SessionStoreError(code: \(code)"
        if let backend { result += ", backend: \(backend)" }
        result += ", message: \"\(message)\""
        if let serverMessage { result += ", serverMessage: \"\(serverMessage)\"" }
        if let underlying { result += ", underlying: \(String(reflecting: underlying))" }
        result += ", file: \(file), line: \(line))"
        return result
    }
}
