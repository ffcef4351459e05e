import SessionStorage
import Testing

@testable import RestySession

@Suite("Audiences, subjects, the per-user index and revocation")
struct AudienceAndIndexTests {
    /// Two applications sharing one cookie: `app1` saves first, `app2` joins.
    private func twoAudiences(
        store: TestStore,
        clock: ManualClock,
        _ configure: @escaping (inout SessionManager.Configuration) -> Void = { _ in }
    ) async throws -> (app1: SessionManager, app2: SessionManager, jar: [String: String]) {
        let app1 = try makeManager(store: store, clock: clock) {
            $0.audience = "app1"
            $0.storeMetadata = true
            $0.hashSubject = true
            configure(&$0)
        }
        let app2 = try makeManager(store: store, clock: clock) {
            $0.audience = "app2"
            $0.storeMetadata = true
            $0.hashSubject = true
            configure(&$0)
        }
        let (_, jar1) = try await saveNew(app1, ["in": "one"], subject: "grace@example.com")
        var joined = try await app2.open(SessionRequest(jar: jar1))
        #expect(joined.openFailure == .missingAudience)
        #expect(joined.state == .new)
        #expect(joined.audiences == ["app1", "app2"])
        joined["in"] = "two"
        joined.subject = "grace@example.com"
        try await joined.save()
        return (app1, app2, joined.browserCookies(after: jar1))
    }

    @Test func oneCookieCarriesSeveralAudiences() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let (app1, app2, jar) = try await twoAudiences(store: store, clock: clock)
        let one = try await app1.open(SessionRequest(jar: jar))
        let two = try await app2.open(SessionRequest(jar: jar))
        #expect(one["in"] == "one")
        #expect(two["in"] == "two")
        #expect(one.id == two.id)
        #expect(one.audiences == ["app1", "app2"])
    }

    @Test func everyAudiencesSubjectIsHashedInTheIndex() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let (_, app2, jar) = try await twoAudiences(store: store, clock: clock)
        let request = try #require(await store.setRequests.last)
        let hashed = Base64URL.encode(SessionCrypto.sha256("grace@example.com".utf8).prefix(16))
        let metadata = try #require(request.metadata)
        #expect(metadata.audiences == [Base64URL.encode(Array("app1".utf8)), Base64URL.encode(Array("app2".utf8))])
        // The original kept the raw subject when a cookie had two audiences.
        #expect(metadata.subjects == [hashed, hashed])
        let session = try await app2.open(SessionRequest(jar: jar))
        let listed = try await app2.sessions(audience: "app2", subject: "grace@example.com")
        #expect(listed.sessions.keys.sorted() == [session.storageKey!])
        #expect(listed.sessions[session.storageKey!] == testStart + 3600)
    }

    @Test func logoutOfOneAudienceKeepsTheOthers() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let (app1, app2, jar) = try await twoAudiences(store: store, clock: clock) { $0.enforceSameSubject = true }
        clock.advance(5)
        let before = try await app2.open(SessionRequest(jar: jar))
        let oldKey = try #require(before.storageKey)

        let loggedOut = try await app2.logout(SessionRequest(jar: jar))
        #expect(loggedOut.state == .closed)
        #expect(loggedOut.setCookieHeaders.count == 1)
        let after = loggedOut.browserCookies(after: jar)

        let one = try await app1.open(SessionRequest(jar: after))
        #expect(one.state == .open)
        #expect(one["in"] == "one")
        #expect(one.audiences == ["app1"])
        let two = try await app2.open(SessionRequest(jar: after))
        #expect(two.openFailure == .missingAudience)

        // The old record (which still holds app2) is gone at once, and app2's index no longer
        // lists it; app1's index lists the new record only.
        #expect(await store.record(name: "session", key: oldKey) == nil)
        #expect(try await app2.open(SessionRequest(jar: jar)).openFailure == .notInStorage)
        #expect(try await app2.sessions(audience: "app2", subject: "grace@example.com").sessions.isEmpty)
        #expect(try await app1.sessions(audience: "app1", subject: "grace@example.com").sessions.keys.sorted() == [one.storageKey!])

        // Logging out of the last audience destroys the session.
        let last = try await app1.logout(SessionRequest(jar: after))
        #expect(last.setCookieHeaders == ["session=; Path=/; SameSite=Lax; HttpOnly; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"])
        #expect(try await app1.sessions(audience: "app1", subject: "grace@example.com").sessions.isEmpty)
    }

    @Test func logoutWithoutStorage() async throws {
        let clock = ManualClock(testStart)
        let app1 = try makeManager(clock: clock) { $0.audience = "app1"; $0.enforceSameSubject = true }
        let app2 = try makeManager(clock: clock) { $0.audience = "app2"; $0.enforceSameSubject = true }
        let (_, jar1) = try await saveNew(app1, ["in": "one"])
        var joined = try await app2.open(SessionRequest(jar: jar1))
        joined["in"] = "two"
        try await joined.save()
        let jar = joined.browserCookies(after: jar1)
        // Log out of the first audience (index 0), which the original mishandled.
        let loggedOut = try await app1.logout(SessionRequest(jar: jar))
        let after = loggedOut.browserCookies(after: jar)
        #expect(try await app2.open(SessionRequest(jar: after))["in"] == "two")
        #expect(try await app1.open(SessionRequest(jar: after)).openFailure == .missingAudience)
    }

    @Test func enforceSameSubjectDropsOtherSubjects() async throws {
        let clock = ManualClock(testStart)
        let app1 = try makeManager(clock: clock) { $0.audience = "app1"; $0.enforceSameSubject = true }
        let app2 = try makeManager(clock: clock) { $0.audience = "app2"; $0.enforceSameSubject = true }
        let (_, jar1) = try await saveNew(app1, ["in": "one"], subject: "heidi")
        var joined = try await app2.open(SessionRequest(jar: jar1))
        joined["in"] = "two"
        joined.subject = "ivan"
        try await joined.save()
        #expect(joined.audiences == ["app2"])
        #expect(joined.audience == "app2")
        #expect(joined["in"] == "two")
        let jar = joined.browserCookies(after: jar1)
        #expect(try await app1.open(SessionRequest(jar: jar)).openFailure == .missingAudience)
    }

    @Test func setAudienceRenamesTheCurrentEntry() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock) { $0.audience = "a" }
        var session = manager.new(SessionRequest())
        session["v"] = 1
        session.setAudience("b")
        #expect(session.audience == "b")
        #expect(session.audiences == ["b"])
        try await session.save()
        let other = try makeManager(clock: clock) { $0.audience = "b" }
        #expect(try await other.open(SessionRequest(jar: session.browserCookies()))["v"] == 1)
    }

    @Test func listingAndRevokingSessionsOfASubject() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock) {
            $0.storeMetadata = true
            $0.subject = "judy"
            $0.remember = true
        }
        var jars: [[String: String]] = []
        var keys: [String] = []
        for index in 0..<3 {
            let (session, jar) = try await saveNew(manager, ["device": .number(Double(index))])
            jars.append(jar)
            keys.append(session.storageKey!)
            clock.advance(1)
        }
        let listed = try await manager.sessions(audience: "default", subject: "judy")
        #expect(Set(listed.sessions.keys) == Set(keys))
        #expect(listed.remembered.count == 3)
        // The index stores base64url audience and subject.
        #expect(await store.index(name: "session", audience: "ZGVmYXVsdA", subject: "anVkeQ").count == 3)

        // Revoke one.
        try await manager.revoke(key: keys[0], audience: "default", subject: "judy")
        #expect(try await manager.open(SessionRequest(jar: jars[0].filter { $0.key == "session" })).openFailure == .notInStorage)

        // Revoke all but the current one, from the current session.
        var current = try await manager.open(SessionRequest(jar: jars[2]))
        let revoked = try await current.revokeOtherSessions()
        #expect(revoked == 3)  // session 1, and the remember records of sessions 0 and 1
        #expect(try await manager.open(SessionRequest(jar: jars[1])).state == .new)
        #expect(try await manager.open(SessionRequest(jar: jars[0])).state == .new)
        #expect(try await manager.open(SessionRequest(jar: jars[2]))["device"] == 2)
        let remaining = try await manager.sessions(audience: "default", subject: "judy")
        #expect(remaining.sessions.keys.sorted() == [keys[2]])
        #expect(remaining.remembered.count == 1)

        // Revoke all.
        #expect(try await manager.revokeAll(audience: "default", subject: "judy") == 2)
        #expect(try await manager.open(SessionRequest(jar: jars[2])).state == .new)
    }

    @Test func listingNeedsAnIndexedStore() async throws {
        let clock = ManualClock(testStart)
        let cookieOnly = try makeManager(clock: clock)
        await #expect(throws: SessionError.self) { try await cookieOnly.sessions(audience: "a", subject: "s") }
        let unindexed = try makeManager(store: TestStore(), clock: clock)
        await #expect(throws: SessionError.self) { try await unindexed.revokeAll(audience: "a", subject: "s") }
    }

    @Test func infoDataWithAStore() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock)
        let (_, jar) = try await saveNew(manager, ["v": 1])
        clock.advance(20)
        var session = try await manager.open(SessionRequest(jar: jar))
        session.setInfo("last-seen", .number(Double(clock.now)))
        let requestsBefore = await store.setRequests.count
        try await session.saveInfo()
        #expect(session.setCookieHeaders.isEmpty)
        #expect(await store.setRequests.count == requestsBefore + 1)
        let request = try #require(await store.setRequests.last)
        #expect(request.key == session.storageKey)
        #expect(request.ttl == 3580)
        let parts = try #require(SessionJSON.decode(request.value.utf8)?.arrayValue)
        #expect(parts.count == 2)
        let info = try #require(parts[1].stringValue.flatMap { Base64URL.decode($0) })
        #expect(String(decoding: info, as: UTF8.self) == "{\"default\":{\"last-seen\":\(clock.now)}}")

        let reopened = try await manager.open(SessionRequest(jar: jar))
        #expect(reopened.info("last-seen") == .number(Double(clock.now)))
        #expect(reopened["last-seen"] == nil)
        // A save keeps the info next to the new payload.
        var saved = reopened
        try await saved.save()
        let again = try await manager.open(SessionRequest(jar: saved.browserCookies(after: jar)))
        #expect(again.info("last-seen") == .number(Double(clock.now)))
    }

    @Test func infoAndAtKeysWithoutAStore() async throws {
        let clock = ManualClock(testStart)
        let manager = try makeManager(clock: clock)
        var session = manager.new(SessionRequest())
        session.setInfo("x", "info")
        session["@x"] = "data"
        try await session.save()
        let decoded = try IndependentDecoder.decode(setCookie: session.setCookieHeaders[0], secret: testSecret)
        #expect(decoded.json == #"[[{"$@x":"data","@x":"info"},"default"]]"#)
        var reopened = try await manager.open(SessionRequest(jar: session.browserCookies()))
        #expect(reopened.info("x") == "info")
        #expect(reopened["@x"] == "data")
        try await reopened.saveInfo()
        #expect(reopened.setCookieHeaders.count == 1)
    }

    @Test func storageFailuresAreErrorsAndSendNoCookie() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock)
        var session = manager.new(SessionRequest())
        session["v"] = 1
        await store.failNext()
        do {
            try await session.save()
            Issue.record("save succeeded although the store failed")
        } catch let error as SessionError {
            #expect(error.code == .storageFailed)
            #expect(error.underlying is SessionStoreError)
        }
        #expect(session.setCookieHeaders.isEmpty)
        #expect(session.state == .new)
        try await session.save()
        let jar = session.browserCookies()
        await store.failNext()
        await #expect(throws: SessionError.self) { try await manager.open(SessionRequest(jar: jar)) }
    }
}
