/// The error thrown when a storage URL cannot be read or does not describe a usable store.
///
/// `description` names the code, the parameter and a message written by this project; it
/// never contains the URL, a password or a parameter's value. ``debugDescription`` adds the
/// URL with its password replaced by `***`.
public struct SessionStorageURLError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case malformedURL
            case unsupportedScheme
            case unknownParameter
            case invalidParameter
            case missingComponent
            case storeFailed
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The text is not `scheme://…` or breaks the URL syntax (bad percent escape, port…).
        public static let malformedURL = Code(.malformedURL)
        /// No factory is registered for the scheme.
        public static let unsupportedScheme = Code(.unsupportedScheme)
        /// A query parameter the scheme does not know.
        public static let unknownParameter = Code(.unknownParameter)
        /// A parameter or URL part with a value out of range (a port over 65535, `tls=maybe`…).
        public static let invalidParameter = Code(.invalidParameter)
        /// A part the scheme needs is missing (a user for `mysql://`, a master name for
        /// `redis-sentinel://`…).
        public static let missingComponent = Code(.missingComponent)
        /// The backend refused the configuration while the store was being made.
        public static let storeFailed = Code(.storeFailed)

        /// The code's name, e.g. `unknownParameter`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A message written by this project; never holds a password or a value.
    public var message: String
    /// The parameter or URL part concerned (`tls`, `port`, …), if any.
    public var parameter: String?
    /// The URL with its password redacted, shown in ``debugDescription`` only.
    public var redactedURL: String?
    /// The error of the layer below (a backend's configuration error).
    public var underlying: (any Error)?
    /// Where the error was thrown.
    public var file: String
    /// Where the error was thrown.
    public var line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        message: String,
        parameter: String? = nil,
        redactedURL: String? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.parameter = parameter
        self.redactedURL = redactedURL
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    public var description: String {
        var result = "SessionStorageURLError(code: \(code)"
        if let parameter { result += ", parameter: \(parameter)" }
        result += ", message: \"\(message)\")"
        return result
    }

    public var debugDescription: String {
        var result = "SessionStorageURLError(code: \(code)"
        if let parameter { result += ", parameter: \(parameter)" }
        result += ", message: \"\(message)\""
        if let redactedURL { result += ", url: \(redactedURL)" }
        if let underlying { result += ", underlying: \(String(reflecting: underlying))" }
        result += ", file: \(file), line: \(line))"
        return result
    }
}
