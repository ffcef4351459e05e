import Crypto
import Foundation
import SessionStorage
import Testing

@testable import RestySession

@Suite("Cookies issued by lua-resty-session 4.1.5")
struct CookieVectorTests {
    @Test func vectorsArePresent() throws {
        let vectors = try CookieVector.load()
        #expect(vectors.map(\.case) == ["a", "b", "c", "d", "f"])
    }

    @Test(arguments: CookieVector.all)
    func opensWithTheRightDataAudienceAndSubject(_ vector: CookieVector) async throws {
        let clock = ManualClock(vector.lua_save_report.save_time + 5)
        let store = await vector.preloadedStore()
        let manager = try vector.manager(store: store, clock: clock)
        let session = try await manager.open(SessionRequest(cookieHeader: vector.reopen.request_cookie_header))
        #expect(session.openFailure == nil)
        #expect(session.state == .open)
        #expect(session.data == vector.expectedData)
        #expect(session.audience == (vector.reopen.lua_open_report.audience ?? "default"))
        #expect(session.subject == vector.reopen.lua_open_report.subject)
        #expect(session.id == vector.lua_save_report.session_id)
        #expect(session.setCookieHeaders.isEmpty)
        #expect(session.creationTime == vector.lua_save_report.meta.creation_time)
    }

    @Test(arguments: CookieVector.all.filter { $0.case != "f" })
    func reproducesTheExactCookieFromTheSameIdAndTime(_ vector: CookieVector) async throws {
        let clock = ManualClock(vector.lua_save_report.save_time)
        let random = ReplayRandom(queue: [[UInt8](hex: vector.lua_save_report.meta.sid_hex)])
        if let remember = vector.lua_save_report.remember_meta { random.enqueue([UInt8](hex: remember.sid_hex)) }
        let store = TestStore()
        let manager = try vector.manager(store: store, clock: clock, random: random)
        var session = manager.new(SessionRequest())
        session.data = vector.expectedData
        try await session.save()
        #expect(session.setCookieHeaders == vector.set_cookie_headers)
        for dump in vector.storage_dump_redis ?? [] {
            let parts = dump.key.split(separator: ":", maxSplits: 1)
            let record = try #require(await store.record(name: String(parts[0]), key: String(parts[1])))
            #expect(record.value == dump.get)
            #expect(record.expiry == vector.lua_save_report.save_time + dump.ttl)
        }
    }

    @Test func deflatedVectorReencodesToAnEquivalentCookie() async throws {
        // Case f: zlib's deflate output cannot be reproduced byte for byte; our cookie has the
        // same header layout, is deflated, and opens to the same data.
        let vector = try #require(CookieVector.all.first { $0.case == "f" })
        let clock = ManualClock(vector.lua_save_report.save_time)
        let manager = try vector.manager(clock: clock)
        var session = manager.new(SessionRequest())
        session.data = vector.expectedData
        try await session.save()
        let cookie = try #require(session.setCookieHeaders.first)
        let decoded = try IndependentDecoder.decode(setCookie: cookie, secret: vector.options.secret)
        #expect(decoded.flags == 0x0010)
        #expect(decoded.json.contains(#""text":"lorem ipsum dolor sit amet lorem"#))
        let reopened = try await manager.open(SessionRequest(jar: session.browserCookies()))
        #expect(reopened.data == vector.expectedData)
    }

    @Test(arguments: CookieVector.all)
    func independentDecoderAgreesWithThePythonDecode(_ vector: CookieVector) throws {
        // Our test-side decoder (written from COOKIE.md's offsets) against the vector's
        // Python decode: header fields, derived keys, plaintext length.
        for (index, header) in vector.set_cookie_headers.enumerated() {
            let cookieName = index == 0 ? "session" : "remember"
            let expected = try #require(vector.python_independent_decode[cookieName])
            let decoded = try IndependentDecoder.decode(
                setCookie: header,
                secret: vector.options.secret,
                rememberIterations: cookieName == "remember" ? 10_000 : nil,
                storedPayload: vector.storage_dump_redis.flatMap { dumps in
                    dumps.first.map { IndependentDecoder.payload(ofStoredValue: $0.get) }
                }
            )
            #expect(decoded.flags == expected.fields.flags)
            #expect(decoded.sid.hex == expected.fields.sid_hex)
            #expect(decoded.creationTime == expected.fields.creation_time)
            #expect(decoded.rollingOffset == expected.fields.rolling_offset)
            #expect(decoded.dataSize == expected.fields.data_size)
            #expect(decoded.tag.hex == expected.fields.tag_hex)
            #expect(decoded.idlingOffset == expected.fields.idling_offset)
            #expect(decoded.mac.hex == expected.fields.mac_hex)
            #expect(decoded.aesKey.hex == expected.aes_key_hex)
            #expect(decoded.iv.hex == expected.aes_iv_hex)
            if let deflated = expected.deflated_len {
                #expect(decoded.plaintext.count == deflated)
            } else {
                #expect(decoded.json == expected.plaintext_json)
            }
            #expect(decoded.json.utf8.count == expected.plaintext_len)
        }
    }

    @Test func keyDerivationsMatchTheVectors() throws {
        for vector in CookieVector.all {
            for (name, decode) in vector.python_independent_decode {
                let key = SessionKey(ikm: [UInt8](hex: decode.ikm_hex))
                #expect(SessionCrypto.sha256(vector.options.secret.utf8).hex == decode.ikm_hex)
                let sid = [UInt8](hex: decode.fields.sid_hex)
                #expect(key.expand(usage: "authentication", nonce: sid, count: 32).hex == decode.mac_key_hex)
                let (aesKey, nonce) = SessionCrypto.withEncryptionKey(key, sid: SessionID(sid)!, iterations: name == "remember" ? 10_000 : nil) {
                    (Array($0), Array($1))
                }
                #expect(aesKey.hex == decode.aes_key_hex)
                #expect(nonce.hex == decode.aes_iv_hex)
            }
        }
    }

    @Test func rememberCookieAloneRestoresTheSession() async throws {
        let vector = try #require(CookieVector.all.first { $0.case == "d" })
        let restore = try #require(vector.reopen_with_only_remember_cookie)
        let clock = ManualClock(vector.lua_save_report.save_time)
        let manager = try vector.manager(clock: clock)
        let session = try await manager.open(SessionRequest(cookieHeader: restore.lua_open_report.request_cookie_header))
        #expect(session.state == .open)
        #expect(session.isRestoredFromRememberCookie)
        #expect(session.data == vector.expectedData)
        // Like the original: a renewed remember cookie first, then a new session cookie.
        #expect(session.setCookieHeaders.count == 2)
        #expect(session.setCookieHeaders[0].hasPrefix("remember="))
        #expect(session.setCookieHeaders[0].hasSuffix("; Path=/; SameSite=Lax; HttpOnly; Expires=Sun, 29 Nov 2026 01:29:39 GMT; Max-Age=604800"))
        #expect(session.setCookieHeaders[1].hasPrefix("session="))
        for (header, lua) in zip(session.setCookieHeaders, restore.set_cookie_headers) {
            #expect(header.count == lua.count)
        }
        // The new cookies open.
        let reopened = try await manager.open(SessionRequest(jar: session.browserCookies()))
        #expect(reopened.state == .open)
        #expect(!reopened.isRestoredFromRememberCookie)
        #expect(reopened.data == vector.expectedData)
    }

    @Test func tamperedVectorCookiesDoNotOpen() async throws {
        let vector = try #require(CookieVector.all.first { $0.case == "a" })
        let tampers = try #require(vector.tamper_tests)
        let clock = ManualClock(vector.lua_save_report.save_time)
        let manager = try vector.manager(clock: clock)
        let expectations: [String: SessionOpenFailure] = ["mac_changed": .invalidMAC, "ciphertext_changed": .decryptionFailed]
        for (name, tamper) in tampers {
            #expect(!tamper.exists)
            let session = try await manager.open(SessionRequest(cookieHeader: tamper.request_cookie_header))
            #expect(session.state == .new, "\(name)")
            #expect(session.openFailure == expectations[name], "\(name)")
        }
    }

    @Test(arguments: CookieVector.all)
    func wrongSecretDoesNotOpen(_ vector: CookieVector) async throws {
        let clock = ManualClock(vector.lua_save_report.save_time)
        var configuration = SessionManager.Configuration(secret: "not the secret")
        configuration.audience = vector.options.audience ?? "default"
        let manager = try SessionManager(
            configuration: configuration,
            storage: vector.options.storage != nil ? await vector.preloadedStore() : nil,
            clock: clock.sessionClock
        )
        let session = try await manager.open(SessionRequest(cookieHeader: vector.reopen.request_cookie_header))
        #expect(session.state == .new)
        #expect(session.openFailure == .invalidMAC)
    }

    @Test(arguments: CookieVector.all)
    func vectorsExpireWithTheDefaultTimeouts(_ vector: CookieVector) async throws {
        let clock = ManualClock(vector.lua_save_report.save_time + 901)
        let manager = try vector.manager(store: await vector.preloadedStore(), clock: clock)
        let session = try await manager.open(SessionRequest(cookieHeader: vector.reopen.request_cookie_header))
        if vector.options.remember == true {
            // The session cookie idled out; the remember cookie brings the session back.
            #expect(session.isRestoredFromRememberCookie)
            #expect(session.data == vector.expectedData)
        } else {
            #expect(session.openFailure == .idlingTimeoutExceeded)
            #expect(session.state == .new)
            #expect(session.data.isEmpty)
        }
    }
}
