import Crypto
import SessionStorage
import Testing

@testable import RestySession
import SessionStorageConformance

@Suite("Cookie format: keys, chunks, deflate, attributes")
struct CookieFormatTests {
    // MARK: key rotation

    @Test func secretFallbacksOpenAndTheNewSecretSigns() async throws {
        let clock = ManualClock(testStart)
        let old = try makeManager(clock: clock) { $0.secret = "old secret" }
        let (_, jar) = try await saveNew(old, ["user": "frank"])

        let rotated = try makeManager(clock: clock) {
            $0.secret = "new secret"
            $0.secretFallbacks = ["older secret", "old secret"]
        }
        clock.advance(10)
        var session = try await rotated.open(SessionRequest(jar: jar))
        #expect(session.state == .open)
        #expect(session["user"] == "frank")
        // A touch keeps the key that verified the cookie (the ciphertext is under it).
        try session.touch()
        #expect((try? IndependentDecoder.decode(setCookie: session.setCookieHeaders[0], secret: "old secret")) != nil)
        // A save signs and encrypts with the new secret only.
        try await session.save()
        let saved = session.setCookieHeaders[0]
        #expect((try? IndependentDecoder.decode(setCookie: saved, secret: "new secret")) != nil)
        #expect((try? IndependentDecoder.decode(setCookie: saved, secret: "old secret")) == nil)
        #expect(try await old.open(SessionRequest(jar: session.browserCookies(after: jar))).openFailure == .invalidMAC)

        // Without the fallback the old cookie does not open.
        let newOnly = try makeManager(clock: clock) { $0.secret = "new secret" }
        #expect(try await newOnly.open(SessionRequest(jar: jar)).openFailure == .invalidMAC)
    }

    @Test func ikmAndIkmFallbacks() async throws {
        let clock = ManualClock(testStart)
        let oldKey = [UInt8](repeating: 0x11, count: 32)
        let newKey = [UInt8](repeating: 0x22, count: 32)
        let old = try makeManager(clock: clock) { $0.secret = nil; $0.ikm = oldKey }
        let (_, jar) = try await saveNew(old, ["v": 1])
        let rotated = try makeManager(clock: clock) { $0.secret = nil; $0.ikm = newKey; $0.ikmFallbacks = [oldKey] }
        #expect(try await rotated.open(SessionRequest(jar: jar))["v"] == 1)
        // An explicit ikm takes precedence over a secret.
        let both = try makeManager(clock: clock) { $0.ikm = oldKey }
        #expect(try await both.open(SessionRequest(jar: jar))["v"] == 1)
        #expect(throws: SessionError.self) { try makeManager(clock: clock) { $0.ikm = [1, 2, 3] } }
        #expect(throws: SessionError.self) { try makeManager(clock: clock) { $0.ikmFallbacks = [[1]] } }
    }

    @Test func productionRequiresASecretAndDevelopmentUsesARandomKey() async throws {
        let clock = ManualClock(testStart)
        var configuration = SessionManager.Configuration()
        do {
            _ = try SessionManager(configuration: configuration, clock: clock.sessionClock)
            Issue.record("a manager without a secret started in production")
        } catch let error as SessionError {
            #expect(error.code == .missingSecret)
        }
        configuration.environment = .development
        let first = try SessionManager(configuration: configuration, clock: clock.sessionClock)
        let second = try SessionManager(configuration: configuration, clock: clock.sessionClock)
        let (_, jar) = try await saveNew(first, ["v": 1])
        #expect(try await first.open(SessionRequest(jar: jar))["v"] == 1)
        // Another manager (another process) has another key.
        #expect(try await second.open(SessionRequest(jar: jar)).openFailure == .invalidMAC)
    }

    // MARK: binding

    @Test func bindingToClientFacts() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.bind = [.ip, .scheme, .userAgent] }
        var session = manager.new(SessionRequest(remoteAddress: "10.0.0.1", scheme: "https", userAgent: "UA/1"))
        session["v"] = 1
        try await session.save()
        let cookie = session.setCookieHeaders[0]
        let decoded = try IndependentDecoder.decode(setCookie: cookie, secret: testSecret, bound: "10.0.0.1|https|UA/1")
        #expect(decoded.flags == 0x0700)
        let jar = session.browserCookies()
        #expect(try await manager.open(SessionRequest(jar: jar, remoteAddress: "10.0.0.1", scheme: "https", userAgent: "UA/1")).state == .open)
        #expect(try await manager.open(SessionRequest(jar: jar, remoteAddress: "10.0.0.2", scheme: "https", userAgent: "UA/1")).openFailure == .invalidMAC)
        #expect(try await manager.open(SessionRequest(jar: jar, remoteAddress: "10.0.0.1", scheme: "http", userAgent: "UA/1")).openFailure == .invalidMAC)
        #expect(try await manager.open(SessionRequest(jar: jar, remoteAddress: "10.0.0.1", scheme: "https", userAgent: "UA/2")).openFailure == .invalidMAC)
    }

    // MARK: chunks

    private func incompressible(_ count: Int, seed: UInt64 = 1) -> String {
        var rng = SplitMix64(seed: seed)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<count).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
    }

    @Test(arguments: [3000, 5000, 12_000, 26_000])
    func chunkingAbove4KiB(size: Int) async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.compressionThreshold = 0 }
        let blob = incompressible(size)
        let (session, jar) = try await saveNew(manager, ["blob": .string(blob)])
        let names = session.setCookieHeaders.map { String($0.prefix { $0 != "=" }) }
        let plaintext = #"[[{"blob":""#.count + size + #""},"default"]]"#.count
        let dataSize = SessionCookieHeader.base64Size(plaintext)
        let expected = try #require(SessionSettings.chunkCount(nameSize: 7, dataSize: dataSize))
        #expect(names == ["session"] + (expected > 1 ? (2...expected).map { "session\($0)" } : []))
        for header in session.setCookieHeaders {
            let nameValue = header.split(separator: ";")[0]
            #expect(nameValue.utf8.count <= 4096)
            #expect(header.hasSuffix("; Path=/; SameSite=Lax; HttpOnly"))
        }
        // Independent decode: the chunks' values concatenated after the first.
        let extra = session.setCookieHeaders.dropFirst().map { String($0.split(separator: ";")[0].split(separator: "=", maxSplits: 1)[1]) }
        let decoded = try IndependentDecoder.decode(setCookie: session.setCookieHeaders[0], secret: testSecret, extraChunks: extra)
        #expect(decoded.dataSize == dataSize)
        #expect(decoded.json.contains(blob))
        let reopened = try await manager.open(SessionRequest(jar: jar))
        #expect(reopened["blob"] == .string(blob))
        if expected > 1 {
            var missing = jar
            missing["session\(expected)"] = nil
            #expect(try await manager.open(SessionRequest(jar: missing)).openFailure == .missingChunk)
        }
    }

    @Test func shrinkingAndDestroyingExpireSurplusChunks() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.compressionThreshold = 0 }
        let (_, jar) = try await saveNew(manager, ["blob": .string(incompressible(9000))])
        #expect(jar.keys.sorted() == ["session", "session2", "session3"])
        var session = try await manager.open(SessionRequest(jar: jar))
        session["blob"] = "small"
        try await session.save()
        #expect(session.setCookieHeaders.count == 3)
        #expect(session.setCookieHeaders[1] == "session2=; Path=/; SameSite=Lax; HttpOnly; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0")
        #expect(session.setCookieHeaders[2] == "session3=; Path=/; SameSite=Lax; HttpOnly; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0")
        let small = session.browserCookies(after: jar)
        #expect(small.keys.sorted() == ["session"])
        #expect(try await manager.open(SessionRequest(jar: small))["blob"] == "small")

        let destroyed = try await manager.destroy(SessionRequest(jar: jar))
        #expect(destroyed.setCookieHeaders.map { String($0.prefix { $0 != "=" }) } == ["session", "session2", "session3"])
        #expect(destroyed.setCookieHeaders.allSatisfy { $0.hasSuffix("Max-Age=0") })
    }

    @Test func dataBeyondNineCookiesIsRefused() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.compressionThreshold = 0 }
        var session = manager.new(SessionRequest())
        session["blob"] = .string(incompressible(28_000))
        do {
            try await session.save()
            Issue.record("saved a cookie larger than nine chunks")
        } catch let error as SessionError {
            #expect(error.code == .cookieTooLarge)
        }
        #expect(session.setCookieHeaders.isEmpty)
        #expect(session.state == .new)
        // With a store the same data is fine.
        let stored = try makeManager(store: TestStore(), clock: clock)
        let (_, jar) = try await saveNew(stored, ["blob": .string(incompressible(28_000))])
        #expect(try await stored.open(SessionRequest(jar: jar))["blob"]?.stringValue?.count == 28_000)
    }

    // MARK: deflate

    @Test func deflateAboveTheThreshold() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock)
        let text = String(repeating: "the quick brown fox jumps over the lazy dog ", count: 40)
        let (session, jar) = try await saveNew(manager, ["text": .string(text)])
        let decoded = try IndependentDecoder.decode(setCookie: session.setCookieHeaders[0], secret: testSecret)
        #expect(decoded.flags == 0x0010)
        #expect(decoded.plaintext.count < 200)
        #expect(decoded.json == "[[{\"text\":\"\(text)\"},\"default\"]]")
        #expect(try await manager.open(SessionRequest(jar: jar))["text"] == .string(text))

        // Under the threshold, disabled, or incompressible: not deflated.
        let (small, _) = try await saveNew(manager, ["text": "short"])
        #expect(try IndependentDecoder.decode(setCookie: small.setCookieHeaders[0], secret: testSecret).flags == 0)
        let never = try makeManager(clock: clock) { $0.compressionThreshold = 0 }
        let (plain, _) = try await saveNew(never, ["text": .string(text)])
        #expect(try IndependentDecoder.decode(setCookie: plain.setCookieHeaders[0], secret: testSecret).flags == 0)
        // Deflated output is only kept when shorter: 30 distinct bytes do not shrink.
        let eager = try makeManager(clock: clock) { $0.compressionThreshold = 10 }
        let (unique, _) = try await saveNew(eager, ["v": "0123456789"])
        #expect(try IndependentDecoder.decode(setCookie: unique.setCookieHeaders[0], secret: testSecret).flags == 0)
    }

    // MARK: attributes

    @Test func cookieAttributes() async throws {
        let clock = ManualClock(testStart)
        func attributes(_ configure: (inout SessionManager.Configuration) -> Void) async throws -> String {
            let manager = try makeManager(clock: clock, configure)
            let (session, _) = try await saveNew(manager, ["v": 1])
            let header = session.setCookieHeaders[0]
            return String(header[header.firstIndex(of: ";")!...])
        }
        #expect(try await attributes { _ in } == "; Path=/; SameSite=Lax; HttpOnly")
        #expect(try await attributes { $0.cookieDomain = "example.com"; $0.cookiePath = "/app" } == "; Domain=example.com; Path=/app; SameSite=Lax; HttpOnly")
        #expect(try await attributes { $0.cookieDomain = "localhost" } == "; Path=/; SameSite=Lax; HttpOnly")
        #expect(try await attributes { $0.cookieSameSite = .none } == "; Path=/; SameSite=None; Secure; HttpOnly")
        #expect(try await attributes { $0.cookieSameSite = .strict; $0.cookieSecure = true; $0.cookieHTTPOnly = false } == "; Path=/; SameSite=Strict; Secure")
        #expect(
            try await attributes { $0.cookiePriority = .high; $0.cookiePartitioned = true; $0.cookieSecure = true }
                == "; Path=/; SameSite=Lax; Priority=High; Partitioned; Secure; HttpOnly"
        )
        #expect(try await attributes { $0.cookiePrefix = .host; $0.cookieDomain = "example.com"; $0.cookiePath = "/x" } == "; Path=/; SameSite=Lax; Secure; HttpOnly")
        #expect(try await attributes { $0.cookiePrefix = .secure; $0.cookiePath = "/x" } == "; Path=/x; SameSite=Lax; Secure; HttpOnly")
        #expect(throws: SessionError.self) { try makeManager(clock: clock) { $0.cookieSameParty = true; $0.cookieSameSite = .strict } }
        #expect(throws: SessionError.self) { try makeManager(clock: clock) { $0.cookieName = "bad name" } }
        #expect(throws: SessionError.self) { try makeManager(clock: clock) { $0.cookiePath = "/; Domain=evil" } }
        #expect(throws: SessionError.self) { try makeManager(clock: clock) { $0.idlingTimeout = .seconds(-1) } }
    }

    @Test func prefixedCookieNames() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.cookiePrefix = .host; $0.remember = true }
        let (session, jar) = try await saveNew(manager, ["v": 1])
        #expect(session.setCookieHeaders.map { String($0.prefix { $0 != "=" }) } == ["__Host-session", "__Host-remember"])
        #expect(try await manager.open(SessionRequest(jar: jar))["v"] == 1)
    }

    @Test func rememberCookieAttributes() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.remember = true }
        let (session, _) = try await saveNew(manager, ["v": 1])
        #expect(session.setCookieHeaders[1].hasSuffix("; Path=/; SameSite=Lax; HttpOnly; Expires=Sun, 29 Nov 2026 01:29:39 GMT; Max-Age=604800"))
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate.format(4_102_444_799) == "Thu, 31 Dec 2099 23:59:59 GMT")
    }

    @Test func forgettingTheRememberChoice() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.remember = true }
        var session = manager.new(SessionRequest())
        session.setRemember(false)
        session["v"] = 1
        try await session.save()
        #expect(session.setCookieHeaders.count == 1)
        let decoded = try IndependentDecoder.decode(setCookie: session.setCookieHeaders[0], secret: testSecret)
        #expect(decoded.flags == 0x0002)
        // The choice travels in the cookie: later saves send no remember cookie either.
        var reopened = try await manager.open(SessionRequest(jar: session.browserCookies()))
        #expect(!reopened.remember)
        try await reopened.save()
        #expect(reopened.setCookieHeaders.count == 1)
        // Until the user ticks the box again.
        reopened.setRemember(true)
        try await reopened.save()
        #expect(reopened.setCookieHeaders.count == 2)
        #expect(try IndependentDecoder.decode(setCookie: reopened.setCookieHeaders[0], secret: testSecret).flags == 0)
    }
}
