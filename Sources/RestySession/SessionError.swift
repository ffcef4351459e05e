/// The error the session core throws.
///
/// `description` names the code and a message written by this project; it never contains a
/// secret, a key, a session id, a cookie or a session value. The underlying error (e.g. a
/// ``SessionStorage/SessionStoreError``) is in ``debugDescription`` only.
public struct SessionError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case missingSecret
            case invalidConfiguration
            case invalidState
            case storageRequired
            case storageFailed
            case cookieTooLarge
            case dataTooLarge
            case clockOutOfRange
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// No `secret` and no `ikm` in the production environment: the core refuses to start
        /// rather than use a random per-process key.
        public static let missingSecret = Code(.missingSecret)
        /// A configuration value is out of range (an `ikm` that is not 32 bytes, a cookie name
        /// with separators, a negative timeout…).
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The operation is not possible in the session's state (saving a closed session,
        /// touching a session that is not open…).
        public static let invalidState = Code(.invalidState)
        /// The operation needs a storage backend (session listing and revocation).
        public static let storageRequired = Code(.storageRequired)
        /// The storage backend failed; see `underlying`.
        public static let storageFailed = Code(.storageFailed)
        /// The data does not fit into the nine 4 KiB cookies lua-resty-session allows.
        public static let cookieTooLarge = Code(.cookieTooLarge)
        /// The data exceeds the header's 24-bit data size.
        public static let dataTooLarge = Code(.dataTooLarge)
        /// The clock is outside what the header can hold (creation time ≥ 2^40, a rolling
        /// offset ≥ 2^32).
        public static let clockOutOfRange = Code(.clockOutOfRange)

        /// The code's name.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A message written by this project; never holds a secret, a key, an id or a value.
    public var message: String
    /// The error of the layer below, e.g. the storage backend's error.
    public var underlying: (any Error)?
    /// Where the error was thrown.
    public var file: String
    /// Where the error was thrown.
    public var line: Int

    /// Creates an error.
    public init(_ code: Code, message: String, underlying: (any Error)? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// The code and message; never a secret, key, id, cookie or value.
    public var description: String {
        "SessionError(code: \(code), message: \"\(message)\")"
    }

    /// The description with the underlying error (which may hold a backend's own message) and
    /// the throw site.
    public var debugDescription: String {
        var result = "SessionError(code: \(code), message: \"\(message)\""
        if let underlying { result += ", underlying: \(String(reflecting: underlying))" }
        result += ", file: \(file), line: \(line))"
        return result
    }
}

/// Why a request has no session: the cookie is missing, malformed, tampered with, signed
/// with an unknown key, expired or revoked. None of these is an error to throw; the session
/// simply starts new. The raw value is safe to log.
public enum SessionOpenFailure: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The request has no session cookie.
    case missingCookie
    /// The header is shorter than 110 characters or not base64url.
    case invalidHeader
    /// The header's type byte is not 1.
    case invalidCookieType
    /// The storage flag disagrees with the configuration (cookie vs. storage backend).
    case invalidFlags
    /// The session is older than `absoluteTimeout`.
    case absoluteTimeoutExceeded
    /// The session was not renewed within `rollingTimeout`.
    case rollingTimeoutExceeded
    /// The session was not used within `idlingTimeout`.
    case idlingTimeoutExceeded
    /// The remember cookie is older than `rememberAbsoluteTimeout`.
    case rememberAbsoluteTimeoutExceeded
    /// The remember cookie was not renewed within `rememberRollingTimeout`.
    case rememberRollingTimeoutExceeded
    /// The creation time is beyond what the header can hold.
    case lifetimeExceeded
    /// A remember cookie with a non-zero idling offset.
    case invalidIdlingOffset
    /// The header MAC matches neither the key nor any fallback key (tampered with, wrong
    /// secret, or bound to another client).
    case invalidMAC
    /// The data size needs more cookies than lua-resty-session allows.
    case invalidDataSize
    /// A chunk (`session2`, …) of a large cookie is missing.
    case missingChunk
    /// The storage backend has no record for the session: expired, revoked or destroyed.
    case notInStorage
    /// The stored record is not what the session core writes.
    case invalidStoredValue
    /// The payload's length differs from the header's data size, or is not base64url.
    case invalidPayload
    /// AES-GCM authentication of the payload failed.
    case decryptionFailed
    /// The payload is flagged as deflated but does not inflate.
    case inflateFailed
    /// The decrypted data is not the session core's JSON.
    case invalidData
    /// The cookie is valid but holds no data for the configured audience.
    case missingAudience

    /// The reason's name.
    public var description: String { rawValue }
}
