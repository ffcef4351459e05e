import Foundation
import RedisSessionStorage
import SessionStorage
import SessionStorageConformance
import Testing
import _RedisWire

/// Interop with what lua-resty-session 4.1.5 wrote into a real Redis (`shared/vectors/storage/redis.json`).
///
/// The vectors' keys are fixed, so these tests work in database 7 of the shared server and
/// remove exactly the keys they wrote.
@Suite("Redis interop with lua-resty-session's vectors", .serialized)
struct RedisInteropTests {
    static let database = 7

    struct DumpedKey {
        var key: String
        var type: String
        var ttl: Int
        var value: String?
        var scores: [String: Int]
    }

    static func dump(_ vector: StorageVector) throws -> [DumpedKey] {
        let dump = try #require(vector.json["server_dump"] as? [String: Any])
        let keys = try #require(dump["keys"] as? [[String: Any]])
        return keys.map { entry in
            var scores: [String: Int] = [:]
            for pair in entry["zrange_withscores"] as? [[String: Any]] ?? [] {
                scores[pair["member"] as! String] = Int(pair["score"] as! String)
            }
            return DumpedKey(
                key: entry["key"] as! String, type: entry["type"] as! String,
                ttl: (entry["ttl"] as! NSNumber).intValue, value: entry["get"] as? String, scores: scores
            )
        }
    }

    static func connection() async throws -> RedisConnection {
        let raw = try await Target.plain.rawConnection()
        try await raw.send(.select(database))
        return raw
    }

    static func configuration(_ vector: StorageVector) throws -> RedisSessionStore.Configuration {
        var configuration = try Target.plain.configuration(prefix: vector.config["prefix"] as? String ?? "")
        configuration.prefix = vector.config["prefix"] as? String
        configuration.suffix = vector.config["suffix"] as? String
        configuration.database = database
        return configuration
    }

    static func clear(_ raw: RedisConnection, _ keys: [DumpedKey]) async throws {
        try await raw.send(.unlink(keys.map(\.key)))
    }

    @Test func replayGivesTheSameResults() async throws {
        let vector = try StorageVector("redis.json")
        let raw = try await Self.connection()
        defer { raw.close() }
        let keys = try Self.dump(vector)
        try await Self.clear(raw, keys)
        try await withStore(try Self.configuration(vector)) { store in
            try await vector.replay(on: store)
        }
        try await Self.clear(raw, keys)
    }

    @Test func ourWritesMatchTheRealLibrary() async throws {
        let vector = try StorageVector("redis.json")
        let raw = try await Self.connection()
        defer { raw.close() }
        let expected = try Self.dump(vector)
        try await Self.clear(raw, expected)
        try await withStore(try Self.configuration(vector)) { store in
            // The writes of the vector (calls 1, 3 and 4), then compare the server's contents.
            for call in vector.calls where call.method == "set" {
                let args = call.args
                try await store.set(
                    name: args[0].string!, key: args[1].string!, value: args[2].string!, ttl: args[3].integer!,
                    currentTime: args[4].integer!, oldKey: args.count > 5 ? args[5].string : nil,
                    staleTTL: args.count > 6 ? args[6].integer ?? 10 : 10,
                    metadata: args.count > 7 ? try SessionMetadata(audiences: ["app1", "app2"], subjects: ["alice", "bob"]) : nil
                )
            }
        }
        let prefix = try #require(vector.config["prefix"] as? String)
        let written = try await raw.send(RedisCommand("KEYS", [.init("\(prefix):*")])).array?.compactMap(\.string) ?? []
        #expect(Set(written) == Set(expected.map(\.key)))
        for key in expected {
            #expect(try await raw.type(key.key) == key.type, "\(key.key)")
            let ttl = try await raw.ttl(key.key)
            #expect(abs(ttl - key.ttl) <= 1, "\(key.key): TTL \(ttl), the real library's \(key.ttl)")
            if key.type == "string" {
                #expect(try await raw.send(.get(key.key)).string == key.value)
            } else {
                #expect(try await raw.zscores(key.key) == key.scores)
            }
        }
        try await Self.clear(raw, expected)
    }

    @Test func weReadWhatTheRealLibraryWrote() async throws {
        let vector = try StorageVector("redis.json")
        let raw = try await Self.connection()
        defer { raw.close() }
        let dumped = try Self.dump(vector)
        try await Self.clear(raw, dumped)
        // Recreate the real library's layout with raw commands.
        for key in dumped {
            if key.type == "string" {
                try await raw.send(.set(key.key, key.value!, expireSeconds: max(key.ttl, 1)))
            } else {
                for (member, score) in key.scores {
                    try await raw.send(RedisCommand("ZADD", [.init(key.key), .init(score), .init(member)]))
                }
                try await raw.send(RedisCommand("EXPIRE", [.init(key.key), .init(key.ttl)]))
            }
        }
        try await withStore(try Self.configuration(vector)) { store in
            for call in vector.calls {
                let args = call.args
                switch call.method {
                case "get":
                    let value = try await store.get(name: args[0].string!, key: args[1].string!, currentTime: args[2].integer!)
                    #expect(value == call.returns.first?.string)
                case "read_metadata":
                    let result = try await store.readMetadata(
                        name: args[0].string!, audience: args[1].string!, subject: args[2].string!, currentTime: args[3].integer!)
                    var expected: [String: Int] = [:]
                    if case .map(let map)? = call.returns.first {
                        for (key, value) in map { expected[key] = value.string.flatMap { Int($0) } }
                    }
                    #expect(result == expected)
                default:
                    break
                }
            }
        }
        try await Self.clear(raw, dumped)
    }
}
