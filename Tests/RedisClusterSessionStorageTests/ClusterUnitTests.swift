import Foundation
import NIOCore
import SessionStorageConformance
import Testing
@testable import _RedisWire

@Suite("Cluster hash slots, slot map and state machine")
struct ClusterUnitTests {
    @Test func crc16IsXModem() {
        #expect(RedisHashSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(RedisHashSlot.crc16([]) == 0)
    }

    @Test func knownSlots() {
        #expect(RedisHashSlot(key: "foo").rawValue == 12182)
        #expect(RedisHashSlot(key: "bar").rawValue == 5061)
        #expect(RedisHashSlot(key: "123456789").rawValue == 0x31C3 & 0x3FFF)
    }

    @Test func hashTags() {
        let following = RedisHashSlot(key: "{user1000}.following")
        #expect(following == RedisHashSlot(key: "{user1000}.followers"))
        #expect(following == RedisHashSlot(key: "user1000"))
        // An empty tag hashes the whole key; only the first `{` … `}` counts.
        #expect(RedisHashSlot(key: "{}.a").rawValue == Int(RedisHashSlot.crc16(Array("{}.a".utf8)) & 0x3FFF))
        #expect(RedisHashSlot(key: "foo{bar}{zap}") == RedisHashSlot(key: "bar"))
        #expect(RedisHashSlot(key: "foo{{bar}}zap") == RedisHashSlot(key: "{bar"))
    }

    @Test func aCommandsSlotIsTheSameWhateverItsKeyArgumentsAreMadeOf() throws {
        let text = RedisCommand("GET", [.init("{user1000}.x")], keyIndices: [0])
        let bytes = RedisCommand("GET", [.init(ByteBuffer(string: "{user1000}.y"))], keyIndices: [0])
        let both = RedisCommand("DEL", [.init("{user1000}.a"), .init(ByteBuffer(string: "{user1000}.b"))], keyIndices: [0, 1])
        let number = RedisCommand("GET", [.init(123_456_789)], keyIndices: [0])
        #expect(try text.hashSlot() == RedisHashSlot(key: "user1000"))
        #expect(try bytes.hashSlot() == RedisHashSlot(key: "user1000"))
        #expect(try both.hashSlot() == RedisHashSlot(key: "user1000"))
        #expect(try number.hashSlot() == RedisHashSlot(key: Array("123456789".utf8)))
        #expect(try number.hashSlot()?.rawValue == 0x31C3 & 0x3FFF)
        #expect(throws: RedisClusterError.self) {
            try RedisCommand("DEL", [.init("a"), .init("b")], keyIndices: [0, 1]).hashSlot()
        }
    }

    /// The slots the real cluster reported (`CLUSTER KEYSLOT`) in lua-resty-session's vector.
    @Test func slotsOfTheVectorMatchTheServer() throws {
        let vector = try StorageVector("redis-cluster.json")
        let dump = try #require(vector.json["server_dump"] as? [String: Any])
        let masters = try #require(dump["masters"] as? [[String: Any]])
        var checked = 0
        for master in masters {
            for key in master["keys"] as? [[String: Any]] ?? [] {
                let name = try #require(key["key"] as? String)
                let slot = try #require((key["keyslot"] as? NSNumber)?.intValue)
                #expect(RedisHashSlot(key: name).rawValue == slot, "\(name)")
                checked += 1
            }
        }
        #expect(checked >= 4)
    }

    @Test func commandsNameTheirSlot() throws {
        #expect(try RedisCommand.get("foo").hashSlot()?.rawValue == 12182)
        #expect(try RedisCommand.ping().hashSlot() == nil)
        #expect(throws: RedisClusterError.self) { try RedisCommand.del(["foo", "bar"]).hashSlot() }
        #expect(try RedisCommand.del(["{a}1", "{a}2"]).hashSlot() == RedisHashSlot(key: "a"))
    }

    static func node(_ fields: [(String, RESPValue)]) -> RESPValue {
        .map(fields.map { RESPMapEntry(key: .bulkString(ByteBuffer(string: $0.0)), value: $0.1) })
    }

    static func text(_ string: String) -> RESPValue { .bulkString(ByteBuffer(string: string)) }

    @Test func readsClusterShards() throws {
        let shard1 = Self.node([
            ("slots", .array([.integer(0), .integer(5460), .integer(10923), .integer(10923)])),
            ("nodes", .array([
                Self.node([("id", Self.text("a")), ("port", .integer(7000)), ("ip", Self.text("10.0.0.1")), ("endpoint", Self.text("10.0.0.1")), ("role", Self.text("master")), ("health", Self.text("online"))]),
                Self.node([("id", Self.text("b")), ("port", .integer(7003)), ("ip", Self.text("10.0.0.4")), ("endpoint", Self.text("10.0.0.4")), ("role", Self.text("replica")), ("health", Self.text("online"))]),
            ])),
        ])
        // After a failover: the failed master is still listed as master, but not online.
        let shard2 = Self.node([
            ("slots", .array([.integer(5461), .integer(10922)])),
            ("nodes", .array([
                Self.node([("port", .integer(7001)), ("ip", Self.text("10.0.0.2")), ("endpoint", Self.text("10.0.0.2")), ("role", Self.text("master")), ("health", Self.text("fail"))]),
                Self.node([("port", .integer(7004)), ("ip", Self.text("10.0.0.5")), ("endpoint", Self.text("?")), ("role", Self.text("master")), ("health", Self.text("online"))]),
            ])),
        ])
        let topology = try RedisClusterTopology.fromShards(.array([shard1, shard2]), connectedHost: "127.0.0.1")
        #expect(topology.master(for: RedisHashSlot(rawValue: 0)!) == .tcp(host: "10.0.0.1", port: 7000))
        #expect(topology.master(for: RedisHashSlot(rawValue: 10923)!) == .tcp(host: "10.0.0.1", port: 7000))
        #expect(topology.master(for: RedisHashSlot(rawValue: 5461)!) == .tcp(host: "10.0.0.5", port: 7004))
        #expect(topology.master(for: RedisHashSlot(rawValue: 16383)!) == nil)
        #expect(topology.coveredSlots == 5461 + 1 + 5462)
        #expect(Set(topology.masters) == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.5", port: 7004)])
    }

    @Test func readsClusterSlots() throws {
        let reply = RESPValue.array([
            .array([.integer(0), .integer(8191), .array([Self.text("127.0.0.1"), .integer(7000), Self.text("id1")]), .array([Self.text("127.0.0.1"), .integer(7003)])]),
            .array([.integer(8192), .integer(16383), .array([Self.text(""), .integer(7001)])]),
        ])
        let topology = try RedisClusterTopology.fromSlots(reply, connectedHost: "192.168.1.9")
        #expect(topology.master(for: RedisHashSlot(rawValue: 8191)!) == .tcp(host: "127.0.0.1", port: 7000))
        #expect(topology.master(for: RedisHashSlot(rawValue: 8192)!) == .tcp(host: "192.168.1.9", port: 7001))
        #expect(topology.coveredSlots == RedisHashSlot.count)
        #expect(throws: RedisClientError.self) { try RedisClusterTopology.fromSlots(.integer(1), connectedHost: "x") }
    }

    /// Instants of a test clock: plain durations since an origin.
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    @Test func stateMachineRoutesAndRefreshesSingleFlight() {
        var machine = RedisClusterStateMachine<Instant>(minimumRefreshInterval: .milliseconds(100))
        let slot = RedisHashSlot(key: "foo")
        let a = RedisAddress.tcp(host: "127.0.0.1", port: 7000)
        let b = RedisAddress.tcp(host: "127.0.0.1", port: 7001)
        #expect(machine.route(slot) == .refreshFirst)
        #expect(machine.requestRefresh(now: Instant(offset: .zero)) == .startRefresh)
        // Single flight: a second request while one runs starts nothing.
        #expect(machine.requestRefresh(now: Instant(offset: .milliseconds(1)), force: true) == .none)
        machine.refreshSucceeded(RedisClusterTopology(shards: [.init(slots: [0...16383], master: a)]), now: Instant(offset: .milliseconds(10)))
        #expect(machine.route(slot) == .node(a))
        // MOVED moves the slot at once; the refresh it asks for is rate-limited.
        #expect(machine.moved(slot, to: b, now: Instant(offset: .milliseconds(50))) == .none)
        #expect(machine.route(slot) == .node(b))
        #expect(machine.route(RedisHashSlot(key: "bar")) == .node(a))
        #expect(machine.moved(slot, to: b, now: Instant(offset: .milliseconds(200))) == .startRefresh)
        #expect(machine.moved(slot, to: b, now: Instant(offset: .milliseconds(300))) == .none)
        machine.refreshFailed(now: Instant(offset: .milliseconds(310)))
        #expect(machine.refreshState == .idle(lastEnded: Instant(offset: .milliseconds(310))))
        // A forced refresh ignores the rate limit.
        #expect(machine.requestRefresh(now: Instant(offset: .milliseconds(311)), force: true) == .startRefresh)
    }

    @Test func redirectionsAreRecognised() {
        if case .moved(let slot, let address)? = RedisClusterClient.Redirection(RESPError(message: "MOVED 3999 127.0.0.1:6381")) {
            #expect(slot.rawValue == 3999)
            #expect(address == .tcp(host: "127.0.0.1", port: 6381))
        } else {
            Issue.record("MOVED not recognised")
        }
        if case .ask(let address)? = RedisClusterClient.Redirection(RESPError(message: "ASK 3999 127.0.0.1:6381")) {
            #expect(address == .tcp(host: "127.0.0.1", port: 6381))
        } else {
            Issue.record("ASK not recognised")
        }
        for message in ["TRYAGAIN Multiple keys request during rehashing of slot", "CLUSTERDOWN The cluster is down", "LOADING Redis is loading"] {
            if case .retryLater? = RedisClusterClient.Redirection(RESPError(message: message)) {} else { Issue.record("\(message)") }
        }
        #expect(RedisClusterClient.Redirection(RESPError(message: "ERR unknown")) == nil)
    }

    @Test func errorsNameNodesButNoSecrets() {
        let error = RedisClusterError(.noReachableNode, message: "no node", nodesTried: [.tcp(host: "127.0.0.1", port: 1), .tcp(host: "127.0.0.1", port: 2)])
        #expect(error.description.contains("127.0.0.1:1"))
        #expect(error.description.contains("127.0.0.1:2"))
    }
}
