import NIOCore
import NIOPosix
import Synchronization
import _ConnectionPoolModule

/// Leases kept between operations, in front of a `ConnectionPool`.
///
/// Handing a connection back to `ConnectionPool` parks it, which arms an idle timer (a child
/// task sleeping in the pool's `run()`) that the next lease cancels: a task, a dispatch timer
/// and a cancellation per operation. A client that keeps its connections leased between
/// operations (last used, first reused) skips all of that: ``take()`` and ``put(_:)`` are one
/// lock each.
///
/// The pool stays in charge of everything else:
/// - while a caller waits for the pool (``take()`` returned `nil` and ``doneWaiting()`` was not
///   called yet), ``put(_:)`` hands the lease back to the pool, which gives it to a waiter;
/// - a kept lease idle for longer than `maximumIdle` goes back to the pool on
///   ``releaseIdle(now:)`` (run it periodically, e.g. every second), where the pool's idle
///   timeout applies;
/// - a connection that closed is handed back (the pool has seen the close) and never reused;
/// - ``close()`` hands every kept lease back and makes ``put(_:)`` hand back from then on: call
///   it when the pool shuts down, or the pool would wait for the kept leases.
///
/// ``take()``, ``take(preferring:)``, ``put(_:)`` and ``doneWaiting()`` run once per operation:
/// they are `@inlinable`, so each client module gets them specialised for its connection type
/// (unspecialised, every call looked up the generic metadata of the entries and the lock's
/// state, ≈ 5% of a MySQL `get`).
public final class PoolLeaseCache<Connection: PooledConnection>: Sendable {
    @usableFromInline
    struct Entry {
        @usableFromInline var lease: ConnectionLease<Connection>
        @usableFromInline var since: NIODeadline

        @inlinable
        init(lease: ConnectionLease<Connection>, since: NIODeadline) {
            self.lease = lease
            self.since = since
        }
    }

    @usableFromInline
    struct State {
        @usableFromInline var kept: [Entry] = []
        @usableFromInline var waiting = 0
        @usableFromInline var closed = false

        @usableFromInline
        init() {}
    }

    @usableFromInline
    let state = Mutex(State())
    private let maximumIdle: TimeAmount
    @usableFromInline
    let isClosed: @Sendable (Connection) -> Bool

    /// Creates an empty cache.
    /// - Parameters:
    ///   - maximumIdle: how long a lease may stay kept unused before ``releaseIdle(now:)`` hands
    ///     it back to the pool.
    ///   - isClosed: whether a connection has closed (it is then handed back, not reused).
    public init(maximumIdle: TimeAmount, isClosed: @escaping @Sendable (Connection) -> Bool) {
        self.maximumIdle = maximumIdle
        self.isClosed = isClosed
    }

    /// The most recently kept lease whose connection is open, or `nil`: then the caller is
    /// counted as waiting for the pool until it calls ``doneWaiting()`` (always, whatever the
    /// pool answers).
    @inlinable
    public func take() -> ConnectionLease<Connection>? {
        take(preferring: nil)
    }

    /// Like ``take()``, but the most recently kept lease whose connection satisfies `preferred`
    /// comes first (e.g. a connection on the caller's own event loop, so that its statements
    /// need no thread hop); without one, the most recently kept lease.
    @inlinable
    public func take(preferring preferred: (@Sendable (Connection) -> Bool)?) -> ConnectionLease<Connection>? {
        var closed: [ConnectionLease<Connection>] = []
        defer { for lease in closed { lease.release() } }
        return state.withLock { state -> ConnectionLease<Connection>? in
            if let preferred,
                let index = state.kept.lastIndex(where: { preferred($0.lease.connection) && !isClosed($0.lease.connection) })
            {
                return state.kept.remove(at: index).lease
            }
            while let entry = state.kept.popLast() {
                if isClosed(entry.lease.connection) {
                    closed.append(entry.lease)
                    continue
                }
                return entry.lease
            }
            state.waiting += 1
            return nil
        }
    }

    /// Like ``take()``, but a kept connection on the calling thread's event loop comes first
    /// (a caller running on one, e.g. with NIO's event loops as the global executor: its
    /// statements then need no thread hop). `eventLoop` gives a connection's event loop.
    @inlinable
    public func takePreferringCurrentEventLoop(
        _ eventLoop: @escaping @Sendable (Connection) -> any EventLoop
    ) -> ConnectionLease<Connection>? {
        guard let current = MultiThreadedEventLoopGroup.currentEventLoop else { return take() }
        return take(preferring: { eventLoop($0) === current })
    }

    /// Ends the wait counted by a ``take()`` that returned `nil`.
    @inlinable
    public func doneWaiting() {
        state.withLock { $0.waiting -= 1 }
    }

    /// Keeps `lease` for the next ``take()``, or hands it back to the pool when a caller waits
    /// for the pool, when its connection closed, or after ``close()``.
    @inlinable
    public func put(_ lease: ConnectionLease<Connection>) {
        let closed = isClosed(lease.connection)
        let kept = state.withLock { state -> Bool in
            guard !closed, !state.closed, state.waiting == 0 else { return false }
            state.kept.append(Entry(lease: lease, since: .now()))
            return true
        }
        if !kept { lease.release() }
    }

    /// Hands back to the pool every lease kept unused for longer than `maximumIdle`.
    public func releaseIdle(now: NIODeadline = .now()) {
        let limit = now - maximumIdle
        let stale = state.withLock { state -> [ConnectionLease<Connection>] in
            // The oldest are at the front (put appends, take pops the last).
            let count = state.kept.prefix { $0.since < limit }.count
            guard count > 0 else { return [] }
            defer { state.kept.removeFirst(count) }
            return state.kept.prefix(count).map(\.lease)
        }
        for lease in stale { lease.release() }
    }

    /// Hands every kept lease back; from now on ``put(_:)`` hands back at once.
    public func close() {
        let kept = state.withLock { state -> [Entry] in
            state.closed = true
            defer { state.kept.removeAll() }
            return state.kept
        }
        for entry in kept { entry.lease.release() }
    }

    /// How many leases are kept (for tests).
    public var keptCount: Int { state.withLock { $0.kept.count } }
}
