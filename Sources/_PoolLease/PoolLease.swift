import NIOCore
import Synchronization
import _ConnectionPoolModule

/// Why a lease was cancelled before the pool handed out a connection.
public enum PoolLeaseCancellation: Sendable, Hashable {
    /// No connection came within the lease timeout.
    case timedOut
    /// The client gave up on every waiter (e.g. a connect attempt just failed: waiting longer
    /// would only delay the error).
    case abandoned
    /// The calling task was cancelled.
    case taskCancelled
}

/// What a lease ended with: a connection, or the pool's error and, when this side cancelled
/// the request, why.
public struct PoolLeaseOutcome<Connection: PooledConnection>: Sendable {
    /// The connection, or the pool's error.
    public var result: Result<ConnectionLease<Connection>, ConnectionPoolError>
    /// Why this side cancelled the request, if it did.
    public var cancellation: PoolLeaseCancellation?
}

/// One caller waiting for a pooled connection, resumed by the pool itself.
///
/// `ConnectionPool.leaseConnection()` (the module's own async API) is fine, but a timeout around
/// it needs a task group of two child tasks per request. Here the pool completes the caller's
/// continuation directly and the timeout is a timer on an event loop that asks the pool to
/// cancel the request: no child task, no sleeping task. A lease the pool hands out is always
/// delivered (a timeout racing it loses), so no connection is ever leaked.
public final class PoolLeaseWaiter<Connection: PooledConnection>: Sendable {
    typealias Continuation = CheckedContinuation<Result<ConnectionLease<Connection>, ConnectionPoolError>, Never>

    private struct State {
        var continuation: Continuation?
        var timer: Scheduled<Void>?
        var completed = false
        var cancellation: PoolLeaseCancellation?
    }

    /// The request's id in the pool.
    public let id: Int
    private let state = Mutex(State())

    init(id: Int) { self.id = id }

    fileprivate func start(_ continuation: Continuation) {
        state.withLock { $0.continuation = continuation }
    }

    fileprivate func armTimer(_ schedule: () -> Scheduled<Void>) {
        state.withLock { state in
            guard !state.completed else { return }
            state.timer = schedule()
        }
    }

    /// Records why this side cancels; the first reason wins. Returns false once completed.
    fileprivate func markCancelled(_ reason: PoolLeaseCancellation) -> Bool {
        state.withLock { state in
            guard !state.completed else { return false }
            if state.cancellation == nil { state.cancellation = reason }
            return true
        }
    }

    fileprivate var cancellation: PoolLeaseCancellation? { state.withLock { $0.cancellation } }

    /// Called by the pool, exactly once per request.
    fileprivate func complete(_ result: Result<ConnectionLease<Connection>, ConnectionPoolError>) {
        let (continuation, timer) = state.withLock { state -> (Continuation?, Scheduled<Void>?) in
            guard !state.completed else { return (nil, nil) }
            state.completed = true
            defer {
                state.continuation = nil
                state.timer = nil
            }
            return (state.continuation, state.timer)
        }
        timer?.cancel()
        continuation?.resume(returning: result)
    }
}

/// The pool's request type for ``PoolLeaseWaiter``.
public struct PoolLeaseRequest<Connection: PooledConnection>: ConnectionRequestProtocol {
    /// The waiter this request completes.
    public let waiter: PoolLeaseWaiter<Connection>

    /// The request's id.
    public var id: Int { waiter.id }

    public func complete(with result: Result<ConnectionLease<Connection>, ConnectionPoolError>) {
        waiter.complete(result)
    }
}

/// The requests of one pool that wait for a connection, so a client can give up on all of
/// them at once (``abandonAll(cancel:)``), and the source of their ids.
public final class PoolLeaseWaiters<Connection: PooledConnection>: Sendable {
    private struct State {
        var nextID = 0
        var waiting: [Int: PoolLeaseWaiter<Connection>] = [:]
    }

    private let state = Mutex(State())

    /// Creates an empty registry.
    public init() {}

    /// Leases a connection: `request` hands the request to the pool
    /// (`pool.leaseConnection(_:)`); after `timeout` (a timer on `eventLoop`), or when the
    /// calling task is cancelled, or on ``abandonAll(cancel:)``, `cancel` asks the pool to
    /// cancel it (`pool.cancelLeaseConnection(id)`), which then completes it with an error.
    public func lease(
        timeout: TimeAmount,
        on eventLoop: any EventLoop,
        request: (PoolLeaseRequest<Connection>) -> Void,
        cancel: @escaping @Sendable (Int) -> Void
    ) async -> PoolLeaseOutcome<Connection> {
        let waiter = state.withLock { state in
            state.nextID &+= 1
            let waiter = PoolLeaseWaiter<Connection>(id: state.nextID)
            state.waiting[waiter.id] = waiter
            return waiter
        }
        defer { _ = state.withLock { $0.waiting.removeValue(forKey: waiter.id) } }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: PoolLeaseWaiter<Connection>.Continuation) in
                waiter.start(continuation)
                request(PoolLeaseRequest(waiter: waiter))
                waiter.armTimer {
                    eventLoop.scheduleTask(in: timeout) {
                        if waiter.markCancelled(.timedOut) { cancel(waiter.id) }
                    }
                }
            }
        } onCancel: {
            if waiter.markCancelled(.taskCancelled) { cancel(waiter.id) }
        }
        return PoolLeaseOutcome(result: result, cancellation: waiter.cancellation)
    }

    /// Cancels every waiting request through `cancel` (they end with
    /// ``PoolLeaseCancellation/abandoned``).
    public func abandonAll(cancel: (Int) -> Void) {
        let waiting = state.withLock { Array($0.waiting.values) }
        for waiter in waiting where waiter.markCancelled(.abandoned) {
            cancel(waiter.id)
        }
    }
}
