import _MemcachedWire
import Foundation
import MemcachedSessionStorage
import NIOCore
import SessionStorage
import SessionStorageConformance
import Testing

@Suite("Memcached store: layout, escaping, limits, concurrency")
struct MemcachedStoreTests {
    static var now: Int { Int(Date().timeIntervalSince1970) }

    @Test func keysAreEscapedLikeNgxEscapeURI() {
        #expect(MemcachedKeyEscaping.escape("sessions:session:AAEC-_.~") == "sessions%3Asession%3AAAEC-_.~")
        #expect(MemcachedKeyEscaping.escape("a b\r\n%/é") == "a%20b%0D%0A%25%2F%C3%A9")
        #expect(MemcachedKeyEscaping.unescape("a%20b%0D%0A%25%2F%C3%A9") == "a b\r\n%/é")
    }

    /// The one-pass escaping of a record key gives what escaping the joined key gives, with
    /// and without a prefix and a suffix, for ASCII, reserved and non-ASCII parts.
    @Test(arguments: [
        (nil, nil), ("sessions", nil), (nil, "tail"), ("p re", "s:uf"), ("é", "~_.-"),
    ] as [(String?, String?)])
    func escapedJoinEqualsEscapingTheJoinedKey(prefix: String?, suffix: String?) {
        let naming = SessionKeyNaming(prefix: prefix, suffix: suffix)
        for (name, key) in [("session", "AAEC-_.~"), ("a b", "k:ey%"), ("naïve", String(repeating: "x", count: 43)), ("s", "")] {
            #expect(
                MemcachedKeyEscaping.escapeJoined(naming.prefix, name, key, naming.suffix)
                    == MemcachedKeyEscaping.escape(naming.recordKey(name: name, key: key))
            )
        }
        #expect(MemcachedKeyEscaping.escapeJoined(nil, nil, nil, nil) == "")
        #expect(MemcachedKeyEscaping.escapeJoined(nil, "a", nil, "b") == "a%3Ab")
    }

    @Test func recordAndIndexLayout() async throws {
        try await withStore(try Env.configuration(.tcp, prefix: "layout")) { store in
            let t = Self.now
            let key = SessionStoreConformance.randomKey()
            let subject = "user \(UInt32.random(in: 0...UInt32.max))"
            let metadata = try SessionMetadata(audience: "my app", subject: subject)
            try await store.set(name: "session", key: key, value: "[\"v\"]", ttl: 60, currentTime: t, metadata: metadata)
            let record = try #require(try await store.client.get("layout%3Asession%3A" + key))
            #expect(record.string == "[\"v\"]")
            #expect(record.clientFlags == 0)
            let ttl = try #require(record.ttl)
            #expect((59...61).contains(ttl))
            let indexKey = "layout%3Asession%3Amy%20app%3A" + MemcachedKeyEscaping.escape(subject)
            let index = try #require(try await store.client.get(indexKey))
            #expect(index.string == SessionIndexCodec.entry(key: key, expiry: t + 60))
            // the index expires with its member, it is not stored forever
            let indexTTL = try #require(index.ttl)
            #expect((59...61).contains(indexTTL))
        }
    }

    @Test func namesAudiencesAndSubjectsWithSpecialCharactersRoundTrip() async throws {
        try await withStore(try Env.configuration(.tcp)) { store in
            let t = Self.now
            let token = String(UInt32.random(in: 0...UInt32.max))
            let name = "my cookie\r\n%\(token)"
            let pairs = [("aud ience\r\n", "sub%ject \(token)"), ("100%", "line\nbreak\(token)"), ("tab\t", "ünï \(token)")]
            let metadata = try SessionMetadata(audiences: pairs.map(\.0), subjects: pairs.map(\.1))
            let key = SessionStoreConformance.randomKey()
            try await store.set(name: name, key: key, value: "v", ttl: 60, currentTime: t, metadata: metadata)
            #expect(try await store.get(name: name, key: key, currentTime: t) == "v")
            for (audience, subject) in pairs {
                #expect(try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: t) == [key: t + 60])
            }
            try await store.delete(name: name, key: key, currentTime: t, metadata: metadata)
            #expect(try await store.get(name: name, key: key, currentTime: t) == nil)
            for (audience, subject) in pairs {
                #expect(try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: t).isEmpty)
            }
        }
    }

    @Test func anEscapedKeyOver250BytesIsKeyTooLong() async throws {
        try await withStore(try Env.configuration(.tcp)) { store in
            let t = Self.now
            // 80 spaces escape to 240 bytes
            let subject = String(repeating: " ", count: 80)
            let metadata = try SessionMetadata(audience: "a", subject: subject)
            let error = await #expect(throws: SessionStoreError.self) {
                try await store.set(name: "session", key: SessionStoreConformance.randomKey(), value: "v", ttl: 60, currentTime: t, metadata: metadata)
            }
            #expect(error?.code == .keyTooLong)
            let readError = await #expect(throws: SessionStoreError.self) {
                _ = try await store.readMetadata(name: "session", audience: "a", subject: subject, currentTime: t)
            }
            #expect(readError?.code == .keyTooLong)
            let longName = await #expect(throws: SessionStoreError.self) {
                _ = try await store.get(name: String(repeating: "n", count: 250), key: "k", currentTime: t)
            }
            #expect(longName?.code == .keyTooLong)
        }
    }

    @Test func aValueOverTheItemSizeLimitIsValueTooLarge() async throws {
        try await withStore(try Env.configuration(.tcp)) { store in
            let t = Self.now
            let key = SessionStoreConformance.randomKey()
            let error = await #expect(throws: SessionStoreError.self) {
                try await store.set(name: "session", key: key, value: String(repeating: "x", count: 5 << 20), ttl: 60, currentTime: t)
            }
            #expect(error?.code == .valueTooLarge)
            #expect(error?.description.contains("xxxx") == false)
            // the connection is still in step
            try await store.set(name: "session", key: key, value: "small", ttl: 60, currentTime: t)
            #expect(try await store.get(name: "session", key: key, currentTime: t) == "small")
        }
    }

    @Test func twoHundredConcurrentSessionsOfOneSubjectAreAllListed() async throws {
        try await withStore(try Env.configuration(.tcp)) { store in
            let t = Self.now
            let subject = "subject-\(UInt64.random(in: 0...UInt64.max))"
            let metadata = try SessionMetadata(audience: "app", subject: subject)
            let keys = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        let key = SessionStoreConformance.randomKey()
                        try await store.set(name: "session", key: key, value: "v\(i)", ttl: 300 + i % 7, currentTime: t, metadata: metadata)
                        return key
                    }
                }
                var keys: [String] = []
                for try await key in group { keys.append(key) }
                return keys
            }
            let index = try await store.readMetadata(name: "session", audience: "app", subject: subject, currentTime: t)
            #expect(index.count == 200)
            #expect(Set(index.keys) == Set(keys))
        }
    }

    @Test func rotationsKeepTheIndexBounded() async throws {
        try await withStore(try Env.configuration(.tcp)) { store in
            let t = Self.now
            let subject = "rotating-\(UInt64.random(in: 0...UInt64.max))"
            let metadata = try SessionMetadata(audience: "app", subject: subject)
            var key = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: key, value: "v", ttl: 60, currentTime: t, metadata: metadata)
            for _ in 0..<100 {
                let next = SessionStoreConformance.randomKey()
                try await store.set(name: "session", key: next, value: "v", ttl: 60, currentTime: t, oldKey: key, staleTTL: 10, metadata: metadata)
                key = next
            }
            let raw = try #require(try await store.client.get("session%3Aapp%3A" + subject))
            let entries = SessionIndexCodec.entryCount(raw.string)
            #expect(entries <= 2 + store.configuration.compactionSlack + 2, "the index holds \(entries) entries")
            #expect(try await store.readMetadata(name: "session", audience: "app", subject: subject, currentTime: t) == [key: t + 60])
        }
    }

    @Test func aLaterSessionExtendsTheIndexAndAnEarlierOneNeverShortensIt() async throws {
        try await withStore(try Env.configuration(.tcp)) { store in
            let t = Self.now
            let subject = "expiry-\(UInt64.random(in: 0...UInt64.max))"
            let metadata = try SessionMetadata(audience: "app", subject: subject)
            try await store.set(name: "session", key: SessionStoreConformance.randomKey(), value: "v", ttl: 100, currentTime: t, metadata: metadata)
            try await store.set(name: "session", key: SessionStoreConformance.randomKey(), value: "v", ttl: 1000, currentTime: t, metadata: metadata)
            let extended = try #require(try await store.client.remainingTTL("session%3Aapp%3A" + subject))
            guard case .seconds(let long) = extended else { Issue.record("index never expires"); return }
            #expect(long > 990)
            try await store.set(name: "session", key: SessionStoreConformance.randomKey(), value: "v", ttl: 50, currentTime: t, metadata: metadata)
            let kept = try #require(try await store.client.remainingTTL("session%3Aapp%3A" + subject))
            guard case .seconds(let still) = kept else { Issue.record("index never expires"); return }
            #expect(still > 990)
        }
    }

    @Test func staleTTLZeroRemovesTheOldRecord() async throws {
        try await withStore(try Env.configuration(.tcp)) { store in
            let t = Self.now
            let old = SessionStoreConformance.randomKey()
            let new = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: old, value: "old", ttl: 60, currentTime: t)
            try await store.set(name: "session", key: new, value: "new", ttl: 60, currentTime: t, oldKey: old, staleTTL: 0)
            #expect(try await store.get(name: "session", key: old, currentTime: t) == nil)
        }
    }

    @Test func keepStalePolicyKeepsARememberedOldRecord() async throws {
        var configuration = try Env.configuration(.tcp)
        configuration.rememberRotation = .keepStale
        try await withStore(configuration) { store in
            let t = Self.now
            let old = SessionStoreConformance.randomKey()
            let new = SessionStoreConformance.randomKey()
            try await store.set(name: "remember", key: old, value: "old", ttl: 600, currentTime: t)
            try await store.set(name: "remember", key: new, value: "new", ttl: 600, currentTime: t, oldKey: old, staleTTL: 30, remember: true)
            #expect(try await store.get(name: "remember", key: old, currentTime: t) == "old")
            let ttl = try #require(try await store.client.remainingTTL("remember%3A" + old))
            guard case .seconds(let seconds) = ttl else { Issue.record("old record never expires"); return }
            #expect(seconds <= 31)
        }
    }

    @Test func ttlsOverThirtyDaysAreNotReadAsDatesIn1970() async throws {
        try await withStore(try Env.configuration(.tcp)) { store in
            let t = Self.now
            let key = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: key, value: "long", ttl: 40 * 24 * 3600, currentTime: t)
            #expect(try await store.get(name: "session", key: key, currentTime: t) == "long")
        }
    }
}
