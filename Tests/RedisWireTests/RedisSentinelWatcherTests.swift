import NIOCore
import Testing
@testable import _RedisWire

@Suite("Redis Sentinel +switch-master")
struct RedisSentinelWatcherTests {
    func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }

    func message(_ payload: String, channel: String = "+switch-master", push: Bool = true) -> RESPValue {
        let elements = [bulk("message"), bulk(channel), bulk(payload)]
        return push ? .push(elements) : .array(elements)
    }

    @Test(arguments: [true, false])
    func parsesASwitchOfOurMaster(push: Bool) throws {
        let change = try #require(
            RedisMasterSwitch.parse(message: message("sessmaster 127.0.0.1 6379 10.0.0.2 6380", push: push), masterName: "sessmaster")
        )
        #expect(change.masterName == "sessmaster")
        #expect(change.oldMaster == .tcp(host: "127.0.0.1", port: 6379))
        #expect(change.newMaster == .tcp(host: "10.0.0.2", port: 6380))
    }

    @Test func ignoresAnotherMaster() {
        #expect(RedisMasterSwitch.parse(message: message("other 127.0.0.1 6379 10.0.0.2 6380"), masterName: "sessmaster") == nil)
        // A name that only starts like ours is another group.
        #expect(RedisMasterSwitch.parse(message: message("sessmaster2 127.0.0.1 6379 10.0.0.2 6380"), masterName: "sessmaster") == nil)
    }

    @Test(arguments: [
        "", "sessmaster", "sessmaster 127.0.0.1 6379 10.0.0.2", "sessmaster 127.0.0.1 6379 10.0.0.2 6380 extra",
        "sessmaster 127.0.0.1 port 10.0.0.2 6380", "sessmaster 127.0.0.1 6379 10.0.0.2 0", "sessmaster 127.0.0.1 6379 10.0.0.2 70000",
    ])
    func ignoresMalformedPayloads(_ payload: String) {
        #expect(RedisMasterSwitch.parse(message: message(payload), masterName: "sessmaster") == nil)
    }

    @Test func ignoresOtherChannelsAndShapes() {
        let payload = "sessmaster 127.0.0.1 6379 10.0.0.2 6380"
        #expect(RedisMasterSwitch.parse(message: message(payload, channel: "+sdown"), masterName: "sessmaster") == nil)
        #expect(RedisMasterSwitch.parse(message: .push([bulk("subscribe"), bulk("+switch-master"), .integer(1)]), masterName: "sessmaster") == nil)
        #expect(RedisMasterSwitch.parse(message: .push([bulk("message"), bulk("+switch-master")]), masterName: "sessmaster") == nil)
        #expect(RedisMasterSwitch.parse(message: bulk(payload), masterName: "sessmaster") == nil)
    }

    // MARK: subscriber connections

    typealias Machine = RedisConnectionStateMachine<Int>

    func readyMachine(subscriber: Bool, resp2: Bool) -> Machine {
        var m = Machine(
            handshake: .init(username: nil, password: nil, database: 0, clientName: nil, tls: false, subscriber: subscriber),
            sendTimeout: .seconds(1), readTimeout: .seconds(2)
        )
        _ = m.connected(now: .now())
        let hello: RESPValue = resp2
            ? .error(RESPError(message: "ERR unknown command 'HELLO'"))
            : .map([RESPMapEntry(key: bulk("proto"), value: .integer(3))])
        _ = m.received(hello, now: .now())
        #expect(m.isReady)
        return m
    }

    @Test(arguments: [true, false])
    func subscriberHandsOutMessagesAfterTheConfirmation(resp2: Bool) {
        var m = readyMachine(subscriber: true, resp2: resp2)
        guard case .write = m.send([RedisCommand("SUBSCRIBE", ["+switch-master"])], reply: 1, now: .now()) else {
            Issue.record("not written"); return
        }
        let confirmation = [bulk("subscribe"), bulk("+switch-master"), .integer(1)]
        guard case .succeed(1, let replies) = m.received(resp2 ? .array(confirmation) : .push(confirmation), now: .now()) else {
            Issue.record("the confirmation did not answer SUBSCRIBE"); return
        }
        #expect(replies == [.array(confirmation)])
        let value = message("sessmaster 127.0.0.1 1 127.0.0.1 2", push: !resp2)
        guard case .push(let pushed) = m.received(value, now: .now()) else { Issue.record("message not handed out"); return }
        #expect(pushed == value)
        #expect(m.isReady)
    }

    @Test func ordinaryConnectionsDropPushesAndReplyToRequests() {
        var m = readyMachine(subscriber: false, resp2: false)
        guard case .none = m.received(message("x"), now: .now()) else { Issue.record("a push was not dropped"); return }
        _ = m.send([.ping()], reply: 7, now: .now())
        guard case .succeed(7, _) = m.received(.simpleString(ByteBuffer(string: "PONG")), now: .now()) else {
            Issue.record("no reply"); return
        }
    }
}
