import _MemcachedWire
import Foundation
import Logging
import MemcachedSessionStorage
import NIOCore
import SessionStorage
import SessionStorageConformance
import Testing

@Suite("Memcached client against servers of the test's own", .serialized)
struct MemcachedClientTests {
    static let counters = ["cmd_get", "cmd_set", "cmd_touch", "delete_hits", "delete_misses", "incr_misses", "incr_hits", "get_misses"]

    @Test func invalidKeysNeverReachTheServer() async throws {
        let server = try OwnMemcached()
        defer { server.kill() }
        try await withClient(.init(server: server.address)) { client in
            try await client.set("valid", value: ByteBuffer(string: "v"), expiration: .seconds(60))
            let before = try await client.stats()
            let badKeys = ["with space", "cr\rlf", "line\nfeed", "crlf\r\nget x", "tab\tkey", String(repeating: "k", count: 251), "", "del\u{7F}"]
            for key in badKeys {
                let getError = await #expect(throws: MemcachedClientError.self) { _ = try await client.get(key) }
                let setError = await #expect(throws: MemcachedClientError.self) {
                    try await client.set(key, value: ByteBuffer(string: "v"), expiration: .seconds(60))
                }
                let deleteError = await #expect(throws: MemcachedClientError.self) { try await client.delete(key) }
                let touchError = await #expect(throws: MemcachedClientError.self) { try await client.touch(key, expiration: .seconds(1)) }
                let expected: MemcachedClientError.Code = key.utf8.count > 250 ? .keyTooLong : .invalidKey
                for error in [getError, setError, deleteError, touchError] {
                    #expect(error?.code == expected)
                    #expect(error?.description.contains(key.isEmpty ? "\u{0}" : key) == false, "the key leaked into the description")
                }
            }
            let after = try await client.stats()
            for counter in Self.counters {
                #expect(before[counter] == after[counter], "\(counter) changed: a command reached the server")
            }
            // the connection is still usable and in step
            #expect(try await client.get("valid")?.string == "v")
        }
    }

    @Test func aValueOverTheItemSizeIsValueTooLargeAndTheConnectionStaysInStep() async throws {
        let server = try OwnMemcached()
        defer { server.kill() }
        var configuration = MemcachedClient.Configuration(server: server.address)
        configuration.pool.size = 1
        try await withClient(configuration) { client in
            let big = Task { try await client.set("big", value: ByteBuffer(repeating: UInt8(ascii: "x"), count: 5 << 20), expiration: .seconds(60)) }
            let small = Task { try await client.set("small", value: ByteBuffer(string: "s"), expiration: .seconds(60)) }
            let error = await #expect(throws: MemcachedClientError.self) { try await big.value }
            #expect(error?.code == .valueTooLarge)
            #expect(error?.serverMessage == "object too large for cache")
            try await small.value
            #expect(try await client.get("small")?.string == "s")
            #expect(try await client.get("big") == nil)
        }
    }

    @Test func typedCommands() async throws {
        let server = try OwnMemcached()
        defer { server.kill() }
        try await withClient(.init(server: server.address)) { client in
            #expect(try await client.add("k", value: ByteBuffer(string: "a"), expiration: .seconds(60)))
            #expect(try await client.add("k", value: ByteBuffer(string: "b"), expiration: .seconds(60)) == false)
            #expect(try await client.append("k", value: ByteBuffer(string: "c")))
            #expect(try await client.append("missing", value: ByteBuffer(string: "c")) == false)
            let item = try #require(try await client.get("k"))
            #expect(item.string == "ac")
            #expect(try await client.compareAndSwap("k", value: ByteBuffer(string: "x"), cas: item.cas &+ 1, expiration: .seconds(60)) == .exists)
            #expect(try await client.compareAndSwap("k", value: ByteBuffer(string: "x"), cas: item.cas, expiration: .seconds(60)) == .stored)
            #expect(try await client.compareAndSwap("nope", value: ByteBuffer(string: "x"), cas: 1, expiration: .seconds(60)) == .notFound)
            #expect(try await client.touch("k", expiration: .seconds(5)))
            #expect(try await client.remainingTTL("k") == .seconds(5))
            try await client.set("forever", value: ByteBuffer(string: "f"), expiration: .never)
            #expect(try await client.remainingTTL("forever") == .never)
            #expect(try await client.remainingTTL("nope") == nil)
            try await client.set("n", value: ByteBuffer(string: "41"), expiration: .seconds(60))
            #expect(try await client.increment("n") == 42)
            #expect(try await client.increment("nope") == nil)
            #expect(try await client.delete("k"))
            #expect(try await client.delete("k") == false)
            try await client.noOp()
            let value = ByteBuffer(string: "with\r\nEND\r\nVA 3\r\n")
            try await client.set("crlf", value: value, expiration: .seconds(60))
            #expect(try await client.get("crlf")?.value == value)
        }
    }

    @Test func fiftyConcurrentCallersArePipelinedOverFewConnections() async throws {
        let server = try OwnMemcached()
        defer { server.kill() }
        var configuration = MemcachedSessionStore.Configuration()
        configuration.port = server.port
        configuration.poolSize = 2
        try await withStore(configuration) { store in
            let before = try await store.client.stats()
            let t = Int(Date().timeIntervalSince1970)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<50 {
                    group.addTask {
                        for round in 0..<40 {
                            let key = "c\(caller)r\(round)"
                            try await store.set(name: "session", key: key, value: "v", ttl: 60, currentTime: t)
                            _ = try await store.get(name: "session", key: key, currentTime: t)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let after = try await store.client.stats()
            let opened = try #require(Int(after["total_connections"] ?? "")) - (try #require(Int(before["total_connections"] ?? "")))
            #expect(opened <= 2, "\(opened) connections for 50 concurrent callers")
            #expect(Int(after["cmd_set"] ?? "") == (Int(before["cmd_set"] ?? "") ?? 0) + 2000)
        }
    }

    @Test func idleConnectionsGoBackToThePoolAndClose() async throws {
        let server = try OwnMemcached()
        defer { server.kill() }
        var configuration = MemcachedClient.Configuration(server: server.address)
        configuration.pool.size = 2
        configuration.pool.keepaliveTimeout = .milliseconds(200)
        try await withClient(configuration) { client in
            let before = try await client.stats()
            let baseline = try #require(Int(before["curr_connections"] ?? ""))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    group.addTask { try await client.set("k\(index)", value: ByteBuffer(string: "v"), expiration: .seconds(60)) }
                }
                try await group.waitForAll()
            }
            // kept connections unused for a sweep go back to the pool, whose idle timeout
            // closes them; the server then counts fewer connections (polled, up to 10 s)
            let statsConnection = try await MemcachedConnection.connect(to: server.address, logger: Logger(label: "test"))
            defer { statsConnection.close() }
            let deadline = ContinuousClock.now + .seconds(10)
            var current = Int.max
            while ContinuousClock.now < deadline {
                current = try #require(Int(try await statsConnection.stats()["curr_connections"] ?? ""))
                // only the stats connection is left (baseline counted the client's own one)
                if current <= baseline { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(current <= baseline)
            // and the client still works: it leases a new connection
            try await client.set("after", value: ByteBuffer(string: "v"), expiration: .seconds(60))
            #expect(try await client.get("after")?.string == "v")
        }
    }

    @Test func pastTheBacklogRequestsFailAtOnce() async throws {
        let server = try OwnMemcached()
        defer { server.kill() }
        var configuration = MemcachedClient.Configuration(server: server.address)
        configuration.pool.size = 1
        configuration.pool.pipelineDepth = 1
        configuration.pool.backlog = 2
        try await withClient(configuration) { client in
            try await client.set("k", value: ByteBuffer(repeating: 1, count: 100_000), expiration: .seconds(60))
            let results = await withTaskGroup(of: MemcachedClientError.Code?.self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        do {
                            _ = try await client.get("k")
                            return nil
                        } catch let error as MemcachedClientError {
                            return error.code
                        } catch {
                            return .protocolError
                        }
                    }
                }
                var codes: [MemcachedClientError.Code?] = []
                for await code in group { codes.append(code) }
                return codes
            }
            let exhausted = results.filter { $0 == .poolExhausted }.count
            let succeeded = results.filter { $0 == nil }.count
            #expect(exhausted > 0)
            #expect(succeeded >= 3)
            #expect(exhausted + succeeded == 40)
        }
    }

    @Test func restartUnderLoad() async throws {
        let server = try OwnMemcached()
        defer { server.kill() }
        var configuration = MemcachedSessionStore.Configuration()
        configuration.port = server.port
        configuration.connectTimeout = .milliseconds(500)
        configuration.readTimeout = .seconds(2)
        configuration.sendTimeout = .seconds(2)
        try await withStore(configuration) { store in
            let t = Int(Date().timeIntervalSince1970)
            let start = ContinuousClock.now
            let codes = Codes()
            let report = try await withDeadline(seconds: 60) {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for worker in 0..<20 {
                        group.addTask {
                            var successesAfterRestart = 0
                            var round = 0
                            while ContinuousClock.now - start < .seconds(9) {
                                round += 1
                                let key = "w\(worker)r\(round)"
                                do {
                                    try await store.set(name: "session", key: key, value: "v", ttl: 60, currentTime: t)
                                    let value = try await store.get(name: "session", key: key, currentTime: t)
                                    if value == "v", ContinuousClock.now - start > .seconds(7) { successesAfterRestart += 1 }
                                } catch let error as SessionStoreError {
                                    codes.record(error.code)
                                    try await Task.sleep(for: .milliseconds(50))
                                }
                            }
                            return successesAfterRestart
                        }
                    }
                    try await Task.sleep(for: .seconds(2))
                    server.kill()
                    try await Task.sleep(for: .seconds(2))
                    try server.start()
                    var total = 0
                    for try await successes in group { total += successes }
                    return total
                }
            }
            let seen = codes.all
            #expect(!seen.isEmpty, "no errors while the server was down")
            let allowed: Set<SessionStoreError.Code> = [.connectionFailed, .connectionClosed, .timeout]
            #expect(seen.isSubset(of: allowed), "unexpected codes \(seen)")
            #expect(report > 0, "no successful operation after the restart")
        }
    }

    @Test func threeServersShareTheKeys() async throws {
        let servers = try (0..<3).map { _ in try OwnMemcached() }
        defer { servers.forEach { $0.kill() } }
        var configuration = MemcachedSessionStore.Configuration()
        configuration.servers = servers.map(\.address)
        let serverNames = configuration.servers.map(\.description)
        let count = 3000
        try await withStore(configuration) { store in
            let t = Int(Date().timeIntervalSince1970)
            let metadata = try SessionMetadata(audience: "app", subject: "spread")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<count {
                    group.addTask {
                        try await store.set(name: "session", key: "key\(i)", value: "v\(i)", ttl: 120, currentTime: t, metadata: i < 50 ? metadata : nil)
                    }
                }
                try await group.waitForAll()
            }
            var items: [Int] = []
            for index in 0..<3 {
                let stats = try await store.client.stats(onServer: index)
                items.append(try #require(Int(stats["curr_items"] ?? "")))
            }
            #expect(items.reduce(0, +) == count + 1)
            // Each server holds exactly the keys the ring assigns it (the ring depends on the
            // servers' random ports, so the split is computed, not assumed even) ...
            let ring = MemcachedHashRing(
                servers: serverNames, pointsPerServer: MemcachedClient.Configuration().pointsPerServer)
            let naming = SessionKeyNaming()
            var expected = [0, 0, 0]
            for i in 0..<count {
                expected[ring.server(for: try MemcachedSessionStore.memcachedKey(naming.recordKey(name: "session", key: "key\(i)")))] += 1
            }
            expected[ring.server(for: try MemcachedSessionStore.memcachedKey(naming.indexKey(name: "session", audience: "app", subject: "spread")))] += 1
            #expect(items == expected, "items per server")
            // ... and no server is left out (an even split is a third each).
            for n in items { #expect(Double(n) >= 0.15 * Double(count), "items per server \(items)") }
            for i in stride(from: 0, to: count, by: 97) {
                #expect(try await store.get(name: "session", key: "key\(i)", currentTime: t) == "v\(i)")
            }
            #expect(try await store.readMetadata(name: "session", audience: "app", subject: "spread", currentTime: t).count == 50)
        }
    }
}

final class Codes: Sendable {
    private let box = NIOLockedCodes()
    func record(_ code: SessionStoreError.Code) { box.insert(code) }
    var all: Set<SessionStoreError.Code> { box.values }
}

import Synchronization

final class NIOLockedCodes: Sendable {
    private let codes = Mutex<Set<SessionStoreError.Code>>([])
    func insert(_ code: SessionStoreError.Code) { _ = codes.withLock { $0.insert(code) } }
    var values: Set<SessionStoreError.Code> { codes.withLock { $0 } }
}
