import Logging
import SessionStorage

/// The entry point of the session core: lua-resty-session 4.x's `session.new/open/start`,
/// its cookie format, key handling and options, on any ``SessionStorage/SessionStore``.
///
/// One manager serves every request; it is immutable and `Sendable`. It reads request facts
/// (``SessionRequest``) and gives a ``Session``, whose `Set-Cookie` header values
/// (``Session/setCookieHeaders``) the caller sends with the response. Time comes from the
/// injected ``SessionClock``, session ids from the injected ``SessionRandom``.
///
///     let manager = try SessionManager(configuration: .init(secret: "…"), storage: store)
///     var session = try await manager.start(SessionRequest(cookieHeader: request.headers["Cookie"]))
///     session["user"] = "alice"
///     try await session.save()
///     response.headers["Set-Cookie"] = session.setCookieHeaders
public struct SessionManager: Sendable {
    let settings: SessionSettings

    /// The configuration this manager was made from.
    public var configuration: Configuration { settings.configuration }

    /// Creates a manager.
    ///
    /// - Parameters:
    ///   - configuration: the options; in the production environment a `secret` or `ikm` is required.
    ///   - storage: where session data lives; `nil` keeps it in the cookie.
    ///   - clock: the source of Unix time for every timeout.
    ///   - random: the source of session ids.
    ///   - logger: where the core logs (never a secret, id, cookie or value).
    /// - Throws: ``SessionError/Code/missingSecret`` without a key in production,
    ///   ``SessionError/Code/invalidConfiguration`` for an option out of range.
    public init(
        configuration: Configuration,
        storage: (any SessionStore)? = nil,
        clock: SessionClock = .system,
        random: SessionRandom = .system,
        logger: Logger = Logger(label: "resty-session")
    ) throws {
        self.settings = try SessionSettings(
            configuration: configuration,
            storage: storage,
            clock: clock,
            random: random,
            logger: logger
        )
    }

    /// A new, empty session for a request (lua-resty-session's `session.new`); nothing is read.
    public func new(_ request: SessionRequest) -> Session {
        Session(settings: settings, request: request)
    }

    /// Opens the request's session (`session.open`): an open session when the cookie is valid
    /// (or a remember cookie restores it), otherwise a new one whose
    /// ``Session/openFailure`` says why.
    ///
    /// - Throws: ``SessionError/Code/storageFailed`` when the storage backend fails. A missing,
    ///   tampered, expired or revoked cookie is not an error.
    nonisolated(nonsending) public func open(_ request: SessionRequest) async throws -> Session {
        var session = Session(settings: settings, request: request)
        try await session.open()
        return session
    }

    /// Opens the request's session and refreshes it as needed (`session.start`): the cookie is
    /// renewed when 3/4 of the rolling timeout is spent, or touched when the idling offset is
    /// older than the touch threshold.
    public func start(_ request: SessionRequest) async throws -> Session {
        var session = try await open(request)
        if session.state == .open {
            try await session.refresh()
        }
        return session
    }

    /// Opens the request's session and logs it out of the configured audience
    /// (`session.logout`); the session is returned for its ``Session/setCookieHeaders``.
    public func logout(_ request: SessionRequest) async throws -> Session {
        var session = try await open(request)
        if session.state == .open {
            try await session.logout()
        }
        return session
    }

    /// Opens the request's session and destroys it (`session.destroy`).
    public func destroy(_ request: SessionRequest) async throws -> Session {
        var session = try await open(request)
        if session.state == .open {
            try await session.destroy()
        }
        return session
    }

    // MARK: sessions of a subject

    /// Every live session of `subject` for `audience` (from the store's index): storage key →
    /// expiry in Unix seconds. With ``Configuration/remember`` on, the remember records are
    /// listed too (``SessionList/remembered``).
    ///
    /// Needs a storage backend and ``Configuration/storeMetadata``.
    public func sessions(audience: String, subject: String) async throws -> SessionList {
        let store = try settings.requireIndexedStore()
        let now = settings.clock.now()
        let indexAudience = settings.indexAudience(audience)
        let indexSubject = settings.indexSubject(subject)
        do {
            let current = try await store.readMetadata(
                name: settings.cookieName, audience: indexAudience, subject: indexSubject, currentTime: now
            )
            var remembered: [String: Int] = [:]
            if settings.configuration.remember {
                remembered = try await store.readMetadata(
                    name: settings.rememberCookieName, audience: indexAudience, subject: indexSubject, currentTime: now
                )
            }
            return SessionList(sessions: current, remembered: remembered)
        } catch {
            throw SessionError(.storageFailed, message: "unable to read the sessions of a subject", underlying: error)
        }
    }

    /// Revokes one session of `subject` for `audience`: its record is deleted and it leaves the
    /// index, so its cookie opens as ``SessionOpenFailure/notInStorage``.
    ///
    /// - Parameter key: a storage key as listed by ``sessions(audience:subject:)``.
    /// - Parameter remembered: whether the key is a remember record.
    public func revoke(key: String, audience: String, subject: String, remembered: Bool = false) async throws {
        let store = try settings.requireIndexedStore()
        let metadata = try settings.indexMetadata(audience: audience, subject: subject)
        do {
            try await store.delete(
                name: remembered ? settings.rememberCookieName : settings.cookieName,
                key: key,
                currentTime: settings.clock.now(),
                metadata: metadata
            )
        } catch {
            throw SessionError(.storageFailed, message: "unable to revoke a session", underlying: error)
        }
    }

    /// Revokes every session of `subject` for `audience`, except the storage keys in `except`.
    ///
    /// - Returns: how many sessions were revoked.
    @discardableResult
    public func revokeAll(audience: String, subject: String, except: Set<String> = []) async throws -> Int {
        let list = try await sessions(audience: audience, subject: subject)
        var count = 0
        for key in list.sessions.keys.sorted() where !except.contains(key) {
            try await revoke(key: key, audience: audience, subject: subject)
            count += 1
        }
        for key in list.remembered.keys.sorted() where !except.contains(key) {
            try await revoke(key: key, audience: audience, subject: subject, remembered: true)
            count += 1
        }
        return count
    }
}

/// The live sessions of one subject and audience, by storage key, with their expiry (Unix seconds).
public struct SessionList: Sendable, Hashable {
    /// Session records (cookie name ``SessionManager/Configuration/cookieName``).
    public var sessions: [String: Int]
    /// Remember records (cookie name ``SessionManager/Configuration/rememberCookieName``).
    public var remembered: [String: Int]

    /// Creates a list.
    public init(sessions: [String: Int], remembered: [String: Int] = [:]) {
        self.sessions = sessions
        self.remembered = remembered
    }
}
