import Foundation
import SessionStorage
import SessionStorageConformance
import Testing

@Suite("Index codec and key naming")
struct CodecTests {
    @Test func expiryEncodingMatchesTheRealLibrary() throws {
        // shm.json: t0 = 1795310863, ttl 60 → "S0UCawA"
        #expect(SessionIndexCodec.encodeExpiry(1_795_310_923) == "S0UCawA")
        #expect(SessionIndexCodec.decodeExpiry("S0UCawA") == 1_795_310_923)
        #expect(SessionIndexCodec.decodeExpiry("S0UCaw") == nil)
        #expect(SessionIndexCodec.decodeExpiry("S0UCa!A") == nil)
        for value in [0, 1, 255, 256, 1 << 32, SessionIndexCodec.maximumExpiry] {
            #expect(SessionIndexCodec.decodeExpiry(SessionIndexCodec.encodeExpiry(value)) == value)
        }
    }

    @Test func entriesTombstonesAndOrder() {
        let a = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
        let b = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"
        let index = SessionIndexCodec.entry(key: a, expiry: 100) + SessionIndexCodec.entry(key: b, expiry: 200)
            + SessionIndexCodec.tombstone(key: a)
        #expect(index == "\(a):ZAAAAAA;\(b):yAAAAAA;\(a);")
        #expect(SessionIndexCodec.live(index, currentTime: 50) == [b: 200])
        #expect(SessionIndexCodec.live(index, currentTime: 200) == [:])
        // A later entry replaces an earlier one (re-set after a tombstone).
        let revived = index + SessionIndexCodec.entry(key: a, expiry: 300)
        #expect(SessionIndexCodec.live(revived, currentTime: 50) == [a: 300, b: 200])
        #expect(SessionIndexCodec.entryCount(revived) == 4)
        let (compacted, latest) = SessionIndexCodec.compact([a: 300, b: 200])
        #expect(compacted == SessionIndexCodec.entry(key: b, expiry: 200) + SessionIndexCodec.entry(key: a, expiry: 300))
        #expect(latest == 300)
        #expect(SessionIndexCodec.live("garbage;;x:zz;", currentTime: 0).isEmpty)
    }

    @Test func base64URLRoundTrip() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let encoded = Base64URL.encode(bytes)
            #expect(!encoded.contains("="))
            #expect(!encoded.contains("+") && !encoded.contains("/"))
            #expect(Base64URL.decode(encoded) == bytes)
        }
        #expect(Base64URL.encode(Array(0..<32)) == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
        // against Foundation's encoder, through the array, contiguous-slice and generic paths
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 200) }
            let expected = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == expected)
            #expect(Base64URL.encode(([0] + bytes)[1...]) == expected)
            #expect(Base64URL.encode(bytes.lazy.map { $0 }) == expected)
            #expect(Base64URL.encode(Data(bytes)) == expected)
        }
        #expect(Base64URL.decode("a") == nil)
        #expect(Base64URL.decode("a+b/") == nil)
    }

    @Test func keyNamingIsExactlyTheOriginals() {
        let plain = SessionKeyNaming()
        #expect(plain.recordKey(name: "session", key: "K") == "session:K")
        #expect(plain.indexKey(name: "session", audience: "app", subject: "alice") == "session:app:alice")
        let prefixed = SessionKeyNaming(prefix: "sessions")
        #expect(prefixed.recordKey(name: "session", key: "K") == "sessions:session:K")
        let both = SessionKeyNaming(prefix: "sessions", suffix: "s")
        #expect(both.recordKey(name: "session", key: "K") == "sessions:session:K:s")
        #expect(both.indexKey(name: "session", audience: "app", subject: "alice") == "sessions:session:app:alice:s")
        #expect(SessionKeyNaming(prefix: "", suffix: "").recordKey(name: "n", key: "k") == "n:k")
    }

    @Test func errorDescriptionsHoldNoDetails() {
        let error = SessionStoreError(
            .authenticationFailed, message: "authentication failed", backend: "redis",
            serverMessage: "WRONGPASS invalid username-password pair", underlying: nil)
        #expect(!error.description.contains("WRONGPASS"))
        #expect(error.debugDescription.contains("WRONGPASS"))
        #expect(error.description.contains("authenticationFailed"))
    }
}
