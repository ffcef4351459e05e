import Foundation
import RedisClusterSessionStorage
import SessionStorage
import SessionStorageConformance
import Testing
import _RedisWire

/// The project's conformance suite on the real 6-node cluster.
@Suite("Redis Cluster store conformance")
struct ClusterConformanceTests {
    @Test(arguments: SessionStoreConformance.Case.allCases)
    func conformance(_ testCase: SessionStoreConformance.Case) async throws {
        let prefix = uniquePrefix("conf")
        try await withClusterStore(try clusterConfiguration(prefix: prefix, suffix: "sfx")) { store in
            let client = store.client
            let suite = SessionStoreConformance(
                store: store,
                options: .init(
                    expiry: .serverClock,
                    naming: SessionKeyNaming(prefix: prefix, suffix: "sfx"),
                    rawRecord: { key in try await client.send(.get(key)).string },
                    rawKeyExists: { key in try await client.send(RedisCommand("EXISTS", [.init(key)], keyIndices: [0])).int == 1 }
                )
            )
            try await suite.run(testCase)
        }
    }

    /// Our slot computation agrees with the server's `CLUSTER KEYSLOT` on random keys.
    @Test func slotsMatchTheServer() async throws {
        try await withClusterStore(try clusterConfiguration(prefix: nil)) { store in
            for _ in 0..<200 {
                let key = "sessions:session:\(sessionKey())"
                let reply = try await store.client.send(RedisCommand("CLUSTER", ["KEYSLOT", .init(key)]))
                #expect(reply.int == RedisHashSlot(key: key).rawValue)
            }
        }
    }

    /// The record and each index of one set land on their own slots, each written whole.
    @Test func recordAndIndexesLiveOnTheirOwnSlots() async throws {
        let prefix = uniquePrefix("slots")
        try await withClusterStore(try clusterConfiguration(prefix: prefix)) { store in
            let key = sessionKey()
            let now = Int(Date().timeIntervalSince1970)
            let metadata = try SessionMetadata(audiences: ["a1", "a2", "a3"], subjects: ["s1", "s2", "s3"])
            try await store.set(name: "session", key: key, value: "v", ttl: 60, currentTime: now, metadata: metadata)
            let keys = ["\(prefix):session:\(key)", "\(prefix):session:a1:s1", "\(prefix):session:a2:s2", "\(prefix):session:a3:s3"]
            #expect(Set(keys.map { RedisHashSlot(key: $0) }).count == 4)
            for (audience, subject) in [("a1", "s1"), ("a2", "s2"), ("a3", "s3")] {
                #expect(try await store.readMetadata(name: "session", audience: audience, subject: subject, currentTime: now) == [key: now + 60])
            }
            for index in keys.dropFirst() {
                let ttl = try await store.client.send(RedisCommand("TTL", [.init(index)], keyIndices: [0])).int ?? -3
                #expect((55...60).contains(ttl))
            }
            try await store.delete(name: "session", key: key, currentTime: now, metadata: metadata)
            #expect(try await store.get(name: "session", key: key, currentTime: now) == nil)
            #expect(try await store.readMetadata(name: "session", audience: "a2", subject: "s2", currentTime: now).isEmpty)
        }
    }

    @Test func noReachableNodeNamesTheNodes() async throws {
        var configuration = try clusterConfiguration(prefix: "x")
        // Ports nothing listens on (below the test servers' range).
        configuration.nodes = [.init(ip: "127.0.0.1", port: 1), .init(ip: "127.0.0.1", port: 2)]
        configuration.name = nil
        configuration.maxConnectionAttempts = 2
        configuration.maxConnectionTimeout = .seconds(2)
        try await withClusterStore(configuration) { store in
            let error = await #expect(throws: SessionStoreError.self) {
                try await store.get(name: "session", key: sessionKey(), currentTime: 1)
            }
            #expect(error?.code == .connectionFailed)
            #expect(error?.description.contains("127.0.0.1:1") == true)
            #expect(error?.description.contains("127.0.0.1:2") == true)
            let clusterError = error?.underlying as? RedisClusterError
            #expect(clusterError?.code == .noReachableNode)
            #expect(clusterError?.nodesTried.contains(.tcp(host: "127.0.0.1", port: 1)) == true)
            #expect(clusterError?.nodesTried.contains(.tcp(host: "127.0.0.1", port: 2)) == true)
        }
    }

    /// Stores naming the same cluster share one single-flight refresh guard.
    @Test func storesOfOneClusterShareRefreshes() async throws {
        var configuration = try clusterConfiguration(prefix: uniquePrefix("lock"))
        configuration.name = "shared-\(UUID().uuidString)"
        configuration.lockZone = "zone"
        let group = RedisClusterRefreshGroup.shared("zone\u{0}\u{0}\(configuration.name!)")
        try await withClusterStore(configuration) { first in
            try await withClusterStore(configuration) { second in
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    for _ in 0..<20 {
                        tasks.addTask { try await first.client.refreshTopology() }
                        tasks.addTask { try await second.client.refreshTopology() }
                    }
                    try await tasks.waitForAll()
                }
                // 40 refresh requests, far fewer actual refreshes.
                #expect(group.refreshCount >= 1)
                #expect(group.refreshCount < 40)
                #expect(first.client.topology?.coveredSlots == RedisHashSlot.count)
                #expect(second.client.topology?.coveredSlots == RedisHashSlot.count)
            }
        }
    }
}

/// Interop with what lua-resty-session 4.1.5 wrote into a real cluster (`redis-cluster.json`).
@Suite("Redis Cluster interop with lua-resty-session's vectors", .serialized)
struct ClusterInteropTests {
    @Test(arguments: ["redis-cluster.json"])
    func replayGivesTheSameResults(_ file: String) async throws {
        let vector = try StorageVector(file)
        var configuration = try clusterConfiguration(prefix: vector.config["prefix"] as? String, suffix: vector.config["suffix"] as? String)
        configuration.name = vector.config["name"] as? String
        configuration.lockZone = vector.config["lock_zone"] as? String
        let naming = SessionKeyNaming(prefix: configuration.prefix, suffix: configuration.suffix)
        let dump = try #require(vector.json["server_dump"] as? [String: Any])
        let masters = try #require(dump["masters"] as? [[String: Any]])
        let keys = masters.flatMap { ($0["keys"] as? [[String: Any]] ?? []).compactMap { $0["key"] as? String } }
        #expect(!keys.isEmpty)
        try await withClusterStore(configuration) { store in
            for key in keys { try await store.client.send(.unlink([key])) }
            try await vector.replay(on: store)
            // What we wrote is what the real library wrote: the same keys, types and values.
            for master in masters {
                for entry in master["keys"] as? [[String: Any]] ?? [] {
                    let key = try #require(entry["key"] as? String)
                    let type = try await store.client.send(RedisCommand("TYPE", [.init(key)], keyIndices: [0])).string
                    #expect(type == entry["type"] as? String, "\(key)")
                    if let value = entry["get"] as? String {
                        #expect(try await store.client.send(.get(key)).string == value)
                    }
                }
            }
            #expect(naming.recordKey(name: "session", key: "K").hasPrefix(configuration.prefix.map { $0 + ":" } ?? ""))
            for key in keys { try await store.client.send(.unlink([key])) }
        }
    }
}
