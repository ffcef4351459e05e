/// The commands of one request: a lone command held inline, or several in an array.
///
/// Most requests are one command (`GET`, `SET`): holding it inline spares the array that
/// `[command]` allocates (and frees, and reference-counts) for every such request.
struct RedisCommands: RandomAccessCollection, ExpressibleByArrayLiteral, Sendable {
    enum Storage: Sendable {
        case one(RedisCommand)
        case many([RedisCommand])
    }

    let storage: Storage

    /// One command.
    init(_ command: RedisCommand) { storage = .one(command) }

    /// Several commands (one is held inline, like ``init(_:)-(RedisCommand)``).
    init(_ commands: [RedisCommand]) {
        storage = commands.count == 1 ? .one(commands[0]) : .many(commands)
    }

    init(arrayLiteral elements: RedisCommand...) { self.init(elements) }

    var startIndex: Int { 0 }

    var endIndex: Int {
        switch storage {
        case .one: return 1
        case .many(let commands): return commands.count
        }
    }

    subscript(position: Int) -> RedisCommand {
        switch storage {
        case .one(let command):
            precondition(position == 0, "index out of range")
            return command
        case .many(let commands):
            return commands[position]
        }
    }
}

/// The replies of one request, one per command: a lone reply held inline, or several.
///
/// Two values are equal when they hold the same replies, however held.
struct RedisReplies: RandomAccessCollection, ExpressibleByArrayLiteral, Equatable, Sendable {
    enum Storage: Sendable {
        case one(RESPValue)
        case many([RESPValue])
    }

    let storage: Storage

    /// One reply.
    init(_ reply: RESPValue) { storage = .one(reply) }

    /// Several replies.
    init(_ replies: [RESPValue]) { storage = .many(replies) }

    init(arrayLiteral elements: RESPValue...) { self.init(elements) }

    var startIndex: Int { 0 }

    var endIndex: Int {
        switch storage {
        case .one: return 1
        case .many(let replies): return replies.count
        }
    }

    subscript(position: Int) -> RESPValue {
        switch storage {
        case .one(let reply):
            precondition(position == 0, "index out of range")
            return reply
        case .many(let replies):
            return replies[position]
        }
    }

    /// The replies as an array (the array itself when there are several).
    var array: [RESPValue] {
        switch storage {
        case .one(let reply): return [reply]
        case .many(let replies): return replies
        }
    }

    static func == (lhs: RedisReplies, rhs: RedisReplies) -> Bool {
        lhs.elementsEqual(rhs)
    }
}

#if DEBUG
/// Where a caller waits for a reply: checked in debug builds, so a double or missing resume
/// traps in tests.
typealias RedisContinuation<T> = CheckedContinuation<T, any Error>

/// Suspends the calling task until `body`'s continuation is resumed.
@inline(__always)
func withRedisContinuation<T>(_ body: (RedisContinuation<T>) -> Void) async throws -> T {
    try await withCheckedThrowingContinuation(body)
}
#else
/// Where a caller waits for a reply. Every path of ``RedisChannelHandler`` resumes it exactly
/// once (the debug build checks this).
typealias RedisContinuation<T> = UnsafeContinuation<T, any Error>

/// Suspends the calling task until `body`'s continuation is resumed.
@inline(__always)
func withRedisContinuation<T>(_ body: (RedisContinuation<T>) -> Void) async throws -> T {
    try await withUnsafeThrowingContinuation(body)
}
#endif

/// Where the replies of one request go: the task that sent one command waits for one value,
/// a pipeline's for an array (no array made for a lone command, none unpacked by its caller).
enum RedisReply: Sendable {
    case one(RedisContinuation<RESPValue>)
    case many(RedisContinuation<[RESPValue]>)

    /// Resumes the caller with `replies` (a lone caller with the first, which is the only one).
    func resume(returning replies: RedisReplies) {
        switch self {
        case .one(let continuation):
            continuation.resume(returning: replies[0])
        case .many(let continuation):
            continuation.resume(returning: replies.array)
        }
    }

    /// Resumes the caller with `error`.
    func resume(throwing error: any Error) {
        switch self {
        case .one(let continuation): continuation.resume(throwing: error)
        case .many(let continuation): continuation.resume(throwing: error)
        }
    }
}
