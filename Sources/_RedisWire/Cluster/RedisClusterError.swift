/// An error of the cluster client that no single node reported.
///
/// `description` names the code, a message of this client and the nodes tried (addresses only);
/// it never holds a key or a value. The last node error is ``underlying``.
public struct RedisClusterError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case noReachableNode
            case tooManyRedirections
            case crossSlot
            case noTopology
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// No node could be reached within `maxConnectionAttempts` / `maxConnectionTimeout`;
        /// ``RedisClusterError/nodesTried`` names the nodes.
        public static let noReachableNode = Code(.noReachableNode)
        /// `MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN` or `LOADING` came more than
        /// `maxRedirections` times for one request.
        public static let tooManyRedirections = Code(.tooManyRedirections)
        /// The keys of one command, pipeline group or transaction hash to different slots.
        public static let crossSlot = Code(.crossSlot)
        /// No node answered `CLUSTER SHARDS` / `CLUSTER SLOTS` with a usable map, or no node
        /// serves the slot.
        public static let noTopology = Code(.noTopology)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A message of this client; never a key or a value.
    public var message: String
    /// The nodes tried, in order (for ``Code/noReachableNode`` and ``Code/noTopology``).
    public var nodesTried: [RedisAddress]
    /// The last redirection or error reply seen (for ``Code/tooManyRedirections``).
    public var serverError: RESPError?
    /// The last error of a node.
    public var underlying: (any Error)?
    /// Where the error was thrown.
    public var file: String
    /// Where the error was thrown.
    public var line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        message: String,
        nodesTried: [RedisAddress] = [],
        serverError: RESPError? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.nodesTried = nodesTried
        self.serverError = serverError
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    public var description: String {
        var result = "RedisClusterError(code: \(code), message: \"\(message)\""
        if !nodesTried.isEmpty { result += ", nodesTried: [\(nodesTried.map(\.description).joined(separator: ", "))]" }
        if let serverError { result += ", serverError: \(serverError.prefix)" }
        return result + ")"
    }

    public var debugDescription: String {
        var result = description.dropLast() + ""
        if let serverError { result += ", serverMessage: \"\(serverError.message)\"" }
        if let underlying { result += ", underlying: \(String(reflecting: underlying))" }
        return result + ", file: \(file), line: \(line))"
    }
}
