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
}
