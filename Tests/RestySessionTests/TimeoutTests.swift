import SessionStorage
import Testing

@testable import RestySession

@Suite("Timeouts on the injected clock")
struct TimeoutTests {
    @Test func idlingTimeout() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.idlingTimeout = .seconds(300) }
        let (_, jar) = try await saveNew(manager, ["v": 1])
        clock.advance(300)
        #expect(try await manager.open(SessionRequest(jar: jar)).state == .open)
        clock.advance(1)
        let session = try await manager.open(SessionRequest(jar: jar))
        #expect(session.openFailure == .idlingTimeoutExceeded)
        #expect(session.state == .new)
        #expect(session.data.isEmpty)
    }

    @Test func rollingTimeoutIsNotExtendedByTouching() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.rollingTimeout = .seconds(1000); $0.idlingTimeout = .seconds(400) }
        var (_, jar) = try await saveNew(manager, ["v": 1])
        for _ in 0..<3 {
            clock.advance(300)
            var session = try await manager.open(SessionRequest(jar: jar))
            try session.touch()
            jar = session.browserCookies(after: jar)
        }
        clock.advance(100)  // 1000 s after the save
        #expect(try await manager.open(SessionRequest(jar: jar)).state == .open)
        clock.advance(1)
        #expect(try await manager.open(SessionRequest(jar: jar)).openFailure == .rollingTimeoutExceeded)
    }

    @Test func absoluteTimeoutIsNotExtendedBySaving() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock) {
            $0.absoluteTimeout = .seconds(5000)
            $0.rollingTimeout = .seconds(2000)
            $0.idlingTimeout = .zero
        }
        var (_, jar) = try await saveNew(manager, ["v": 1])
        for _ in 0..<2 {
            clock.advance(1900)
            var session = try await manager.open(SessionRequest(jar: jar))
            #expect(session.state == .open)
            try await session.save()
            jar = session.browserCookies(after: jar)
        }
        // Saved at 3800 s: the record's TTL is what is left of the absolute timeout (1200 s),
        // not the rolling timeout (the original's swapped arguments gave 2000 s).
        #expect(await store.setRequests.last?.ttl == 1200)
        clock.advance(1199)
        #expect(try await manager.open(SessionRequest(jar: jar)).state == .open)
        clock.advance(2)
        #expect(try await manager.open(SessionRequest(jar: jar)).openFailure == .absoluteTimeoutExceeded)
    }

    @Test func storageTTLFollowsTheRollingTimeoutWhileTheAbsoluteOneIsFar() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock)
        _ = try await saveNew(manager, ["v": 1])
        #expect(await store.setRequests.last?.ttl == 3600)
        let unlimited = try makeManager(store: store, clock: clock) { $0.rollingTimeout = .zero; $0.absoluteTimeout = .zero }
        _ = try await saveNew(unlimited, ["v": 1])
        #expect(await store.setRequests.last?.ttl == 34_560_000)
    }

    @Test func disabledTimeoutsNeverExpire() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) {
            $0.idlingTimeout = .zero
            $0.rollingTimeout = .zero
            $0.absoluteTimeout = .zero
        }
        let (_, jar) = try await saveNew(manager, ["v": 1])
        clock.advance(400 * 86_400)
        var session = try await manager.open(SessionRequest(jar: jar))
        #expect(session.state == .open)
        #expect(session.timeoutRemaining == nil)
        #expect(try await session.refresh() == .none)
    }

    @Test func rememberRollingTimeout() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.remember = true; $0.rememberRollingTimeout = .seconds(10_000) }
        let (_, jar) = try await saveNew(manager, ["v": 1])
        let rememberOnly = jar.filter { $0.key == "remember" }
        clock.advance(10_000)
        let restored = try await manager.open(SessionRequest(jar: rememberOnly))
        #expect(restored.isRestoredFromRememberCookie)
        #expect(restored["v"] == 1)
        clock.advance(1)
        let expired = try await manager.open(SessionRequest(jar: rememberOnly))
        #expect(expired.state == .new)
        // The session cookie's own failure is reported; the remember cookie's is logged.
        #expect(expired.openFailure == .missingCookie)
        let both = try await manager.open(SessionRequest(jar: jar))
        #expect(both.openFailure == .rollingTimeoutExceeded)
        #expect(both.state == .new)
    }

    @Test func rememberAbsoluteTimeout() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) {
            $0.remember = true
            $0.rememberRollingTimeout = .seconds(10_000)
            $0.rememberAbsoluteTimeout = .seconds(25_000)
        }
        var (_, jar) = try await saveNew(manager, ["v": 1])
        // Renew through the remember cookie only, every 9000 s: the rolling timeout never
        // passes, the absolute one does.
        for _ in 0..<2 {
            clock.advance(9000)
            let session = try await manager.open(SessionRequest(jar: jar.filter { $0.key == "remember" }))
            #expect(session.isRestoredFromRememberCookie)
            jar = session.browserCookies(after: jar)
            let remember = try #require(session.setCookieHeaders.first { $0.hasPrefix("remember=") })
            let decoded = try IndependentDecoder.decode(setCookie: remember, secret: testSecret, rememberIterations: 1000)
            #expect(decoded.creationTime == testStart)
            #expect(remember.hasSuffix("; Max-Age=10000"))
        }
        clock.advance(7000)  // 25 000 s
        #expect(try await manager.open(SessionRequest(jar: jar.filter { $0.key == "remember" })).isRestoredFromRememberCookie)
        clock.advance(1)
        let expired = try await manager.open(SessionRequest(jar: jar.filter { $0.key == "remember" }))
        #expect(expired.state == .new)
    }

    @Test func rememberCookieWithAnIdlingOffsetIsRejected() async throws {
        let clock = ManualClock(testStart)
        // A touched session cookie named "remember": a valid MAC, but a non-zero idling offset.
        let issuer = try makeManager(clock: clock) { $0.cookieName = "remember"; $0.rememberCookieName = "unused" }
        let (_, jar) = try await saveNew(issuer, ["v": 1])
        clock.advance(100)
        var touched = try await issuer.open(SessionRequest(jar: jar))
        try touched.touch()
        let manager = try makeManager(clock: clock) { $0.remember = true }
        var session = manager.new(SessionRequest(jar: touched.browserCookies(after: jar)))
        #expect(try await session.openCookie(remember: true, metaOnly: false) == .invalidIdlingOffset)
        // Untouched, the same cookie passes the header checks and fails where the remember
        // cookie's PBKDF2 key differs from the HKDF key it was encrypted with.
        var untouched = manager.new(SessionRequest(jar: jar))
        #expect(try await untouched.openCookie(remember: true, metaOnly: false) == .decryptionFailed)
    }
}
