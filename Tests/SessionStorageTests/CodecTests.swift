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
        // Long and non-ASCII parts are copied byte for byte (the key is built with raw copies).
        let id = String(repeating: "Ab0-_", count: 9)
        let accented = SessionKeyNaming(prefix: "préfixe", suffix: "süffix")
        let built = accented.recordKey(name: "remember", key: id)
        #expect(built == "préfixe:remember:" + id + ":süffix")
        #expect(Array(built.utf8) == Array(("préfixe:remember:" + id + ":süffix").utf8))
        #expect(plain.recordKey(name: "session", key: id) == "session:" + id)
    }

    @Test func keyNamingCopiesEveryPartWhole() {
        // Parts of every length around the 8-byte and small-string (15 bytes) boundaries,
        // non-ASCII included: the key is built in one buffer, byte by byte.
        for length in 0...40 {
            let part = String(repeating: "é", count: length / 2) + String(repeating: "x", count: length % 2)
            let naming = SessionKeyNaming(prefix: "p" + part, suffix: part.isEmpty ? nil : part + "s")
            let expected = "p" + part + ":session:" + "K" + part + (part.isEmpty ? "" : ":" + part + "s")
            #expect(naming.recordKey(name: "session", key: "K" + part) == expected)
            #expect(SessionKeyNaming().recordKey(name: part + "n", key: part + "k") == part + "n:" + part + "k")
        }
        let bridged = NSString(string: "bridged-session-key-0123456789") as String
        #expect(SessionKeyNaming().recordKey(name: "session", key: bridged) == "session:bridged-session-key-0123456789")
    }

    @Test func separatorsAreFoundAtEveryPosition() throws {
        for length in 1...43 {
            let clean = String(repeating: "A", count: length)
            try SessionStoreValidation.key(clean)
            try SessionStoreValidation.key(String(repeating: "é", count: length))
            for position in 0..<length {
                for separator in [";", ":"] {
                    var bytes = Array(clean.utf8)
                    bytes[position] = UInt8(ascii: separator == ";" ? ";" : ":")
                    let key = String(decoding: bytes, as: UTF8.self)
                    #expect(throws: SessionStoreError.self, "\(key)") { try SessionStoreValidation.key(key) }
                }
            }
        }
        // Bytes one off the separators (9 and <) never match.
        try SessionStoreValidation.key(String(repeating: "9<", count: 20))
        #expect(throws: SessionStoreError.self) { try SessionStoreValidation.key("") }
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
