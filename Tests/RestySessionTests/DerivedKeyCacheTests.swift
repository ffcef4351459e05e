import Testing

@testable import RestySession
import SessionStorageConformance

@Suite("Derived key cache")
struct DerivedKeyCacheTests {
    private func sid(_ n: Int) -> SessionID {
        SessionID((0..<32).map { UInt8(truncatingIfNeeded: n &* 31 &+ $0) })!
    }

    @Test func entriesAreTheDerivationsAndTheOldestIsForgottenFirst() {
        let key = SessionKey(ikm: (0..<32).map { UInt8($0) }, derivedKeyCacheCapacity: 3)
        let plain = SessionKey(ikm: (0..<32).map { UInt8($0) }, derivedKeyCacheCapacity: 0)
        // derived on a lookup (0, 1, 2) or issued without one (3, 4): the same entries
        for n in 0..<5 { _ = n < 3 ? key.derivedKeys(sid: sid(n)) : key.issueKeys(sid: sid(n)) }
        #expect(key.derived.count == 3)
        #expect(key.derived.lookup(sid(0)) == nil)
        #expect(key.derived.lookup(sid(1)) == nil)
        for n in 2..<5 {
            let entry = try! #require(key.derived.lookup(sid(n)))
            // the cached material and MAC key are exactly HKDF's
            var material = entry.encryption
            let cached = withUnsafeBytes(of: &material.words) { Array($0.prefix(44)) }
            #expect(cached == plain.expand(usage: "encryption", nonce: sid(n).bytes, count: 44))
            let message: [UInt8] = Array("header bytes".utf8)
            message.withUnsafeBytes { message in
                #expect(SessionCrypto.mac(key, sid: sid(n), message: message) == SessionCrypto.mac(plain, sid: sid(n), message: message))
            }
            let macKey = plain.expand(usage: "authentication", nonce: sid(n).bytes, count: 32)
            var expected = [UInt8](repeating: 0, count: 32)
            var ours = [UInt8](repeating: 0, count: 32)
            message.withUnsafeBytes { m in
                expected.withUnsafeMutableBytes { HMACSHA256(key: macKey).authenticate(m, into: $0) }
                ours.withUnsafeMutableBytes { entry.authentication.authenticate(m, into: $0) }
            }
            #expect(ours == expected)
            // what the open path gets for the MAC check: the same HMAC, and the entry itself
            let (authentication, found) = SessionCrypto.verificationKeys(key, sid: sid(n))
            #expect(found != nil)
            var fromLookup = [UInt8](repeating: 0, count: 32)
            message.withUnsafeBytes { m in fromLookup.withUnsafeMutableBytes { authentication.authenticate(m, into: $0) } }
            #expect(fromLookup == expected)
            var keyAndNonce: [UInt8] = []
            entry.encryption.withKeyAndNonce { key, nonce in keyAndNonce = Array(key) + Array(nonce) }
            #expect(keyAndNonce == cached)
        }
        #expect(SessionCrypto.verificationKeys(key, sid: sid(0)).cached == nil)
        // a capacity of zero keeps nothing
        _ = plain.derivedKeys(sid: sid(9))
        #expect(plain.derived.count == 0)
        // an id of another length than 32 bytes is not an id
        #expect(SessionID([1, 2, 3]) == nil)
        #expect(SessionID([UInt8](repeating: 0, count: 33)) == nil)
        #expect(SessionID(sid(7).bytes) == sid(7))
    }

    @Test func setsHoldTheRightEntriesAndAtMostTheCapacity() {
        // capacities: four ways per set, a power of two of sets, never more than asked for
        #expect(DerivedKeyCache(capacity: 4096).capacity == 4096)
        #expect(DerivedKeyCache(capacity: 100).capacity == 64)
        #expect(DerivedKeyCache(capacity: 5).capacity == 4)
        #expect(DerivedKeyCache(capacity: 3).capacity == 3)
        #expect(DerivedKeyCache(capacity: 0).capacity == 0)
        #expect(DerivedKeyCache(capacity: -1).capacity == 0)

        // many random ids through a small cache: whatever is found is the entry inserted for
        // that id, the newest is always found, re-inserting an id adds nothing
        let key = SessionKey(ikm: (0..<32).map { UInt8($0) }, derivedKeyCacheCapacity: 0)
        let cache = DerivedKeyCache(capacity: 64)
        var rng = SplitMix64(seed: 41)
        func material(_ n: Int) -> DerivedKeyCache.Entry {
            var encryption = DerivedKeyCache.EncryptionMaterial()
            encryption.words.0 = UInt64(n)
            return DerivedKeyCache.Entry(authentication: key.authenticationHMAC(sid: sid(0)), encryption: encryption)
        }
        var inserted: [SessionID: Int] = [:]
        for n in 0..<2000 {
            let id = SessionID((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })!
            cache.insert(id, material(n))
            inserted[id] = n
            #expect(cache.lookup(id)?.encryption.words.0 == UInt64(n))
            #expect(cache.count <= 64)
        }
        #expect(cache.count == 64)  // 2000 random ids fill every set
        var found = 0
        for (id, n) in inserted {
            guard let entry = cache.lookup(id) else { continue }
            #expect(entry.encryption.words.0 == UInt64(n))
            found += 1
        }
        #expect(found == 64)
        let (someID, _) = inserted.first { cache.lookup($0.key) != nil }!
        cache.insert(someID, material(0xFFFF))
        #expect(cache.count == 64)
        #expect(cache.lookup(someID)?.encryption.words.0 == 0xFFFF)
        // a forged id's lookup finds nothing
        #expect(cache.lookup(sid(12345)) == nil)
    }

    @Test func forgedCookiesAddNothingAndIssuedOnesAreCached() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock)
        let cache = manager.settings.key.derived
        let (_, jar) = try await saveNew(manager, ["user": "grace"])
        #expect(cache.count == 1)  // the id this process issued

        // the same cookie with each byte of its MAC changed: no entry added, none opens
        let cookie = try #require(jar["session"])
        var bytes = Array(cookie.utf8)
        // the header's last 21 characters hold nothing but MAC bits
        let headerEnd = SessionCookieHeader.encodedSize
        for index in (headerEnd - 21)..<headerEnd {
            let original = bytes[index]
            bytes[index] = original == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            let forged = ["session": String(decoding: bytes, as: UTF8.self)]
            let session = try await manager.open(SessionRequest(jar: forged))
            #expect(session.state != .open)
            bytes[index] = original
        }
        #expect(cache.count == 1)

        // the genuine cookie opens from the cache, and with the same data
        let session = try await manager.open(SessionRequest(jar: jar))
        #expect(session.state == .open)
        #expect(session["user"] == "grace")
        #expect(cache.count == 1)

        // another instance with the same secret caches the id once the cookie verified, with
        // the MAC key it prepared for the check; the next open is served from that entry
        let other = try makeManager(clock: clock)
        #expect(try await other.open(SessionRequest(jar: jar)).state == .open)
        #expect(other.settings.key.derived.count == 1)
        let again = try await other.open(SessionRequest(jar: jar))
        #expect(again["user"] == "grace")
        #expect(other.settings.key.derived.count == 1)
    }
}
