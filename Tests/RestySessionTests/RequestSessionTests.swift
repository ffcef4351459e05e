import Testing

@testable import RestySession

@Suite struct RequestSessionTests {
    /// `Session` keeps its fields in one copy-on-write box: copies must stay independent.
    @Test func copiesOfASessionAreIndependent() async throws {
        let manager = try makeManager(store: TestStore(), clock: ManualClock(1_700_000_000))
        let (saved, jar) = try await saveNew(manager, ["user": "bob"], subject: "bob")

        let original = try await manager.open(SessionRequest(jar: jar))
        var copy = original
        copy["user"] = "eve"
        copy.subject = "eve"
        copy.setAudience("admin")
        copy.setRemember(true)
        #expect(original["user"] == "bob")
        #expect(original.subject == "bob")
        #expect(original.audience == "default")
        #expect(original.remember == false)
        #expect(copy["user"] == "eve" && copy.subject == "eve" && copy.audience == "admin" && copy.remember)

        // An operation that writes cookies and records (a new id) leaves the original as it was.
        var saving = original
        try await saving.save()
        #expect(saving.id != original.id)
        #expect(!saving.setCookieHeaders.isEmpty)
        #expect(original.setCookieHeaders.isEmpty)
        #expect(original.id == saved.id)
        #expect(original.state == .open)

        var closing = original
        closing.close()
        #expect(closing.state == .closed)
        #expect(original.state == .open)
    }

    @Test func anUnchangedSessionIsNotSavedAndAChangedOneIs() async throws {
        let clock = ManualClock(1_700_000_000)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock)
        let (_, jar) = try await saveNew(manager, ["user": "bob"], subject: "bob")
        let setsBefore = await store.setRequests.count

        // Read only, nothing due: no cookie, no write.
        let reading = RequestSession(manager: manager, request: SessionRequest(jar: jar))
        #expect(try await reading.get("user") == "bob")
        #expect(try await reading.finish().isEmpty)
        #expect(await store.setRequests.count == setsBefore)

        // A value set, then set back: still unchanged.
        let restoring = RequestSession(manager: manager, request: SessionRequest(jar: jar))
        try await restoring.set("user", "eve")
        try await restoring.set("user", "bob")
        #expect(try await restoring.finish().isEmpty)

        // A change to another audience's data (switch, change, switch back) is saved.
        let switching = RequestSession(manager: manager, request: SessionRequest(jar: jar))
        try await switching.modify { session in
            session.setAudience("admin")
            session["level"] = 3
            session.setAudience("default")
        }
        let cookies = try await switching.finish()
        #expect(cookies.contains { $0.hasPrefix("session=") })
        #expect(await store.setRequests.count == setsBefore + 1)

        // A save inside the handler is not repeated by finish().
        let saving = RequestSession(manager: manager, request: SessionRequest(jar: jar))
        try await saving.set("user", "carol")
        try await saving.save()
        let afterSave = await store.setRequests.count
        #expect(try await saving.finish().contains { $0.hasPrefix("session=") })
        #expect(await store.setRequests.count == afterSave)
        #expect(try await saving.finish().isEmpty)
    }

    /// `finishWithoutStore()` finishes without a store call exactly when `finish()` would make
    /// none, with the same cookies, and otherwise changes nothing so `finish()` still saves.
    @Test func finishWithoutStoreTakesOnlyTheCasesWithoutAStoreCall() async throws {
        let clock = ManualClock(1_700_000_000)
        let store = TestStore()
        let manager = try makeManager(store: store, clock: clock)  // idling 900 s, rolling 3600 s, touch after 60 s
        let (_, jar) = try await saveNew(manager, ["user": "bob"], subject: "bob")
        let setsBefore = await store.setRequests.count

        // Never opened: finished at once, and for good.
        let unused = RequestSession(manager: manager, request: SessionRequest(jar: jar))
        #expect(try unused.finishWithoutStore() == [])
        #expect(!unused.isLoaded)
        #expect(try await unused.finish().isEmpty)

        // Read only, nothing due: finished, no cookie.
        let reading = RequestSession(manager: manager, request: SessionRequest(jar: jar))
        #expect(try await reading.get("user") == "bob")
        #expect(try reading.finishWithoutStore() == [])
        #expect(try await reading.finish().isEmpty)  // already finished

        // Read only, touch due (61 s later): the touched cookie, still no store call.
        clock.advance(61)
        let touching = RequestSession(manager: manager, request: SessionRequest(jar: jar))
        #expect(try await touching.get("user") == "bob")
        let touched = try #require(try touching.finishWithoutStore())
        #expect(touched.count == 1 && touched[0].hasPrefix("session="))
        #expect(await store.setRequests.count == setsBefore)

        // Changed: nil, nothing finished, and finish() saves it.
        let changing = RequestSession(manager: manager, request: SessionRequest(jar: jar))
        try await changing.set("user", "eve")
        #expect(try changing.finishWithoutStore() == nil)
        #expect(try await changing.finish().contains { $0.hasPrefix("session=") })
        #expect(await store.setRequests.count == setsBefore + 1)

        // Renewal due (3/4 of the rolling timeout spent, within the idling timeout: the cookie
        // was touched every 800 s): nil, and finish() renews it (a new record).
        // (A session of its own: the change above rotated the first one's record away.)
        var (_, cookieJar) = try await saveNew(manager, ["user": "bob"], subject: "bob")
        for _ in 0..<4 {
            clock.advance(800)
            let request = RequestSession(manager: manager, request: SessionRequest(jar: cookieJar))
            #expect(try await request.get("user") == "bob")
            if let cookies = try request.finishWithoutStore() {
                for cookie in cookies {
                    let pair = cookie.split(separator: ";", maxSplits: 1)[0]
                    let equals = pair.firstIndex(of: "=")!
                    cookieJar[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
                }
            } else {
                let sets = await store.setRequests.count
                let cookies = try await request.finish()
                #expect(await store.setRequests.count == sets + 1)
                #expect(cookies.contains { $0.hasPrefix("session=") })
                return
            }
        }
        Issue.record("the renewal never came due")
    }
}
