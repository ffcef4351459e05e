import SessionStorage
import SessionStorageConformance
import Testing

@Suite("Memory store interop with lua-resty-session's shm vectors")
struct MemoryInteropTests {
    @Test func replay() async throws {
        let file = "shm.json"
        let vector = try StorageVector(file)
        let zone = MemoryZone(name: "interop-\(file)", capacity: 8 << 20)
        let store = MemorySessionStore(
            configuration: .init(
                prefix: vector.config["prefix"] as? String, suffix: vector.config["suffix"] as? String),
            zone: zone)
        try await vector.replay(on: store, getHonoursCurrentTime: true)
    }

    @Test func layoutMatchesTheRealLibrary() async throws {
        let vector = try StorageVector("shm.json")
        let zone = MemoryZone(name: "interop-layout", capacity: 8 << 20)
        let store = MemorySessionStore(configuration: .init(prefix: "sessions"), zone: zone)
        let t = vector.currentTime
        // Calls 1, 3, 4 of the vector: the writes.
        for call in vector.calls.prefix(4) where call.method == "set" {
            let args = call.args
            let metadata = try SessionMetadata(audiences: ["app1", "app2"], subjects: ["alice", "bob"])
            let hasMetadata = args.count > 7
            try await store.set(
                name: args[0].string!, key: args[1].string!, value: args[2].string!, ttl: args[3].integer!,
                currentTime: t, oldKey: args.count > 5 ? args[5].string : nil, staleTTL: args.count > 6 ? args[6].integer ?? 10 : 10,
                metadata: hasMetadata ? metadata : nil)
        }
        let dump = try #require(vector.harnessValue("server_dump_after_sets") as? [[String: Any]])
        for item in dump {
            let key = try #require(item["key"] as? String)
            switch item["kind"] as? String {
            case "value":
                #expect(zone.get(key, now: t) == item["value"] as? String, "record \(key)")
                let ttl = try #require(item["ttl"] as? Int)
                #expect(zone.expiry(of: key, now: t) == t + ttl, "ttl of \(key)")
            case "list":
                let items = try #require(item["items"] as? [String])
                #expect(zone.get(key, now: t) == items.joined(), "index \(key)")
            default:
                Issue.record("unknown dump kind")
            }
        }
    }
}
