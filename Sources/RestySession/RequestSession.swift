import Synchronization

/// One request's session for a framework adapter: opened lazily on first use, and finished
/// after the handler by ``finish()``, which saves it only when it changed, refreshes (touches
/// or renews) it when that is due, and returns the `Set-Cookie` values for the response.
///
/// A request that never touches its session costs nothing: no cookie is decrypted and the
/// store is not contacted. A new session that is never given data is never saved, so
/// anonymous visitors get no cookie.
///
/// The Hummingbird and Vapor adapters make one per request; handlers use it through the
/// framework's request context. Its operations are meant to be called one at a time by the
/// request's handler, as a request is handled by one task.
public final class RequestSession: Sendable {
    /// What decides whether the session changed since it was opened or last saved: every
    /// audience's data and subject, the current audience, the remember choice. (An unchanged
    /// session compares in constant time: its entries are still the same array buffer.)
    struct Fingerprint: Equatable {
        var entries: [Session.AudienceData]
        var index: Int
        var remember: Bool

        init(_ session: Session) {
            self.entries = session.entries
            self.index = session.index
            self.remember = session.remember
        }
    }

    struct State {
        var session: Session?
        var baseline: Fingerprint?
        var openedSID: SessionID?
        var finished = false
    }

    private let manager: SessionManager?
    /// The request facts the session is opened from.
    public let request: SessionRequest
    private let state: Mutex<State>

    /// A session of `request`, opened on first use with `manager`.
    public init(manager: SessionManager, request: SessionRequest) {
        self.manager = manager
        self.request = request
        self.state = Mutex(State())
    }

    /// A placeholder for a request context before an adapter's middleware has run: every
    /// operation throws ``SessionError/Code/invalidState``.
    public init() {
        self.manager = nil
        self.request = SessionRequest()
        self.state = Mutex(State())
    }

    /// Whether the session has been opened during this request.
    public var isLoaded: Bool { state.withLock { $0.session != nil } }

    /// The session, opened from the request's cookies on first call (``SessionManager/open(_:)``).
    ///
    /// - Throws: ``SessionError/Code/storageFailed`` when the store fails,
    ///   ``SessionError/Code/invalidState`` without an adapter's middleware.
    nonisolated(nonsending) public func load() async throws -> Session {
        if let session = state.withLock({ $0.session }) { return session }
        guard let manager else {
            throw SessionError(.invalidState, message: "no session middleware ran for this request")
        }
        let session = try await manager.open(request)
        return state.withLock { state in
            if let current = state.session { return current }
            state.session = session
            state.baseline = Fingerprint(session)
            state.openedSID = session.sid
            return session
        }
    }

    /// Runs `body` on the session (opening it first) and keeps what it did. Saving, logging
    /// out or destroying inside `body` is seen by ``finish()``, which then does not save again.
    @discardableResult
    public func modify<T>(_ body: (inout Session) async throws -> T) async throws -> T {
        var session = try await load()
        let idBefore = session.sid
        let result: T
        do {
            result = try await body(&session)
        } catch {
            store(session, idBefore: idBefore)
            throw error
        }
        store(session, idBefore: idBefore)
        return result
    }

    private func store(_ session: Session, idBefore: SessionID?) {
        state.withLock { state in
            state.session = session
            // A new id means `body` saved the session: what it holds now is what is stored.
            if session.sid != idBefore { state.baseline = Fingerprint(session) }
        }
    }

    // MARK: conveniences

    /// A value of the current audience's data.
    nonisolated(nonsending) public func get(_ key: String) async throws -> SessionValue? {
        try await load()[key]
    }

    /// Sets (or with `nil` removes) a value; the session is saved after the handler.
    public func set(_ key: String, _ value: SessionValue?) async throws {
        try await modify { $0[key] = value }
    }

    /// The current audience's subject (the user).
    nonisolated(nonsending) public func subject() async throws -> String? {
        try await load().subject
    }

    /// Sets the subject; the session is saved after the handler.
    public func setSubject(_ subject: String?) async throws {
        try await modify { $0.subject = subject }
    }

    /// Whether the request carried a valid session.
    nonisolated(nonsending) public func exists() async throws -> Bool {
        try await load().exists
    }

    /// Saves now (a new session id), e.g. right after signing in.
    public func save() async throws {
        try await modify { try await $0.save() }
    }

    /// Destroys the session (cookies expired, records deleted) when it exists.
    public func destroy() async throws {
        try await modify { session in
            if session.exists { try await session.destroy() } else { session.close() }
        }
    }

    /// Logs out of the current audience when the session exists.
    public func logout() async throws {
        try await modify { session in
            if session.exists { try await session.logout() } else { session.close() }
        }
    }

    /// The live sessions of this session's subject (needs `storeMetadata`).
    public func sessionsOfSubject() async throws -> SessionList {
        try await load().sessionsOfSubject()
    }

    /// Revokes every other session of this session's subject; returns how many.
    @discardableResult
    public func revokeOtherSessions() async throws -> Int {
        try await modify { try await $0.revokeOtherSessions() }
    }

    // MARK: after the handler

    /// Ends the session's part in the request and returns the `Set-Cookie` values to send:
    /// nothing when the session was never opened; a save when its data, subject, audience or
    /// remember choice changed since it was opened or saved; otherwise, for an open session,
    /// ``Session/refresh()`` (a touch when the idling offset is older than the touch
    /// threshold, a renewal when 3/4 of the rolling timeout is spent).
    ///
    /// Calling it again returns an empty list.
    nonisolated(nonsending) public func finish() async throws -> [String] {
        if let cookies = try finishWithoutStore() { return cookies }
        // What is left needs the store: a changed session is saved, an unchanged one is renewed
        // (its refresh is due and more than a touch).
        let pending = state.withLock { state -> (session: Session, changed: Bool)? in
            guard !state.finished, let session = state.session else { return nil }
            state.finished = true
            return (session, Fingerprint(session) != state.baseline)
        }
        guard let pending else { return [] }
        var session = pending.session
        if pending.changed {
            try await session.save()
        } else {
            try await session.refresh()
        }
        let final = session
        state.withLock { $0.session = final }
        return session.setCookieHeaders
    }

    /// ``finish()`` when it needs no store call, without suspending: the session was never
    /// opened, or it was closed, or it is unchanged and its refresh is at most a touch (a new
    /// cookie, no store call). Returns the `Set-Cookie` values then, as ``finish()`` does, and
    /// `nil`, changing nothing, when finishing must save or renew the session; call
    /// ``finish()`` then.
    ///
    /// For adapters whose middleware runs on the event loop (Vapor's `Middleware`): a request
    /// that does not change its session needs no task to finish it.
    public func finishWithoutStore() throws -> [String]? {
        try state.withLock { state throws -> [String]? in
            guard !state.finished else { return [] }
            guard var session = state.session else {
                state.finished = true
                return []
            }
            let changed = Fingerprint(session) != state.baseline
            switch session.state {
            case .closed:
                break
            case .new:
                if changed, !session.data.isEmpty || session.subject != nil || session.audiences.count > 1 { return nil }
            case .open:
                if changed { return nil }
                if session.sid == state.openedSID, try session.refreshUnlessRenewing() == nil { return nil }
            }
            state.finished = true
            state.session = session
            return session.setCookieHeaders
        }
    }
}
