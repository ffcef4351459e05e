import NIOCore
import Testing

@testable import _MemcachedWire

@Suite("MemcachedConnectionStateMachine")
struct MemcachedConnectionStateMachineTests {
    typealias Machine = MemcachedConnectionStateMachine<Int>
    let get = MemcachedRequest.metaGet(key: "k", flags: [.returnValue])

    func meta(_ status: MemcachedMetaResponse.Status, opaque: String?) -> MemcachedResponse {
        .meta(.init(status: status, flags: .init(opaque: opaque)))
    }

    @Test func pipelinesRequestsAndAnswersInOrder() {
        var machine = Machine()
        #expect(machine.sendRequested(get, promise: 1) == .write(get, opaque: "1"))
        #expect(machine.sendRequested(get, promise: 2) == .write(get, opaque: "2"))
        #expect(machine.sendRequested(.metaNoOp, promise: 3) == .write(.metaNoOp, opaque: nil))
        #expect(machine.inFlight == 3)
        #expect(machine.responseReceived(meta(.miss, opaque: "1")) == .succeed(1, meta(.miss, opaque: "1")))
        #expect(machine.responseReceived(meta(.miss, opaque: "2")) == .succeed(2, meta(.miss, opaque: "2")))
        #expect(machine.responseReceived(meta(.noOp, opaque: nil)) == .succeed(3, meta(.noOp, opaque: nil)))
        #expect(machine.inFlight == 0)
    }

    @Test func anErrorReplyFailsOnlyItsRequest() {
        var machine = Machine()
        _ = machine.sendRequested(get, promise: 1)
        _ = machine.sendRequested(get, promise: 2)
        let tooLarge = MemcachedResponse.error(.init(kind: .serverError, message: "object too large for cache"))
        #expect(machine.responseReceived(tooLarge) == .fail(1, MemcachedClientError(.valueTooLarge, message: "")))
        #expect(machine.responseReceived(meta(.value, opaque: "2")) == .succeed(2, meta(.value, opaque: "2")))
        #expect(machine.isActive)
    }

    @Test func aForeignOpaqueClosesTheConnection() {
        var machine = Machine()
        _ = machine.sendRequested(get, promise: 1)
        _ = machine.sendRequested(get, promise: 2)
        #expect(machine.responseReceived(meta(.miss, opaque: "2")) == .closeAndFailAll([1, 2], MemcachedClientError(.protocolError, message: "")))
        #expect(machine.sendRequested(get, promise: 3) == .fail(3, MemcachedClientError(.connectionClosed, message: "")))
        #expect(machine.channelInactive() == .none)
    }

    @Test func aReplyOfTheWrongKindClosesTheConnection() {
        var machine = Machine()
        _ = machine.sendRequested(.stats(group: nil), promise: 1)
        #expect(machine.responseReceived(meta(.headerOnly, opaque: nil)) == .closeAndFailAll([1], MemcachedClientError(.protocolError, message: "")))
        var other = Machine()
        #expect(other.responseReceived(meta(.headerOnly, opaque: nil)) == .closeAndFailAll([], MemcachedClientError(.protocolError, message: "")))
    }

    @Test func statsReplies() {
        var machine = Machine()
        _ = machine.sendRequested(.stats(group: nil), promise: 1)
        #expect(machine.responseReceived(.stats(["pid": "1"])) == .succeed(1, .stats(["pid": "1"])))
    }

    @Test func timeoutsAndClosing() {
        var machine = Machine()
        #expect(machine.readTimedOut() == .none)
        _ = machine.sendRequested(get, promise: 1)
        #expect(machine.readTimedOut() == .closeAndFailAll([1], MemcachedClientError(.timeout, message: "")))
        #expect(machine.readTimedOut() == .none)

        var dropped = Machine()
        _ = dropped.sendRequested(get, promise: 1)
        _ = dropped.sendRequested(get, promise: 2)
        #expect(dropped.channelInactive() == .failAll([1, 2], MemcachedClientError(.connectionClosed, message: "")))
        #expect(dropped.sendRequested(get, promise: 3) == .fail(3, MemcachedClientError(.connectionClosed, message: "")))

        var failing = Machine()
        _ = failing.sendRequested(get, promise: 1)
        #expect(failing.errorCaught(MemcachedClientError(.tls, message: "")) == .closeAndFailAll([1], MemcachedClientError(.tls, message: "")))
        #expect(failing.responseReceived(meta(.miss, opaque: "1")) == .none)
    }

    @Test func opaquesAreFreshPerRequest() {
        var machine = Machine()
        var seen = Set<String>()
        for promise in 0..<1000 {
            guard case .write(_, let opaque?) = machine.sendRequested(get, promise: promise) else {
                Issue.record("no write")
                return
            }
            seen.insert(opaque)
            _ = machine.responseReceived(meta(.miss, opaque: opaque))
        }
        #expect(seen.count == 1000)
    }
}
