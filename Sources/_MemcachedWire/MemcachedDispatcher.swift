import NIOCore

/// Something the dispatcher can hand requests to: it only needs to know whether it is open.
protocol MemcachedDispatchable: AnyObject {
    /// Whether the connection can still carry requests.
    var isActive: Bool { get }
}

extension MemcachedConnection: MemcachedDispatchable {}

/// Which connection each request of one server goes to: a pure value with no channel inside
/// (events in, decisions out), run under the server pool's lock.
///
/// The connection pool is only asked for connections, each leased whole (one stream per
/// connection in the pool), and the dispatcher keeps them: every request then picks the least
/// loaded kept connection with fewer than `depth` requests in flight, with no pool lease, no
/// allocation and no suspension. memcached answers in order, so one connection carries many
/// requests at once. Only when every kept connection is full does a request ask the pool for
/// one more (while fewer than `maximumConnections` are kept or being leased) or wait in line
/// for a slot. A connection nobody used for a whole sweep period is handed back to the pool,
/// whose idle timeout then closes it; a connection found closed is dropped and handed back.
///
/// `Lease` is what goes back to the pool (a `ConnectionLease`); `Waiter` is a request waiting
/// in line (a class, compared by identity).
struct MemcachedDispatcher<Connection: MemcachedDispatchable, Lease, Waiter: AnyObject> {
    struct Slot {
        let connection: Connection
        let lease: Lease
        var inFlight: Int
        /// Whether a request picked it since the last sweep.
        var used: Bool
    }

    /// What a request does next.
    enum Acquire {
        /// Send on this connection (counted in flight until ``release(_:retired:)``).
        case use(Connection)
        /// Ask the pool for one more connection, then call ``leased(_:lease:)`` or ``leaseFailed(abandonWaiters:)``.
        case lease
        /// Every connection is full and no more may be leased: wait in line
        /// (``enqueue(_:isCancelled:retired:)``).
        case mustWait
        /// Queued: a ``Grant`` comes later (or a timeout or cancellation removes the waiter).
        case queued
        /// The client is shut down.
        case shutDown
        /// The waiter was cancelled before it got in line.
        case cancelled
    }

    /// What a waiter in line is given.
    enum Grant {
        /// A slot on this connection (already counted in flight).
        case use(Connection)
        /// The right to lease one more connection from the pool (already counted as leasing).
        case lease
    }

    private(set) var slots: [Slot] = []
    /// Pool leases under way.
    private(set) var leasing = 0
    private var waiters = CircularBuffer<Waiter>(initialCapacity: 8)
    private(set) var isShutDown = false
    /// The most connections kept or being leased (the pool size).
    let maximumConnections: Int
    /// The most requests in flight on one connection.
    let depth: Int

    init(maximumConnections: Int, depth: Int) {
        precondition(maximumConnections >= 1 && depth >= 1)
        self.maximumConnections = maximumConnections
        self.depth = depth
    }

    /// How many requests wait in line.
    var waiting: Int { waiters.count }

    /// A request wants a connection. Leases of connections found closed are appended to
    /// `retired`, for the caller to hand back to the pool.
    mutating func acquire(retired: inout [Lease]) -> Acquire {
        if isShutDown { return .shutDown }
        var best = -1
        var bestLoad = depth
        var index = 0
        while index < slots.count {
            let load = slots[index].inFlight
            if load < bestLoad {
                if !slots[index].connection.isActive {
                    retired.append(slots.remove(at: index).lease)
                    continue
                }
                best = index
                bestLoad = load
                if load == 0 { break }
            }
            index += 1
        }
        if best >= 0 {
            slots[best].inFlight += 1
            slots[best].used = true
            return .use(slots[best].connection)
        }
        if slots.count + leasing < maximumConnections {
            leasing += 1
            return .lease
        }
        return .mustWait
    }

    /// Like ``acquire(retired:)``, but puts `waiter` in line instead of answering ``Acquire/mustWait``.
    mutating func enqueue(_ waiter: Waiter, isCancelled: Bool, retired: inout [Lease]) -> Acquire {
        let action = acquire(retired: &retired)
        guard case .mustWait = action else { return action }
        if isCancelled { return .cancelled }
        waiters.append(waiter)
        return .queued
    }

    /// Takes `waiter` out of the line (it timed out or was cancelled). False when it is no
    /// longer in line: it was granted (or failed) already and that result stands.
    mutating func removeWaiter(_ waiter: Waiter) -> Bool {
        guard let index = waiters.firstIndex(where: { $0 === waiter }) else { return false }
        waiters.remove(at: index)
        return true
    }

    /// A pool lease asked for by ``Acquire/lease`` (or ``Grant/lease``) succeeded: the
    /// connection is kept, carries the request that leased it, and takes waiters up to its
    /// depth. Returns `nil` when the client shut down meanwhile (the caller hands the lease
    /// back and fails), else the waiters granted a slot on the connection.
    mutating func leased(_ connection: Connection, lease: Lease) -> [Waiter]? {
        leasing -= 1
        if isShutDown { return nil }
        var slot = Slot(connection: connection, lease: lease, inFlight: 1, used: true)
        var granted: [Waiter] = []
        while slot.inFlight < depth, let waiter = waiters.popFirst() {
            granted.append(waiter)
            slot.inFlight += 1
        }
        slots.append(slot)
        return granted
    }

    /// A pool lease failed. With `abandonWaiters` (connecting fails) and no connection kept,
    /// every waiter is returned to be failed with the same error; otherwise one waiter (if
    /// any) is given the lease to try instead.
    mutating func leaseFailed(abandonWaiters: Bool) -> (failed: [Waiter], retry: Waiter?) {
        leasing -= 1
        if abandonWaiters, slots.isEmpty {
            let failed = Array(waiters)
            waiters.removeAll()
            return (failed, nil)
        }
        if slots.count + leasing < maximumConnections, let waiter = waiters.popFirst() {
            leasing += 1
            return ([], waiter)
        }
        return ([], nil)
    }

    /// A request sent on `connection` completed. Its slot goes to the first waiter in line,
    /// if any. A closed connection is dropped (its lease appended to `retired`) and the
    /// first waiter gets the right to lease a new one.
    mutating func release(_ connection: Connection, retired: inout [Lease]) -> (Waiter, Grant)? {
        guard let index = slots.firstIndex(where: { $0.connection === connection }) else { return nil }
        if !connection.isActive {
            retired.append(slots.remove(at: index).lease)
            if slots.count + leasing < maximumConnections, let waiter = waiters.popFirst() {
                leasing += 1
                return (waiter, .lease)
            }
            return nil
        }
        if let waiter = waiters.popFirst() {
            return (waiter, .use(connection))
        }
        slots[index].inFlight -= 1
        return nil
    }

    /// Runs once a sweep period: hands back (appends to `retired`) every connection no
    /// request used since the last sweep, and every closed one; waiters get the right to
    /// lease in their place.
    mutating func sweep(retired: inout [Lease]) -> [Waiter] {
        var index = 0
        while index < slots.count {
            if (slots[index].inFlight == 0 && !slots[index].used) || !slots[index].connection.isActive {
                retired.append(slots.remove(at: index).lease)
                continue
            }
            slots[index].used = false
            index += 1
        }
        var granted: [Waiter] = []
        while slots.count + leasing < maximumConnections, let waiter = waiters.popFirst() {
            leasing += 1
            granted.append(waiter)
        }
        return granted
    }

    /// The client shuts down: every kept connection is handed back (appended to `retired`)
    /// and every waiter is returned, to be failed.
    mutating func shutDown(retired: inout [Lease]) -> [Waiter] {
        isShutDown = true
        retired.append(contentsOf: slots.map(\.lease))
        slots.removeAll()
        let failed = Array(waiters)
        waiters.removeAll()
        return failed
    }
}

extension MemcachedDispatcher.Grant: Sendable where Connection: Sendable {}
