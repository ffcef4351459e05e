import Synchronization

/// When the requests callers hand to a connection are written, as a pure value.
///
/// Callers append requests off the event loop; the event loop takes them and writes them in
/// one buffer. While the connection awaits replies (requests written and not answered yet),
/// a new request does not wake the event loop: it waits for the next read of replies, when
/// the event loop writes every request that came meanwhile in one buffer. Redis answers a
/// connection's requests in order, so the new request could not be answered before those
/// replies anyway; under load this turns many small writes (one wake-up and one syscall each,
/// and as many reads on the server) into few full ones. With nothing awaited, the first
/// request schedules one drain job on the event loop, which later requests join.
struct RedisOutboxState<Element> {
    private(set) var elements: [Element] = []
    /// A drain job is scheduled on the event loop and has not started yet.
    private(set) var scheduled = false
    /// Replies are awaited: the next read will drain the outbox.
    private(set) var awaitingReplies = false

    /// Appends a request; `true` when the caller must schedule a drain job.
    mutating func append(_ element: Element) -> Bool {
        elements.append(element)
        if scheduled || awaitingReplies { return false }
        scheduled = true
        return true
    }

    /// A drain job starts: takes every request.
    mutating func jobStarted() -> [Element] {
        scheduled = false
        return takeAll()
    }

    /// Takes every request (a read of replies came: write whatever waits).
    mutating func takeAll() -> [Element] {
        var taken: [Element] = []
        swap(&taken, &elements)
        return taken
    }

    /// After a write: records whether replies are awaited now. With none awaited, the
    /// requests that came during the write are returned, to be written at once (nothing else
    /// would drain them).
    mutating func settle(awaitingReplies: Bool) -> [Element] {
        var taken: [Element] = []
        settle(awaitingReplies: awaitingReplies, into: &taken)
        return taken
    }

    // The same, reusing arrays: the caller's `batch` (emptied, its capacity kept) takes the
    // place of the requests it receives, so the outbox and the caller's batch take turns with
    // two arrays and appending a request seldom allocates (a fresh array would grow from
    // nothing for every batch).

    /// ``jobStarted()``, moving the requests into `batch`.
    mutating func jobStarted(into batch: inout [Element]) {
        scheduled = false
        takeAll(into: &batch)
    }

    /// ``takeAll()``, moving the requests into `batch`.
    mutating func takeAll(into batch: inout [Element]) {
        batch.removeAll(keepingCapacity: true)
        swap(&batch, &elements)
    }

    /// ``settle(awaitingReplies:)``, moving the requests to write at once into `batch`
    /// (left empty when there are none).
    mutating func settle(awaitingReplies: Bool, into batch: inout [Element]) {
        self.awaitingReplies = awaitingReplies
        batch.removeAll(keepingCapacity: true)
        if awaitingReplies || elements.isEmpty { return }
        swap(&batch, &elements)
    }
}

/// The ``RedisOutboxState`` of one connection, shared by its callers and its channel handler.
final class RedisOutbox: Sendable {
    private let state = Mutex(RedisOutboxState<RedisTask>())

    /// Appends a request; `true` when the caller must schedule a drain job.
    func append(_ task: RedisTask) -> Bool { state.withLock { $0.append(task) } }
    /// See ``RedisOutboxState/jobStarted()``.
    func jobStarted() -> [RedisTask] { state.withLock { $0.jobStarted() } }
    /// See ``RedisOutboxState/takeAll()``.
    func takeAll() -> [RedisTask] { state.withLock { $0.takeAll() } }
    /// See ``RedisOutboxState/settle(awaitingReplies:)``.
    func settle(awaitingReplies: Bool) -> [RedisTask] { state.withLock { $0.settle(awaitingReplies: awaitingReplies) } }
    /// See ``RedisOutboxState/jobStarted(into:)``; empty `batch` first (outside the lock).
    func jobStarted(into batch: inout [RedisTask]) { state.withLock { $0.jobStarted(into: &batch) } }
    /// See ``RedisOutboxState/takeAll(into:)``; empty `batch` first (outside the lock).
    func takeAll(into batch: inout [RedisTask]) { state.withLock { $0.takeAll(into: &batch) } }
    /// See ``RedisOutboxState/settle(awaitingReplies:into:)``; empty `batch` first (outside the lock).
    func settle(awaitingReplies: Bool, into batch: inout [RedisTask]) {
        state.withLock { $0.settle(awaitingReplies: awaitingReplies, into: &batch) }
    }
    /// The requests waiting to be written (for tests).
    var count: Int { state.withLock { $0.elements.count } }
}
