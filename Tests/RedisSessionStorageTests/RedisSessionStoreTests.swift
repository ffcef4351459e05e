import Foundation
import RedisSessionStorage
import SessionStorage
import Testing
import _RedisWire

/// The storage contract against the real Redis, over plain TCP, an ACL user, TLS and a unix socket.
@Suite("RedisSessionStore contract")
struct RedisSessionStoreContractTests {
    @Test(arguments: Target.allCases)
    func setGetDelete(_ target: Target) async throws {
        let prefix = uniquePrefix("sgd")
        let raw = try await target.rawConnection()
        defer { raw.close() }
        try await withStore(try target.configuration(prefix: prefix)) { store in
            let key = sessionKey()
            let t = now
            #expect(try await store.get(name: "session", key: key, currentTime: t) == nil)
            try await store.set(name: "session", key: key, value: "[\"payload\"]", ttl: 60, currentTime: t)
            #expect(try await store.get(name: "session", key: key, currentTime: t) == "[\"payload\"]")
            // The layout: a plain string under prefix:name:key with the TTL.
            let recordKey = "\(prefix):session:\(key)"
            #expect(try await raw.type(recordKey) == "string")
            let ttl = try await raw.ttl(recordKey)
            #expect((50...60).contains(ttl))
            try await store.delete(name: "session", key: key, currentTime: t)
            #expect(try await store.get(name: "session", key: key, currentTime: t) == nil)
            #expect(try await raw.send(RedisCommand("EXISTS", [.init(recordKey)])).int == 0)
        }
        try await cleanUp(raw, prefix: prefix)
    }

    @Test(arguments: Target.allCases)
    func metadataRotationAndIndex(_ target: Target) async throws {
        let prefix = uniquePrefix("meta")
        let raw = try await target.rawConnection()
        defer { raw.close() }
        try await withStore(try target.configuration(prefix: prefix, suffix: "sfx")) { store in
            let t = now
            let (k1, k2) = (sessionKey(), sessionKey())
            let metadata = try SessionMetadata(audiences: ["app1", "app2"], subjects: ["alice", "bob"])
            try await store.set(name: "session", key: k1, value: "v1", ttl: 60, currentTime: t, metadata: metadata)
            #expect(try await store.readMetadata(name: "session", audience: "app1", subject: "alice", currentTime: t) == [k1: t + 60])
            // Rotation: the new key replaces the old in every index; the old record turns stale.
            try await store.set(name: "session", key: k2, value: "v2", ttl: 60, currentTime: t, oldKey: k1, staleTTL: 10, metadata: metadata)
            #expect(try await store.readMetadata(name: "session", audience: "app1", subject: "alice", currentTime: t) == [k2: t + 60])
            #expect(try await store.readMetadata(name: "session", audience: "app2", subject: "bob", currentTime: t) == [k2: t + 60])
            #expect(try await store.readMetadata(name: "session", audience: "app1", subject: "bob", currentTime: t) == [:])
            #expect(try await store.get(name: "session", key: k1, currentTime: t) == "v1")
            let oldTTL = try await raw.ttl("\(prefix):session:\(k1):sfx")
            #expect((5...10).contains(oldTTL))
            let index = "\(prefix):session:app1:alice:sfx"
            #expect(try await raw.type(index) == "zset")
            #expect(try await raw.zscores(index) == [k2: t + 60])
            #expect((50...60).contains(try await raw.ttl(index)))
            // Later than the record's expiry, nothing is listed.
            #expect(try await store.readMetadata(name: "session", audience: "app1", subject: "alice", currentTime: t + 60) == [:])
            // Delete with metadata drops the record and its index entries.
            try await store.delete(name: "session", key: k2, currentTime: t, metadata: metadata)
            #expect(try await store.get(name: "session", key: k2, currentTime: t) == nil)
            #expect(try await store.readMetadata(name: "session", audience: "app2", subject: "bob", currentTime: t) == [:])
        }
        try await cleanUp(raw, prefix: prefix)
    }

    @Test(arguments: Target.allCases)
    func specialBytesRoundTrip(_ target: Target) async throws {
        let prefix = uniquePrefix("bytes")
        let raw = try await target.rawConnection()
        defer { raw.close() }
        try await withStore(try target.configuration(prefix: prefix)) { store in
            let t = now
            let nasty = "a\r\nb\0c*3\r\n$3\r\nDEL\r\n\u{1F600}é"
            let key = sessionKey()
            try await store.set(name: "ses\r\nsion", key: key, value: nasty, ttl: 60, currentTime: t,
                                metadata: try SessionMetadata(audience: "aud\0\r\n", subject: "*3\r\nsub"))
            #expect(try await store.get(name: "ses\r\nsion", key: key, currentTime: t) == nasty)
            #expect(try await store.readMetadata(name: "ses\r\nsion", audience: "aud\0\r\n", subject: "*3\r\nsub", currentTime: t) == [key: t + 60])
            #expect(try await raw.send(.get("\(prefix):ses\r\nsion:\(key)")).string == nasty)
        }
        try await cleanUp(raw, prefix: prefix)
    }

    @Test(arguments: [Target.plain])
    func oldRecordIsNeverLengthened(_ target: Target) async throws {
        let prefix = uniquePrefix("stale")
        let raw = try await target.rawConnection()
        defer { raw.close() }
        try await withStore(try target.configuration(prefix: prefix)) { store in
            let t = now
            let (old, new) = (sessionKey(), sessionKey())
            try await store.set(name: "session", key: old, value: "old", ttl: 3, currentTime: t)
            try await store.set(name: "session", key: new, value: "new", ttl: 60, currentTime: t, oldKey: old, staleTTL: 30)
            #expect(try await raw.ttl("\(prefix):session:\(old)") <= 3)
            // A missing old record is not created.
            let missing = sessionKey()
            try await store.set(name: "session", key: sessionKey(), value: "x", ttl: 60, currentTime: t, oldKey: missing, staleTTL: 30)
            #expect(try await raw.send(RedisCommand("EXISTS", [.init("\(prefix):session:\(missing)")])).int == 0)
        }
        try await cleanUp(raw, prefix: prefix)
    }

    @Test func rememberRotationPolicies() async throws {
        let prefix = uniquePrefix("remember")
        let raw = try await Target.plain.rawConnection()
        defer { raw.close() }
        let t = now
        let (old1, old2) = (sessionKey(), sessionKey())
        try await withStore(try Target.plain.configuration(prefix: prefix)) { store in
            try await store.set(name: "remember", key: old1, value: "old", ttl: 600, currentTime: t)
            try await store.set(name: "remember", key: sessionKey(), value: "new", ttl: 600, currentTime: t, oldKey: old1, staleTTL: 10, remember: true)
            #expect(try await store.get(name: "remember", key: old1, currentTime: t) == nil)
        }
        var keepStale = try Target.plain.configuration(prefix: prefix)
        keepStale.rememberRotation = .keepStale
        try await withStore(keepStale) { store in
            try await store.set(name: "remember", key: old2, value: "old", ttl: 600, currentTime: t)
            try await store.set(name: "remember", key: sessionKey(), value: "new", ttl: 600, currentTime: t, oldKey: old2, staleTTL: 10, remember: true)
            #expect(try await store.get(name: "remember", key: old2, currentTime: t) == "old")
            #expect(try await raw.ttl("\(prefix):remember:\(old2)") <= 10)
        }
        try await cleanUp(raw, prefix: prefix)
    }

    @Test func indexOutlivesItsLatestMember() async throws {
        let prefix = uniquePrefix("idxttl")
        let raw = try await Target.plain.rawConnection()
        defer { raw.close() }
        try await withStore(try Target.plain.configuration(prefix: prefix)) { store in
            let t = now
            let metadata = try SessionMetadata(audience: "app", subject: "alice")
            try await store.set(name: "session", key: sessionKey(), value: "long", ttl: 3600, currentTime: t, metadata: metadata)
            try await store.set(name: "session", key: sessionKey(), value: "short", ttl: 5, currentTime: t, metadata: metadata)
            #expect(try await raw.ttl("\(prefix):session:app:alice") > 3500)
            #expect(try await store.readMetadata(name: "session", audience: "app", subject: "alice", currentTime: t).count == 2)
        }
        try await cleanUp(raw, prefix: prefix)
    }

    @Test func expiredIndexMembersAreTrimmedAndNotListed() async throws {
        let prefix = uniquePrefix("trim")
        let raw = try await Target.plain.rawConnection()
        defer { raw.close() }
        try await withStore(try Target.plain.configuration(prefix: prefix)) { store in
            let t = now
            let metadata = try SessionMetadata(audience: "app", subject: "alice")
            let (past, live) = (sessionKey(), sessionKey())
            // Written "100 s ago" with a 50 s TTL: its score is in the past.
            try await store.set(name: "session", key: past, value: "p", ttl: 50, currentTime: t - 100, metadata: metadata)
            #expect(try await store.readMetadata(name: "session", audience: "app", subject: "alice", currentTime: t) == [:])
            // An entry expiring exactly now is expired.
            #expect(try await store.readMetadata(name: "session", audience: "app", subject: "alice", currentTime: t - 50) == [:])
            try await store.set(name: "session", key: live, value: "l", ttl: 50, currentTime: t, metadata: metadata)
            #expect(try await raw.zscores("\(prefix):session:app:alice") == [live: t + 50])
        }
        try await cleanUp(raw, prefix: prefix)
    }

    @Test func recordsExpireOnTheServerClock() async throws {
        let prefix = uniquePrefix("expiry")
        try await withStore(try Target.plain.configuration(prefix: prefix)) { store in
            let key = sessionKey()
            try await store.set(name: "session", key: key, value: "v", ttl: 1, currentTime: now)
            #expect(try await store.get(name: "session", key: key, currentTime: now) == "v")
            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await store.get(name: "session", key: key, currentTime: now) == nil)
        }
    }

    @Test func invalidArgumentsAreRejected() async throws {
        try await withStore(try Target.plain.configuration(prefix: uniquePrefix("inv"))) { store in
            await expectStoreError(.invalidArgument) { try await store.set(name: "", key: "k", value: "v", ttl: 60, currentTime: now) }
            await expectStoreError(.invalidArgument) { try await store.set(name: "s", key: "k", value: "v", ttl: 0, currentTime: now) }
            await expectStoreError(.invalidArgument) { try await store.set(name: "s", key: "k", value: "v", ttl: 60, currentTime: now, oldKey: "k") }
            await expectStoreError(.invalidArgument) { _ = try await store.get(name: "s", key: "a:b", currentTime: now) }
            await expectStoreError(.invalidArgument) { _ = try await store.readMetadata(name: "s", audience: "", subject: "x", currentTime: now) }
        }
    }

    @Test func concurrentSetsForOneSubjectLoseNoIndexEntryAndShareConnections() async throws {
        let prefix = uniquePrefix("conc")
        let raw = try await Target.plain.rawConnection()
        defer { raw.close() }
        var configuration = try Target.plain.configuration(prefix: prefix)
        configuration.pool = "conc-\(prefix)"
        try await withStore(configuration) { store in
            let t = now
            let metadata = try SessionMetadata(audience: "app", subject: "alice")
            let keys = (0..<50).map { _ in sessionKey() }
            // Warm up one connection, then 50 callers at once, several rounds.
            try await store.set(name: "session", key: sessionKey(), value: "warm", ttl: 60, currentTime: t)
            for _ in 0..<3 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for key in keys {
                        group.addTask {
                            try await store.set(name: "session", key: key, value: "v", ttl: 60, currentTime: t, metadata: metadata)
                            _ = try await store.get(name: "session", key: key, currentTime: t)
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let listed = try await store.readMetadata(name: "session", audience: "app", subject: "alice", currentTime: t)
            #expect(Set(listed.keys) == Set(keys))
            let clients = try await raw.send(RedisCommand("CLIENT", ["LIST"])).string ?? ""
            let ours = clients.split(separator: "\n").filter { $0.contains("name=conc-\(prefix)") }.count
            #expect(ours >= 1 && ours <= 3, "50 concurrent callers used \(ours) connections")
        }
        try await cleanUp(raw, prefix: prefix)
    }
}
