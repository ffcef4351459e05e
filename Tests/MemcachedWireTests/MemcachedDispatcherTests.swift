import Testing

@testable import _MemcachedWire

@Suite("MemcachedDispatcher")
struct MemcachedDispatcherTests {
    final class FakeConnection: MemcachedDispatchable {
        let name: String
        var isActive = true
        init(_ name: String) { self.name = name }
    }

    final class Waiter {
        let name: String
        init(_ name: String) { self.name = name }
    }

    typealias Dispatcher = MemcachedDispatcher<FakeConnection, String, Waiter>

    func connection(_ action: Dispatcher.Acquire) -> FakeConnection? {
        if case .use(let connection) = action { return connection }
        return nil
    }

    func isLease(_ action: Dispatcher.Acquire) -> Bool {
        if case .lease = action { return true }
        return false
    }

    @Test func manyRequestsShareOneConnectionUpToItsDepthThenASecondIsLeased() throws {
        var dispatcher = Dispatcher(maximumConnections: 2, depth: 3)
        var retired: [String] = []
        let check1 = isLease(dispatcher.acquire(retired: &retired))  // evaluated once, outside the macro
        #expect(check1)
        let a = FakeConnection("a")
        let check2 = dispatcher.leased(a, lease: "lease-a")?.isEmpty == true  // evaluated once, outside the macro
        #expect(check2)
        // two more requests in flight on a, with no pool lease
        let check3 = connection(dispatcher.acquire(retired: &retired)) === a  // evaluated once, outside the macro
        #expect(check3)
        let check4 = connection(dispatcher.acquire(retired: &retired)) === a  // evaluated once, outside the macro
        #expect(check4)
        #expect(dispatcher.slots.first?.inFlight == 3)
        // a is full: lease a second connection
        let check5 = isLease(dispatcher.acquire(retired: &retired))  // evaluated once, outside the macro
        #expect(check5)
        #expect(dispatcher.leasing == 1)
        // the pool size is reached (one kept, one leasing): wait
        guard case .mustWait = dispatcher.acquire(retired: &retired) else {
            Issue.record("expected to wait")
            return
        }
        let b = FakeConnection("b")
        let check6 = dispatcher.leased(b, lease: "lease-b")?.isEmpty == true  // evaluated once, outside the macro
        #expect(check6)
        // the least loaded connection is picked
        let check7 = connection(dispatcher.acquire(retired: &retired)) === b  // evaluated once, outside the macro
        #expect(check7)
        let check8 = dispatcher.release(a, retired: &retired) == nil  // evaluated once, outside the macro
        #expect(check8)
        #expect(dispatcher.slots.map(\.inFlight) == [2, 2])
        #expect(retired.isEmpty)
    }

    @Test func waitersAreServedInOrderAsRequestsComplete() throws {
        var dispatcher = Dispatcher(maximumConnections: 1, depth: 1)
        var retired: [String] = []
        let check9 = isLease(dispatcher.acquire(retired: &retired))  // evaluated once, outside the macro
        #expect(check9)
        let first = Waiter("first")
        let second = Waiter("second")
        guard case .queued = dispatcher.enqueue(first, isCancelled: false, retired: &retired),
            case .queued = dispatcher.enqueue(second, isCancelled: false, retired: &retired)
        else {
            Issue.record("expected both to wait")
            return
        }
        let a = FakeConnection("a")
        // depth 1: the connection carries the leasing request only
        let check10 = dispatcher.leased(a, lease: "lease-a")?.isEmpty == true  // evaluated once, outside the macro
        #expect(check10)
        let released = dispatcher.release(a, retired: &retired)
        let handedOver = try #require(released)
        #expect(handedOver.0 === first)
        guard case .use(let connection) = handedOver.1 else {
            Issue.record("expected a slot")
            return
        }
        #expect(connection === a)
        // a cancelled or timed out waiter leaves the line once; the grant then skips it
        let removed = dispatcher.removeWaiter(second)
        let removedTwice = dispatcher.removeWaiter(second)
        #expect(removed)
        #expect(!removedTwice)
        let check11 = dispatcher.release(a, retired: &retired) == nil  // evaluated once, outside the macro
        #expect(check11)
        #expect(dispatcher.slots.first?.inFlight == 0)
    }

    @Test func aLeasedConnectionTakesWaitersUpToItsDepth() {
        var dispatcher = Dispatcher(maximumConnections: 1, depth: 3)
        var retired: [String] = []
        let check12 = isLease(dispatcher.acquire(retired: &retired))  // evaluated once, outside the macro
        #expect(check12)
        let waiters = (0..<4).map { Waiter("w\($0)") }
        for waiter in waiters {
            guard case .queued = dispatcher.enqueue(waiter, isCancelled: false, retired: &retired) else {
                Issue.record("expected to wait")
                return
            }
        }
        let granted = dispatcher.leased(FakeConnection("a"), lease: "lease-a") ?? []
        #expect(granted.map(\.name) == ["w0", "w1"])
        #expect(dispatcher.waiting == 2)
        #expect(dispatcher.slots.first?.inFlight == 3)
    }

    @Test func aClosedConnectionIsDroppedAndItsWaiterLeasesAnother() throws {
        var dispatcher = Dispatcher(maximumConnections: 1, depth: 1)
        var retired: [String] = []
        _ = dispatcher.acquire(retired: &retired)
        let a = FakeConnection("a")
        _ = dispatcher.leased(a, lease: "lease-a")
        let waiter = Waiter("w")
        _ = dispatcher.enqueue(waiter, isCancelled: false, retired: &retired)
        a.isActive = false
        let released = dispatcher.release(a, retired: &retired)
        let handedOver = try #require(released)
        #expect(handedOver.0 === waiter)
        guard case .lease = handedOver.1 else {
            Issue.record("expected the right to lease")
            return
        }
        #expect(retired == ["lease-a"])
        #expect(dispatcher.slots.isEmpty)
        #expect(dispatcher.leasing == 1)
    }

    @Test func aClosedConnectionIsNeverPicked() {
        var dispatcher = Dispatcher(maximumConnections: 2, depth: 4)
        var retired: [String] = []
        _ = dispatcher.acquire(retired: &retired)
        let a = FakeConnection("a")
        _ = dispatcher.leased(a, lease: "lease-a")
        let check13 = dispatcher.release(a, retired: &retired) == nil  // evaluated once, outside the macro
        #expect(check13)
        a.isActive = false
        let check14 = isLease(dispatcher.acquire(retired: &retired))  // evaluated once, outside the macro
        #expect(check14)
        #expect(retired == ["lease-a"])
        // a request still in flight on the dropped connection completes without effect
        let check15 = dispatcher.release(a, retired: &retired) == nil  // evaluated once, outside the macro
        #expect(check15)
    }

    @Test func aCancelledWaiterNeverGetsInLine() {
        var dispatcher = Dispatcher(maximumConnections: 1, depth: 1)
        var retired: [String] = []
        _ = dispatcher.acquire(retired: &retired)
        guard case .cancelled = dispatcher.enqueue(Waiter("w"), isCancelled: true, retired: &retired) else {
            Issue.record("expected cancelled")
            return
        }
        #expect(dispatcher.waiting == 0)
    }

    @Test func failedLeasesFailTheLineOrHandTheLeaseOn() {
        var dispatcher = Dispatcher(maximumConnections: 1, depth: 1)
        var retired: [String] = []
        _ = dispatcher.acquire(retired: &retired)
        let waiters = [Waiter("w0"), Waiter("w1")]
        for waiter in waiters { _ = dispatcher.enqueue(waiter, isCancelled: false, retired: &retired) }
        // the leasing request was cancelled: the first waiter leases instead
        let handOn = dispatcher.leaseFailed(abandonWaiters: false)
        #expect(handOn.failed.isEmpty)
        #expect(handOn.retry === waiters[0])
        #expect(dispatcher.leasing == 1)
        // connecting fails and nothing is kept: the whole line fails at once
        let abandoned = dispatcher.leaseFailed(abandonWaiters: true)
        #expect(abandoned.failed.map(\.name) == ["w1"])
        #expect(abandoned.retry == nil)
        #expect(dispatcher.leasing == 0)
        #expect(dispatcher.waiting == 0)
    }

    @Test func sweepsHandBackIdleConnectionsAndShutdownHandsBackAll() {
        var dispatcher = Dispatcher(maximumConnections: 3, depth: 1)
        var retired: [String] = []
        let connections = ["a", "b", "c"].map(FakeConnection.init)
        for connection in connections {
            let leases = isLease(dispatcher.acquire(retired: &retired))
            #expect(leases)
            _ = dispatcher.leased(connection, lease: "lease-\(connection.name)")
        }
        // a stays busy, b finishes, c finishes
        let check16 = dispatcher.release(connections[1], retired: &retired) == nil  // evaluated once, outside the macro
        #expect(check16)
        let check17 = dispatcher.release(connections[2], retired: &retired) == nil  // evaluated once, outside the macro
        #expect(check17)
        // used since the last sweep: all kept this time
        let check18 = dispatcher.sweep(retired: &retired).isEmpty  // evaluated once, outside the macro
        #expect(check18)
        #expect(retired.isEmpty)
        // the first connection with room (b) takes the next request; c stays idle a
        // whole period and goes back to the pool; a, busy, stays
        let check19 = connection(dispatcher.acquire(retired: &retired)) === connections[1]  // evaluated once, outside the macro
        #expect(check19)
        _ = dispatcher.sweep(retired: &retired)
        #expect(retired == ["lease-c"])
        #expect(dispatcher.slots.map(\.connection.name) == ["a", "b"])
        retired.removeAll()
        let waiter = Waiter("w")
        dispatcher = Dispatcher(maximumConnections: 1, depth: 1)
        _ = dispatcher.acquire(retired: &retired)
        _ = dispatcher.leased(connections[0], lease: "lease-a")
        _ = dispatcher.enqueue(waiter, isCancelled: false, retired: &retired)
        let failed = dispatcher.shutDown(retired: &retired)
        #expect(failed.map(\.name) == ["w"])
        #expect(retired == ["lease-a"])
        guard case .shutDown = dispatcher.acquire(retired: &retired) else {
            Issue.record("expected shutDown")
            return
        }
        let check20 = dispatcher.leased(FakeConnection("late"), lease: "late") == nil  // evaluated once, outside the macro
        #expect(check20)
    }
}
