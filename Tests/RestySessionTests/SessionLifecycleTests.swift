import Foundation
import SessionStorage
import Testing

@testable import RestySession

@Suite("Session operations")
struct SessionLifecycleTests {
    @Test func cookieRoundTrip() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.audience = "shop"; $0.subject = "bob@example.com" }
        var session = manager.new(SessionRequest())
        #expect(session.state == .new)
        session["user"] = "bob"
        session["cart"] = ["apple", 3, true, nil, ["nested": 1.5]]
        try await session.save()
        #expect(session.state == .open)
        #expect(session.setCookieHeaders.count == 1)
        let cookie = session.setCookieHeaders[0]
        #expect(cookie.hasSuffix("; Path=/; SameSite=Lax; HttpOnly"))

        let decoded = try IndependentDecoder.decode(setCookie: cookie, secret: testSecret)
        #expect(decoded.name == "session")
        #expect(decoded.flags == 0)
        #expect(decoded.creationTime == testStart)
        #expect(decoded.rollingOffset == 0)
        #expect(decoded.idlingOffset == 0)
        #expect(decoded.json == #"[[{"cart":["apple",3,true,null,{"nested":1.5}],"user":"bob"},"shop","bob@example.com"]]"#)
        #expect(Base64URL.encode(decoded.sid) == session.id)

        clock.advance(30)
        let reopened = try await manager.open(SessionRequest(jar: session.browserCookies()))
        #expect(reopened.state == .open)
        #expect(reopened["user"] == "bob")
        #expect(reopened.data == session.data)
        #expect(reopened.audience == "shop")
        #expect(reopened.subject == "bob@example.com")
        #expect(reopened.id == session.id)
        #expect(reopened.idlingTimeoutRemaining == 870)
        #expect(reopened.rollingTimeoutRemaining == 3570)
        #expect(reopened.absoluteTimeoutRemaining == 86_370)
        #expect(reopened.timeoutRemaining == 870)
    }

    @Test func savingRotatesTheIdAndKeepsTheCreationTime() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock)
        let (first, jar) = try await saveNew(manager, ["n": 1])
        clock.advance(100)
        var session = try await manager.open(SessionRequest(jar: jar))
        session["n"] = 2
        try await session.save()
        #expect(session.id != first.id)
        let decoded = try IndependentDecoder.decode(setCookie: session.setCookieHeaders[0], secret: testSecret)
        #expect(decoded.creationTime == testStart)
        #expect(decoded.rollingOffset == 100)
        let reopened = try await manager.open(SessionRequest(jar: session.browserCookies(after: jar)))
        #expect(reopened["n"] == 2)
    }

    @Test func storageRoundTrip() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock)
        let (session, jar) = try await saveNew(manager, ["user": "carol"])
        let cookie = session.setCookieHeaders[0]
        // The cookie carries the header only: 8 + 110 characters before the attributes.
        #expect(cookie.split(separator: ";")[0].count == "session=".count + 110)
        let id = try #require(session.id)
        let record = try #require(await store.record(name: "session", key: id))
        #expect(record.expiry == testStart + 3600)
        let payload = IndependentDecoder.payload(ofStoredValue: record.value)
        #expect(record.value == "[\"\(payload)\"]")
        let decoded = try IndependentDecoder.decode(setCookie: cookie, secret: testSecret, storedPayload: payload)
        #expect(decoded.flags == 0x0001)
        #expect(decoded.json == #"[[{"user":"carol"},"default"]]"#)

        clock.advance(10)
        let reopened = try await manager.open(SessionRequest(jar: jar))
        #expect(reopened.state == .open)
        #expect(reopened["user"] == "carol")

        // A cookie-only manager refuses a storage cookie and the other way round.
        let cookieOnly = try makeManager(clock: clock)
        #expect(try await cookieOnly.open(SessionRequest(jar: jar)).openFailure == .invalidFlags)
        let (_, cookieJar) = try await saveNew(cookieOnly, ["x": 1])
        #expect(try await manager.open(SessionRequest(jar: cookieJar)).openFailure == .invalidFlags)
    }

    @Test func hashedStorageKey() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock) { $0.hashStorageKey = true }
        let (session, jar) = try await saveNew(manager, ["user": "dave"])
        let id = try #require(session.id)
        let sid = try #require(Base64URL.decode(id))
        let hashed = Base64URL.encode(SessionCrypto.sha256(sid))
        #expect(session.storageKey == hashed)
        #expect(await store.record(name: "session", key: id) == nil)
        #expect(await store.record(name: "session", key: hashed) != nil)
        #expect(try await manager.open(SessionRequest(jar: jar))["user"] == "dave")
    }

    @Test func rotationKeepsTheOldRecordForStaleTTLOnly() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock) { $0.staleTTL = .seconds(7) }
        let (first, jar) = try await saveNew(manager, ["v": 1])
        clock.advance(60)
        var session = try await manager.open(SessionRequest(jar: jar))
        try await session.save()
        let request = try #require(await store.setRequests.last)
        #expect(request.oldKey == first.id)
        #expect(request.staleTTL == 7)
        #expect(request.remember == false)
        #expect(await store.record(name: "session", key: first.id!)?.expiry == testStart + 67)
        // The old cookie still opens within the stale TTL, not after.
        clock.advance(5)
        #expect(try await manager.open(SessionRequest(jar: jar)).state == .open)
        clock.advance(3)
        #expect(try await manager.open(SessionRequest(jar: jar)).openFailure == .notInStorage)
    }

    @Test func destroyExpiresCookiesAndDeletesRecords() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock) { $0.remember = true }
        let (session, jar) = try await saveNew(manager, ["v": 1])
        #expect(jar.keys.sorted() == ["remember", "session"])
        let id = try #require(session.id)
        let rememberKey = try #require(await store.setRequests.last?.key)
        #expect(await store.setRequests.last?.remember == true)
        #expect(await store.setRequests.last?.name == "remember")

        let destroyed = try await manager.destroy(SessionRequest(jar: jar))
        #expect(destroyed.state == .closed)
        #expect(destroyed.setCookieHeaders == [
            "session=; Path=/; SameSite=Lax; HttpOnly; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0",
            "remember=; Path=/; SameSite=Lax; HttpOnly; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0",
        ])
        #expect(await store.record(name: "session", key: id) == nil)
        #expect(await store.record(name: "remember", key: rememberKey) == nil)
        let after = try await manager.open(SessionRequest(jar: jar))
        #expect(after.openFailure == .notInStorage)
        #expect(after.state == .new)
    }

    @Test func closedSessionsRefuseOperations() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock)
        var session = manager.new(SessionRequest())
        await #expect(throws: SessionError.self) { try await session.refresh() }
        #expect(throws: SessionError.self) { try session.touch() }
        await #expect(throws: SessionError.self) { try await session.destroy() }
        await #expect(throws: SessionError.self) { try await session.logout() }
        session.close()
        await #expect(throws: SessionError.self) { try await session.save() }
    }

    @Test func touchMovesTheIdlingOffsetAndKeepsTheId() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock)
        let (first, jar) = try await saveNew(manager, ["v": 1])
        clock.advance(600)
        var session = try await manager.open(SessionRequest(jar: jar))
        try session.touch()
        #expect(session.id == first.id)
        let decoded = try IndependentDecoder.decode(setCookie: session.setCookieHeaders[0], secret: testSecret)
        #expect(decoded.idlingOffset == 600)
        #expect(decoded.sid == Base64URL.decode(first.id!)!)
        // 600 + 899 seconds after the save: idle for 899 s only.
        clock.advance(899)
        let reopened = try await manager.open(SessionRequest(jar: session.browserCookies(after: jar)))
        #expect(reopened.state == .open)
        #expect(reopened.idlingTimeoutRemaining == 1)
    }

    @Test func refreshTouchesThenSaves() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock)
        var (_, jar) = try await saveNew(manager, ["v": 1])

        clock.advance(30)  // under the touch threshold
        var session = try await manager.start(SessionRequest(jar: jar))
        #expect(session.setCookieHeaders.isEmpty)
        #expect(try await session.refresh() == .none)

        clock.advance(100)  // over the touch threshold
        session = try await manager.open(SessionRequest(jar: jar))
        let id = session.id
        #expect(try await session.refresh() == .touched)
        #expect(session.id == id)
        jar = session.browserCookies(after: jar)

        // Keep touching until 3/4 of the rolling timeout (2700 s) is spent.
        for _ in 0..<3 {
            clock.advance(800)
            session = try await manager.start(SessionRequest(jar: jar))
            #expect(session.state == .open)
            jar = session.browserCookies(after: jar)
        }
        // 2530 s elapsed: touched. Next: 2701 s → saved under a new id.
        clock.advance(171)
        session = try await manager.open(SessionRequest(jar: jar))
        #expect(try await session.refresh() == .saved)
        #expect(session.id != id)
        let decoded = try IndependentDecoder.decode(setCookie: session.setCookieHeaders[0], secret: testSecret)
        #expect(decoded.rollingOffset == 2701)
    }

    @Test func sessionHeadersAndRequestCookieFiltering() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) {
            $0.subject = "erin"
            $0.requestHeaders = [.id, .audience, .subject, .timeout]
            $0.responseHeaders = [.idlingTimeout, .rollingTimeout, .absoluteTimeout]
        }
        var (_, jar) = try await saveNew(manager, ["v": 1])
        jar["other"] = "keep"
        clock.advance(100)
        let session = try await manager.open(SessionRequest(jar: jar))
        let request = session.requestHeaders()
        #expect(request.map(\.name) == ["Session-Id", "Session-Audience", "Session-Subject", "Session-Timeout"])
        #expect(request.map(\.value) == [session.id!, "default", "erin", "800"])
        #expect(session.responseHeaders().map(\.value) == ["800", "3500", "86300"])
        #expect(session.requestCookieHeaderWithoutSessionCookies() == "other=keep")
    }
}
