/// One element held inline, or several in an array: the commands of one request and their
/// replies.
///
/// Most requests are one command (`GET`, `SET`) with one reply: holding it inline spares the
/// array that `[command]` allocates (and frees, and reference-counts) for every such request.
/// Two values are equal when they hold the same elements, however held.
struct RedisInlineList<Element: Sendable>: RandomAccessCollection, ExpressibleByArrayLiteral, Sendable {
    enum Storage: Sendable {
        case one(Element)
        case many([Element])
    }

    let storage: Storage

    /// One element.
    init(_ element: Element) { storage = .one(element) }

    /// Several elements (a lone one is held inline).
    init(_ elements: [Element]) {
        storage = elements.count == 1 ? .one(elements[0]) : .many(elements)
    }

    init(arrayLiteral elements: Element...) { self.init(elements) }

    var startIndex: Int { 0 }

    var endIndex: Int {
        switch storage {
        case .one: return 1
        case .many(let elements): return elements.count
        }
    }

    subscript(position: Int) -> Element {
        switch storage {
        case .one(let element):
            precondition(position == 0, "index out of range")
            return element
        case .many(let elements):
            return elements[position]
        }
    }

    /// The elements as an array (the array itself when there are several).
    var array: [Element] {
        switch storage {
        case .one(let element): return [element]
        case .many(let elements): return elements
        }
    }
}

extension RedisInlineList: Equatable where Element: Equatable {
    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.elementsEqual(rhs)
    }
}

/// The commands of one request.
typealias RedisCommands = RedisInlineList<RedisCommand>

/// The replies of one request, one per command.
typealias RedisReplies = RedisInlineList<RESPValue>

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
