import _ConnectionPoolModule
import _PoolLease
import NIOCore
import Synchronization
import Testing

/// A connection that only records whether it is closed.
final class FakeConnection: PooledConnection, Sendable {
    let id: Int
    private let closed = Atomic<Bool>(false)

    init(id: Int) { self.id = id }

    var isClosed: Bool { closed.load(ordering: .relaxed) }
    func onClose(_ closure: @escaping @Sendable ((any Error)?) -> Void) {}
    func close() { closed.store(true, ordering: .relaxed) }
}

/// The ids of the connections handed back to the "pool", in order.
final class Released: Sendable {
    private let ids = Mutex<[Int]>([])
    var all: [Int] { ids.withLock { $0 } }

    func lease(_ connection: FakeConnection) -> ConnectionLease<FakeConnection> {
        ConnectionLease(connection: connection) { [self] connection in
            ids.withLock { $0.append(connection.id) }
        }
    }
}

@Suite("Leases kept between operations (PoolLeaseCache)")
struct PoolLeaseCacheTests {
    func makeCache() -> PoolLeaseCache<FakeConnection> {
        PoolLeaseCache<FakeConnection>(maximumIdle: .seconds(1)) { $0.isClosed }
    }

    @Test("a kept lease is reused, most recent first; nothing goes back to the pool")
    func reuse() {
        let cache = makeCache()
        let released = Released()
        #expect(cache.take() == nil)
        cache.doneWaiting()
        cache.put(released.lease(FakeConnection(id: 1)))
        cache.put(released.lease(FakeConnection(id: 2)))
        #expect(cache.take()?.connection.id == 2)
        #expect(cache.take()?.connection.id == 1)
        #expect(released.all.isEmpty)
    }

    @Test("a preferred connection (the caller's event loop) comes first; else the most recent; closed ones never")
    func preferring() {
        let cache = makeCache()
        let released = Released()
        let dead = FakeConnection(id: 4)
        for id in 1...3 { cache.put(released.lease(FakeConnection(id: id))) }
        cache.put(released.lease(dead))
        dead.close()
        let odd: @Sendable (FakeConnection) -> Bool = { $0.id % 2 == 1 }
        #expect(cache.take(preferring: odd)?.connection.id == 3)
        #expect(cache.take(preferring: odd)?.connection.id == 1)
        // no odd one left: the most recent open one (the dead one is handed back)
        #expect(cache.take(preferring: odd)?.connection.id == 2)
        #expect(released.all == [4])
        #expect(cache.take(preferring: odd) == nil)
        cache.doneWaiting()
        cache.put(released.lease(FakeConnection(id: 5)))
        #expect(cache.take(preferring: nil)?.connection.id == 5)
    }

    @Test("while a caller waits for the pool, a lease goes back to the pool (to that caller)")
    func waiterGetsIt() {
        let cache = makeCache()
        let released = Released()
        #expect(cache.take() == nil)  // this caller now waits for the pool
        cache.put(released.lease(FakeConnection(id: 1)))
        #expect(released.all == [1])
        #expect(cache.keptCount == 0)
        cache.doneWaiting()
        cache.put(released.lease(FakeConnection(id: 2)))
        #expect(released.all == [1])
        #expect(cache.keptCount == 1)
    }

    @Test("a closed connection is handed back, never reused")
    func closedConnection() {
        let cache = makeCache()
        let released = Released()
        let dead = FakeConnection(id: 1)
        cache.put(released.lease(dead))
        cache.put(released.lease(FakeConnection(id: 2)))
        dead.close()
        let live = FakeConnection(id: 3)
        live.close()
        cache.put(released.lease(live))  // closed before it is put: back at once
        #expect(released.all == [3])
        #expect(cache.take()?.connection.id == 2)
        #expect(cache.take() == nil)  // skips the dead one, hands it back
        cache.doneWaiting()
        #expect(released.all == [3, 1])
    }

    @Test("leases idle past maximumIdle go back to the pool; close() hands back the rest and every later put")
    func idleAndClose() {
        let cache = makeCache()
        let released = Released()
        cache.put(released.lease(FakeConnection(id: 1)))
        cache.put(released.lease(FakeConnection(id: 2)))
        cache.releaseIdle(now: .now() + .milliseconds(500))
        #expect(released.all.isEmpty)
        cache.releaseIdle(now: .now() + .seconds(2))
        #expect(released.all == [1, 2])
        cache.put(released.lease(FakeConnection(id: 3)))
        cache.close()
        #expect(released.all == [1, 2, 3])
        cache.put(released.lease(FakeConnection(id: 4)))
        #expect(released.all == [1, 2, 3, 4])
        #expect(cache.take() == nil)
        cache.doneWaiting()
    }
}
