import Foundation
import RedisClusterSessionStorage
import SessionStorage
import Synchronization
import Testing
import _RedisWire

/// A master of the test cluster, reached directly.
struct Master: Sendable {
    var address: RedisAddress
    var id: String
    var connection: RedisConnection

    static func all(_ client: RedisClusterClient) async throws -> [Master] {
        try await client.refreshTopology()
        let topology = try #require(client.topology)
        var masters: [Master] = []
        for address in topology.masters {
            let connection = try await connect(address)
            let id = try #require(try await connection.send(RedisCommand("CLUSTER", ["MYID"])).string)
            masters.append(Master(address: address, id: id, connection: connection))
        }
        return masters
    }
}

/// Moves `slot` from `source` to `target` the way `redis-cli --cluster reshard` does, pausing
/// while the slot is half-migrated so that clients meet `ASK` for keys already moved.
func migrate(slot: Int, from source: Master, to target: Master, others: [Master], pause: Duration) async throws {
    try await target.connection.send(RedisCommand("CLUSTER", ["SETSLOT", .init(slot), "IMPORTING", .init(source.id)]))
    try await source.connection.send(RedisCommand("CLUSTER", ["SETSLOT", .init(slot), "MIGRATING", .init(target.id)]))
    while true {
        let keys = try await source.connection.send(RedisCommand("CLUSTER", ["GETKEYSINSLOT", .init(slot), 100])).array?
            .compactMap(\.string) ?? []
        if keys.isEmpty { break }
        try await source.connection.send(
            RedisCommand(
                "MIGRATE",
                [.init(target.address.host!), .init(target.address.port!), "", 0, 5000,
                 "AUTH", .init(try env("REDIS_CLUSTER_PASSWORD")), "KEYS"] + keys.map { .init($0) }
            )
        )
        try await Task.sleep(for: pause)
    }
    try await Task.sleep(for: pause)
    try await target.connection.send(RedisCommand("CLUSTER", ["SETSLOT", .init(slot), "NODE", .init(target.id)]))
    try await source.connection.send(RedisCommand("CLUSTER", ["SETSLOT", .init(slot), "NODE", .init(target.id)]))
    for other in others {
        try await other.connection.send(RedisCommand("CLUSTER", ["SETSLOT", .init(slot), "NODE", .init(target.id)]))
    }
}

final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func stop() { flag.store(true, ordering: .relaxed) }
    var stopped: Bool { flag.load(ordering: .relaxed) }
}

struct LoadResult: Sendable {
    var operations = 0
    var failures = 0
    var wrongValues = 0
    var firstError: String?
    var lastValues: [String: String] = [:]
}

/// Resharding and failover: they change the shared cluster, so they run one at a time and put
/// it back as it was (slots home again, the killed node restarted and master again).
@Suite("Redis Cluster resharding and failover", .serialized)
struct ClusterDestructiveTests {
    @Test func reshardingUnderLoadLosesNothing() async throws {
        let prefix = uniquePrefix("reshard")
        try await withClusterStore(try clusterConfiguration(prefix: prefix)) { store in
            let masters = try await Master.all(store.client)
            defer { for master in masters { master.connection.close() } }
            try #require(masters.count == 3)
            let (source, target, other) = (masters[0], masters[1], masters[2])
            let topology = try #require(store.client.topology)
            let keys: [[String]] = (0..<50).map { _ in (0..<4).map { _ in sessionKey() } }
            // The slots to move: those of records (and indexes) that the source serves.
            var slots: [Int] = []
            for (task, taskKeys) in keys.enumerated() {
                for key in taskKeys + ["@index\(task)"] {
                    let name = key.hasPrefix("@") ? "\(prefix):session:app:task-\(task)" : "\(prefix):session:\(key)"
                    let slot = RedisHashSlot(key: name)
                    if topology.master(for: slot) == source.address, !slots.contains(slot.rawValue), slots.count < 16 {
                        slots.append(slot.rawValue)
                    }
                }
            }
            try #require(slots.count >= 8)
            let now = Int(Date().timeIntervalSince1970)
            let stop = StopFlag()
            let load = Task {
                try await withThrowingTaskGroup(of: LoadResult.self) { group in
                    for (task, taskKeys) in keys.enumerated() {
                        group.addTask {
                            var result = LoadResult()
                            var round = 0
                            let metadata = try SessionMetadata(audiences: ["app"], subjects: ["task-\(task)"])
                            repeat {
                                round += 1
                                for key in taskKeys {
                                    let value = "value-\(task)-\(round)-\(key.prefix(8))"
                                    do {
                                        try await store.set(name: "session", key: key, value: value, ttl: 300, currentTime: now, metadata: metadata)
                                        result.lastValues[key] = value
                                        let read = try await store.get(name: "session", key: key, currentTime: now)
                                        if read != value { result.wrongValues += 1 }
                                        result.operations += 2
                                    } catch {
                                        result.failures += 1
                                        if result.firstError == nil { result.firstError = String(reflecting: error) }
                                    }
                                }
                            } while !stop.stopped
                            return result
                        }
                    }
                    var total = LoadResult()
                    for try await result in group {
                        total.operations += result.operations
                        total.failures += result.failures
                        total.wrongValues += result.wrongValues
                        total.firstError = total.firstError ?? result.firstError
                        total.lastValues.merge(result.lastValues) { $1 }
                    }
                    return total
                }
            }
            // Let the load start, then move the slots away and back.
            try await Task.sleep(for: .milliseconds(300))
            var restored = false
            do {
                for slot in slots {
                    try await migrate(slot: slot, from: source, to: target, others: [other], pause: .milliseconds(40))
                }
                for slot in slots {
                    try await migrate(slot: slot, from: target, to: source, others: [other], pause: .milliseconds(40))
                }
                restored = true
            } catch {
                stop.stop()
                _ = try? await load.value
                throw error
            }
            try await Task.sleep(for: .milliseconds(200))
            stop.stop()
            let result = try await load.value
            #expect(restored)
            #expect(result.operations > 0)
            #expect(result.failures == 0, "\(result.firstError ?? "")")
            #expect(result.wrongValues == 0)
            let statistics = store.client.statistics
            #expect(statistics.moved > 0, "MOVED replies seen: \(statistics.moved)")
            #expect(statistics.ask > 0, "ASK replies seen: \(statistics.ask)")
            print("resharding: \(slots.count) slots moved and back; \(result.operations) operations, \(result.failures) failed, \(result.wrongValues) wrong; MOVED \(statistics.moved), ASK \(statistics.ask), retried \(statistics.retriedErrors), refreshes \(statistics.refreshes)")
            // Nothing lost: every last write is there, and every index lists its task's sessions.
            for (key, value) in result.lastValues {
                #expect(try await store.get(name: "session", key: key, currentTime: now) == value)
            }
            for (task, taskKeys) in keys.enumerated() {
                let index = try await store.readMetadata(name: "session", audience: "app", subject: "task-\(task)", currentTime: now)
                #expect(Set(index.keys) == Set(taskKeys))
            }
            // The slots are home again.
            try await store.client.refreshTopology()
            for slot in slots {
                #expect(store.client.topology?.master(for: RedisHashSlot(rawValue: slot)!) == source.address)
            }
        }
    }

    @Test func redirectionsExhaustedIsATypedError() async throws {
        var configuration = try clusterConfiguration(prefix: uniquePrefix("redir"))
        configuration.maxRedirections = 0
        configuration.name = nil
        try await withClusterStore(configuration) { store in
            let masters = try await Master.all(store.client)
            defer { for master in masters { master.connection.close() } }
            let (source, target) = (masters[0], masters[1])
            let topology = try #require(store.client.topology)
            var key = sessionKey()
            while topology.master(for: RedisHashSlot(key: "\(configuration.prefix!):session:\(key)")) != source.address { key = sessionKey() }
            let slot = RedisHashSlot(key: "\(configuration.prefix!):session:\(key)").rawValue
            try await target.connection.send(RedisCommand("CLUSTER", ["SETSLOT", .init(slot), "IMPORTING", .init(source.id)]))
            try await source.connection.send(RedisCommand("CLUSTER", ["SETSLOT", .init(slot), "MIGRATING", .init(target.id)]))
            // The key does not exist on the source: it answers ASK, one redirection too many.
            let error = await #expect(throws: SessionStoreError.self) {
                try await store.get(name: "session", key: key, currentTime: 1)
            }
            try await source.connection.send(RedisCommand("CLUSTER", ["SETSLOT", .init(slot), "STABLE"]))
            try await target.connection.send(RedisCommand("CLUSTER", ["SETSLOT", .init(slot), "STABLE"]))
            #expect(error?.code == .redirectionsExhausted)
            #expect((error?.underlying as? RedisClusterError)?.code == .tooManyRedirections)
            #expect((error?.underlying as? RedisClusterError)?.serverError?.prefix == "ASK")
            #expect(store.client.statistics.ask == 1)
            // Stable again: the same read works.
            #expect(try await store.get(name: "session", key: key, currentTime: 1) == nil)
        }
    }

    /// The promise on failover: a write the store acknowledged AND that reached the replica
    /// before the master died is readable on the promoted replica. A write acknowledged but not
    /// yet replicated may be lost (Redis replicates asynchronously); the store promises nothing
    /// more than Redis does. Operations work again within cluster-node-timeout (2 s here) plus
    /// `maxConnectionTimeout`.
    @Test func failoverOfAMaster() async throws {
        _ = try env("SERVICES_ROOT")
        let prefix = uniquePrefix("failover")
        var configuration = try clusterConfiguration(prefix: prefix)
        configuration.maxConnectionAttempts = 50
        configuration.maxConnectionTimeout = .seconds(8)
        try await withClusterStore(configuration) { store in
            let masters = try await Master.all(store.client)
            defer { for master in masters { master.connection.close() } }
            let victim = masters[2]
            let topology = try #require(store.client.topology)
            let now = Int(Date().timeIntervalSince1970)
            var written: [String: String] = [:]
            while written.count < 100 {
                let key = sessionKey()
                guard topology.master(for: RedisHashSlot(key: "\(prefix):session:\(key)")) == victim.address else { continue }
                let value = "before-\(key.prefix(8))"
                try await store.set(name: "session", key: key, value: value, ttl: 300, currentTime: now)
                written[key] = value
            }
            // Make the promise checkable: wait until the replica acknowledged everything so far.
            let role = try await victim.connection.send(.role())
            let replicaPort = try #require(role.array?[2].array?.first?.array?[1].int ?? role.array?[2].array?.first?.array?[1].string.flatMap { Int($0) })
            let masterOffset = try #require(try await victim.connection.send(RedisCommand("INFO", ["replication"])).infoField("master_repl_offset").flatMap { Int($0) })
            let replica = try await connect(.tcp(host: victim.address.host!, port: replicaPort))
            defer { replica.close() }
            var replicated = false
            for _ in 0..<100 where !replicated {
                let offset = try await replica.send(RedisCommand("INFO", ["replication"])).infoField("slave_repl_offset").flatMap { Int($0) } ?? 0
                replicated = offset >= masterOffset
                if !replicated { try await Task.sleep(for: .milliseconds(20)) }
            }
            try #require(replicated, "the replica did not catch up")

            try await services(["kill", "cluster-node:\(victim.address.port!)"])
            let killedAt = ContinuousClock.now
            print("failover: killed \(victim.address)")
            var recoveredAfter: Duration?
            var attempts = 0
            while recoveredAfter == nil, killedAt.duration(to: .now) < .seconds(30) {
                attempts += 1
                do {
                    for (key, value) in written {
                        let read = try await store.get(name: "session", key: key, currentTime: now)
                        #expect(read == value, "an acknowledged, replicated write was lost or changed")
                    }
                    let fresh = sessionKey()
                    try await store.set(name: "session", key: fresh, value: "after", ttl: 300, currentTime: now)
                    #expect(try await store.get(name: "session", key: fresh, currentTime: now) == "after")
                    recoveredAfter = killedAt.duration(to: .now)
                } catch {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let recovery = try #require(recoveredAfter, "operations did not work again within 30 s")
            print("failover: operations worked again \(recovery) after the kill (\(attempts) rounds); statistics \(store.client.statistics)")
            #expect(recovery <= .seconds(2) + configuration.maxConnectionTimeout + .seconds(1))
            // The promoted replica serves the victim's slots now.
            try await store.client.refreshTopology()
            #expect(store.client.topology?.masters.contains(victim.address) == false)

            // Restore: restart the node (it rejoins as a replica), then make it master again.
            try await services(["restart", "cluster-node:\(victim.address.port!)"])
            print("failover: node restarted")
            let restarted = try await connect(victim.address)
            defer { restarted.close() }
            // The restarted node must stop on the SIGTERM of `services.sh stop` (it once
            // inherited the test runner's blocked signals).
            let restartedPID = try #require(
                try await restarted.send(RedisCommand("INFO", ["server"])).infoField("process_id").flatMap { Int($0) })
            let status = try String(contentsOfFile: "/proc/\(restartedPID)/status", encoding: .utf8)
            let blocked = try #require(
                status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") }
                    .flatMap { UInt64($0.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16) })
            #expect(blocked & (1 << UInt64(SIGTERM - 1)) == 0, "the restarted node blocks SIGTERM")
            var synced = false
            for _ in 0..<300 where !synced {
                let info = try await restarted.send(RedisCommand("INFO", ["replication"]))
                synced = info.infoField("master_link_status") == "up"
                if !synced { try await Task.sleep(for: .milliseconds(100)) }
            }
            try #require(synced, "the restarted node did not sync with the promoted replica")
            print("failover: restarted node synced; CLUSTER FAILOVER")
            // A manual failover times out after 5 s when the master never heard of it (the
            // restarted node's cluster-bus link to it may not be up yet): ask again then.
            var master = false
            for _ in 0..<5 where !master {
                try await restarted.send(RedisCommand("CLUSTER", ["FAILOVER"]))
                for _ in 0..<70 where !master {
                    master = try await restarted.send(.role()).array?.first?.string == "master"
                    if !master { try await Task.sleep(for: .milliseconds(100)) }
                }
            }
            #expect(master, "the restarted node did not become master again")
            // Every node agrees before the next test.
            for _ in 0..<100 {
                let info = try await restarted.send(RedisCommand("CLUSTER", ["INFO"])).string ?? ""
                if info.contains("cluster_state:ok") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            try await store.client.refreshTopology()
            #expect(try await store.get(name: "session", key: written.keys.first!, currentTime: now) != nil)
        }
    }
}
