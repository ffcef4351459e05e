import NIOCore

/// One Redis command: its name, its arguments, and which arguments are keys.
///
/// Commands are small values built by the caller (see the static factories). They name the
/// keys they touch, so a cluster client can route a command to the node owning its hash slot,
/// and so logs can leave keys out.
public struct RedisCommand: Sendable, Hashable, CustomStringConvertible {
    /// The command name, e.g. `SET` (sub-commands such as `CONFIG GET` are a name and a first argument).
    public var name: String
    /// The arguments after the name.
    public var arguments: [RedisArgument]
    /// The positions in ``arguments`` that are key names.
    public var keyIndices: [Int]

    /// Creates a command.
    ///
    /// - Parameters:
    ///   - name: the command, e.g. `ZADD`.
    ///   - arguments: the arguments after the name.
    ///   - keyIndices: the positions in `arguments` that are keys.
    public init(_ name: String, _ arguments: [RedisArgument] = [], keyIndices: [Int] = []) {
        precondition(keyIndices.allSatisfy { arguments.indices.contains($0) }, "a key index is outside the arguments")
        self.name = name
        self.arguments = arguments
        self.keyIndices = keyIndices
    }

    /// The key arguments, in order.
    public var keys: [RedisArgument] {
        keyIndices.map { arguments[$0] }
    }

    /// The command name only: arguments may be keys, values or passwords.
    public var description: String { name }

    /// About the bytes the command takes in RESP (an upper bound for all but huge integers),
    /// to size a write buffer once.
    var estimatedWireSize: Int {
        var size = 16 + name.utf8.count
        for argument in arguments {
            size += 16 + argument.estimatedByteCount
        }
        return size
    }
}

/// One argument of a command, sent as a RESP bulk string.
public struct RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    enum Storage: Sendable, Hashable {
        case string(String)
        case bytes(ByteBuffer)
        case integer(Int)
    }

    let storage: Storage

    /// A text argument, sent as its UTF-8 bytes.
    public init(_ string: String) { storage = .string(string) }
    /// A binary argument, sent verbatim.
    public init(_ bytes: ByteBuffer) { storage = .bytes(bytes) }
    /// An integer argument, sent as decimal text.
    public init(_ integer: Int) { storage = .integer(integer) }
    /// A text argument.
    public init(stringLiteral value: String) { storage = .string(value) }
    /// An integer argument.
    public init(integerLiteral value: Int) { storage = .integer(value) }

    /// The number of bytes the argument takes on the wire (its bulk string's length).
    public var byteCount: Int {
        switch storage {
        case .string(let string): return string.utf8.count
        case .bytes(let bytes): return bytes.readableBytes
        case .integer(let integer): return String(integer).utf8.count
        }
    }

    /// ``byteCount`` without formatting an integer.
    var estimatedByteCount: Int {
        switch storage {
        case .string(let string): return string.utf8.count
        case .bytes(let bytes): return bytes.readableBytes
        case .integer: return 20
        }
    }

    /// The argument's bytes as text (for routing and tests; never logged).
    public var text: String {
        switch storage {
        case .string(let string): return string
        case .bytes(let bytes): return String(buffer: bytes)
        case .integer(let integer): return String(integer)
        }
    }
}

extension RedisCommand {
    /// `PING`
    public static func ping() -> RedisCommand { RedisCommand("PING") }

    /// `GET key`
    public static func get(_ key: String) -> RedisCommand { RedisCommand("GET", [.init(key)], keyIndices: [0]) }

    /// `SET key value [EX seconds]`
    public static func set(_ key: String, _ value: String, expireSeconds: Int? = nil) -> RedisCommand {
        // One array literal each: no growth of the argument array on the hot path.
        if let expireSeconds {
            return RedisCommand("SET", [.init(key), .init(value), "EX", .init(expireSeconds)], keyIndices: [0])
        }
        return RedisCommand("SET", [.init(key), .init(value)], keyIndices: [0])
    }

    /// `DEL key…`
    public static func del(_ keys: [String]) -> RedisCommand {
        RedisCommand("DEL", keys.map { .init($0) }, keyIndices: Array(keys.indices))
    }

    /// `UNLINK key…`
    public static func unlink(_ keys: [String]) -> RedisCommand {
        RedisCommand("UNLINK", keys.map { .init($0) }, keyIndices: Array(keys.indices))
    }

    /// `SELECT index`
    public static func select(_ database: Int) -> RedisCommand { RedisCommand("SELECT", [.init(database)]) }

    /// `ROLE`
    public static func role() -> RedisCommand { RedisCommand("ROLE") }

    /// `MULTI`
    public static func multi() -> RedisCommand { RedisCommand("MULTI") }

    /// `EXEC`
    public static func exec() -> RedisCommand { RedisCommand("EXEC") }

    /// `DISCARD`
    public static func discard() -> RedisCommand { RedisCommand("DISCARD") }

    /// `AUTH [username] password`
    public static func auth(username: String?, password: String) -> RedisCommand {
        RedisCommand("AUTH", (username.map { [RedisArgument($0)] } ?? []) + [.init(password)])
    }

    /// `HELLO protover [AUTH username password] [SETNAME clientname]`; without a username,
    /// `default` is sent (the user `requirepass` configures).
    public static func hello(protocolVersion: Int, username: String?, password: String?, clientName: String? = nil) -> RedisCommand {
        var arguments: [RedisArgument] = [.init(protocolVersion)]
        if let password {
            arguments += ["AUTH", .init(username ?? "default"), .init(password)]
        }
        if let clientName {
            arguments += ["SETNAME", .init(clientName)]
        }
        return RedisCommand("HELLO", arguments)
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME name`
    public static func sentinelGetMasterAddress(name: String) -> RedisCommand {
        RedisCommand("SENTINEL", ["GET-MASTER-ADDR-BY-NAME", .init(name)])
    }
}
