import Logging
import SessionStorage

/// One request's session: its data per audience, its state, and the `Set-Cookie` header
/// values the response must carry.
///
/// Made by a ``SessionManager`` (`new`, `open`, `start`); a value type, mutated through the
/// request. The operations are those of lua-resty-session 4.x: ``save()``, ``refresh()``,
/// ``touch()``, ``logout()``, ``destroy()``, data by key, `info` data, and the sessions of
/// its subject.
public struct Session: Sendable {
    /// Where a session is in its life.
    public enum State: Sendable, Hashable {
        /// Not backed by a valid cookie (yet).
        case new
        /// Opened from a valid cookie, or saved.
        case open
        /// Destroyed, logged out or closed: no further use.
        case closed
    }

    /// What ``refresh()`` did.
    public enum RefreshAction: Sendable, Hashable {
        /// Nothing was due.
        case none
        /// The cookie was re-sent with a new idling offset (``touch()``).
        case touched
        /// The session was saved under a new id (``save()``), resetting the rolling timeout.
        case saved
    }

    /// The data of one audience: lua-resty-session's `{ data, audience, subject }` entry.
    struct AudienceData: Sendable, Hashable {
        var values: [String: SessionValue]
        var audience: String
        var subject: String?
    }

    /// What an open cookie was: its header, the key that verified it, its payload.
    struct CookieMeta: Sendable {
        var timestamp: Int
        var header: SessionCookieHeader
        var key: SessionKey
        /// Cookie storage: the payload characters carried by the first cookie (a view of the
        /// cookie's or the written value's text: no copy).
        var initialChunk: Substring?
        /// Storage backend: the base64url payload kept in the store (a view of the stored value).
        var ciphertext: Substring?
    }

    /// The session's fields, kept in one copy-on-write box (``Box``): a `Session` is passed and
    /// returned by value through the request (the adapters keep one, handlers copy it), and a
    /// copy of the box is one retain where a copy of a dozen fields was a retain per field.
    struct Fields: Sendable {
        let settings: SessionSettings
        let request: SessionRequest
        var state: State = .new
        var openFailure: SessionOpenFailure?
        var isRestoredFromRememberCookie = false
        var setCookieHeaders: [String] = []
        var meta: CookieMeta?
        var rememberMeta: CookieMeta?
        var entries: [AudienceData]
        var index = 0
        var infoData: [String: [String: SessionValue]] = [:]
        var rememberChoice: Bool?
    }

    final class Box: @unchecked Sendable {
        // @unchecked: written only through `Session.fields`, which copies the box first unless
        // this `Session` is its only owner, so a box that can be seen from two places is never
        // written.
        var fields: Fields

        init(_ fields: Fields) { self.fields = fields }
    }

    private var box: Box

    /// The fields: read in place, and written only once the box is this session's own.
    private var fields: Fields {
        _read { yield box.fields }
        _modify {
            if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
            yield &box.fields
        }
    }

    var settings: SessionSettings { fields.settings }
    /// The request this session was made for.
    public var request: SessionRequest { _read { yield fields.request } }
    /// The session's state.
    public internal(set) var state: State {
        _read { yield fields.state }
        set { fields.state = newValue }
    }
    /// Why the request's cookie did not open, when it did not.
    public internal(set) var openFailure: SessionOpenFailure? {
        _read { yield fields.openFailure }
        set { fields.openFailure = newValue }
    }
    /// Whether the session was restored from the remember cookie.
    public internal(set) var isRestoredFromRememberCookie: Bool {
        _read { yield fields.isRestoredFromRememberCookie }
        set { fields.isRestoredFromRememberCookie = newValue }
    }
    /// The `Set-Cookie` header values to send with the response, at most one per cookie name.
    public internal(set) var setCookieHeaders: [String] {
        _read { yield fields.setCookieHeaders }
        _modify { yield &fields.setCookieHeaders }
    }

    var meta: CookieMeta? {
        _read { yield fields.meta }
        _modify { yield &fields.meta }
    }
    var rememberMeta: CookieMeta? {
        _read { yield fields.rememberMeta }
        _modify { yield &fields.rememberMeta }
    }
    var entries: [AudienceData] {
        _read { yield fields.entries }
        _modify { yield &fields.entries }
    }
    var index: Int {
        _read { yield fields.index }
        set { fields.index = newValue }
    }
    /// Storage backend only: `info` data per audience, kept in the store next to the payload.
    var infoData: [String: [String: SessionValue]] {
        _read { yield fields.infoData }
        _modify { yield &fields.infoData }
    }
    /// `setRemember(_:)`'s choice; `nil` follows the cookie and the configuration.
    var rememberChoice: Bool? {
        _read { yield fields.rememberChoice }
        set { fields.rememberChoice = newValue }
    }

    init(settings: SessionSettings, request: SessionRequest) {
        self.box = Box(Fields(
            settings: settings,
            request: request,
            entries: [AudienceData(values: [:], audience: settings.configuration.audience, subject: settings.configuration.subject)]
        ))
    }

    // MARK: data

    /// Whether the session was opened from a valid cookie (or has been saved).
    public var exists: Bool { state == .open }

    /// The data of the current audience.
    public var data: [String: SessionValue] {
        get { entries[index].values }
        set { entries[index].values = newValue }
    }

    /// A value of the current audience's data; `nil` removes it.
    ///
    /// Without a storage backend a key starting with `@` is stored as `$@key`, as
    /// lua-resty-session does to keep it apart from `info` data.
    public subscript(key: String) -> SessionValue? {
        get { entries[index].values[dataKey(key)] }
        set { entries[index].values[dataKey(key)] = newValue }
    }

    private func dataKey(_ key: String) -> String {
        settings.storage == nil && key.hasPrefix("@") ? "$" + key : key
    }

    /// The current audience.
    public var audience: String { entries[index].audience }

    /// The current audience's subject.
    public var subject: String? {
        get { entries[index].subject }
        set { entries[index].subject = newValue }
    }

    /// The audiences the session carries data for, the current one included.
    public var audiences: [String] { entries.map(\.audience) }

    /// Switches the current data to another audience (lua-resty-session `set_audience`): the
    /// current entry is renamed, replacing an existing entry of that audience.
    public mutating func setAudience(_ audience: String) {
        let current = entries[index].audience
        guard audience != current else { return }
        if let info = infoData.removeValue(forKey: current) { infoData[audience] = info }
        let previous = entries.firstIndex { $0.audience == audience }
        entries[index].audience = audience
        if let previous, previous != index {
            entries.remove(at: previous)
            if previous < index { index -= 1 }
        }
    }

    // MARK: info

    /// A value of the current audience's `info` data: with a storage backend it lives in the
    /// store next to the payload and is saved by ``saveInfo()`` without a new cookie; without
    /// one it lives in the cookie data as `@key`.
    public func info(_ key: String) -> SessionValue? {
        if settings.storage == nil { return entries[index].values["@" + key] }
        return infoData[audience]?[key]
    }

    /// Sets (or with `nil` removes) a value of the current audience's `info` data.
    public mutating func setInfo(_ key: String, _ value: SessionValue?) {
        if settings.storage == nil {
            entries[index].values["@" + key] = value
            return
        }
        infoData[audience, default: [:]][key] = value
        if infoData[audience]?.isEmpty == true { infoData[audience] = nil }
    }

    /// Stores the `info` data of an open session without issuing a new cookie (a storage
    /// backend only; without one this is ``save()``).
    public mutating func saveInfo() async throws {
        try requireState(.open, "save info of")
        guard settings.storage != nil else {
            try await save()
            return
        }
        guard let info = encodedInfo() else { return }
        try await writeInfo(info, remember: false)
        if effectiveRemember {
            if rememberMeta == nil {
                if try await openCookie(remember: true, metaOnly: true) != nil {
                    try await write(remember: true, newState: nil)
                }
            }
            try await writeInfo(info, remember: true)
        }
    }

    // MARK: remember

    /// Whether the session is persistent: the configuration, unless the cookie or
    /// ``setRemember(_:)`` says to forget it.
    public var remember: Bool { effectiveRemember }

    /// Turns the persistent session on or off (the "remember me" box). Off is written into the
    /// cookie (FLAG_FORGET) and holds for the session's life; on clears it.
    public mutating func setRemember(_ value: Bool) {
        rememberChoice = value
    }

    var effectiveRemember: Bool {
        if let rememberChoice { return rememberChoice }
        if meta?.header.flags.contains(.forget) == true { return false }
        return settings.configuration.remember
    }

    var writesForgetFlag: Bool {
        if let rememberChoice { return !rememberChoice }
        return meta?.header.flags.contains(.forget) == true
    }

    // MARK: properties

    /// The session id: base64url of the 32 random bytes (43 characters), once opened or saved.
    public var id: String? { meta.map { $0.header.sid.withUnsafeBytes { Base64URL.encode($0) } } }

    /// The session id's 32 bytes (``id`` without the base64url encoding).
    var sid: SessionID? { meta?.header.sid }

    /// The storage key of the session (its id, or the id's hash with `hashStorageKey`).
    public var storageKey: String? { meta.map { settings.storageKey(sid: $0.header.sid) } }

    /// The cookie's creation time (Unix seconds).
    public var creationTime: Int? { meta?.header.creationTime }

    /// Seconds left of the idling timeout (at the time the cookie was read or written).
    public var idlingTimeoutRemaining: Int? {
        guard settings.idlingTimeout > 0, let meta else { return nil }
        let header = meta.header
        return settings.idlingTimeout - (meta.timestamp - header.creationTime - header.rollingOffset - header.idlingOffset)
    }

    /// Seconds left of the rolling timeout.
    public var rollingTimeoutRemaining: Int? {
        guard settings.rollingTimeout > 0, let meta else { return nil }
        return settings.rollingTimeout - (meta.timestamp - meta.header.creationTime - meta.header.rollingOffset)
    }

    /// Seconds left of the absolute timeout.
    public var absoluteTimeoutRemaining: Int? {
        guard settings.absoluteTimeout > 0, let meta else { return nil }
        return settings.absoluteTimeout - (meta.timestamp - meta.header.creationTime)
    }

    /// Seconds until the closest timeout.
    public var timeoutRemaining: Int? {
        [idlingTimeoutRemaining, rollingTimeoutRemaining, absoluteTimeoutRemaining].compactMap { $0 }.min()
    }

    /// A property as a header (`Session-Id: …`), `nil` when it has no value.
    public func header(_ header: SessionHeader) -> (name: String, value: String)? {
        let value: String?
        switch header {
        case .id: value = id
        case .audience: value = audience
        case .subject: value = subject
        case .timeout: value = timeoutRemaining.map(String.init)
        case .idlingTimeout: value = idlingTimeoutRemaining.map(String.init)
        case .rollingTimeout: value = rollingTimeoutRemaining.map(String.init)
        case .absoluteTimeout: value = absoluteTimeoutRemaining.map(String.init)
        }
        return value.map { (header.headerName, $0) }
    }

    /// The configured ``SessionManager/Configuration/requestHeaders`` of an open session.
    public func requestHeaders() -> [(name: String, value: String)] {
        guard state == .open else { return [] }
        return settings.configuration.requestHeaders.compactMap(header)
    }

    /// The configured ``SessionManager/Configuration/responseHeaders`` of an open session.
    public func responseHeaders() -> [(name: String, value: String)] {
        guard state == .open else { return [] }
        return settings.configuration.responseHeaders.compactMap(header)
    }

    /// The request's `Cookie` header without this session's cookies (all chunks, and the
    /// remember cookie), for a proxy that must not forward them; `nil` when nothing is left.
    public func requestCookieHeaderWithoutSessionCookies() -> String? {
        let name = settings.cookieName
        let chunks: Int
        if settings.storage == nil, let meta {
            chunks = SessionSettings.chunkCount(nameSize: name.utf8.count, dataSize: meta.header.dataSize) ?? 1
        } else {
            chunks = 1
        }
        var names: Set<Substring> = [Substring(name)]
        if chunks > 1 { for chunk in 2...chunks { names.insert(Substring(name + String(chunk))) } }
        if effectiveRemember { names.insert(Substring(settings.rememberCookieName)) }
        return request.cookieHeader(removing: { names.contains($0) })
    }

    // MARK: operations

    /// Saves the session: a new session id, a new cookie (and store record), the rolling
    /// timeout reset; with remember on, the remember cookie is renewed too.
    nonisolated(nonsending) public mutating func save() async throws {
        try requireNotClosed("save")
        try await write(remember: false, newState: .open)
        try await saveRememberCookie()
    }

    /// Renews the session when 3/4 of its rolling timeout is spent (``save()`` of the session
    /// cookie), else touches it when the idling offset is older than the touch threshold.
    @discardableResult
    nonisolated(nonsending) public mutating func refresh() async throws -> RefreshAction {
        if let action = try refreshUnlessRenewing() { return action }
        try await write(remember: false, newState: nil)
        return .saved
    }

    /// ``refresh()`` when it does not renew the session: touches it when that is due and
    /// returns what it did; returns `nil`, changing nothing, when the renewal (a save, with a
    /// store call) is due instead.
    mutating func refreshUnlessRenewing() throws -> RefreshAction? {
        try requireState(.open, "refresh")
        guard let meta, settings.rollingTimeout != 0 || settings.idlingTimeout != 0 else { return RefreshAction.none }
        let rollingElapsed = meta.timestamp - meta.header.creationTime - meta.header.rollingOffset
        if settings.rollingTimeout > 0, rollingElapsed > (settings.rollingTimeout * 3 + 3) / 4 {
            return nil
        }
        if settings.idlingTimeout > 0, rollingElapsed - meta.header.idlingOffset > settings.touchThreshold {
            try touch()
            return .touched
        }
        return RefreshAction.none
    }

    /// Re-sends the session cookie with the idling offset moved to now; the store is not
    /// contacted and the id does not change.
    public mutating func touch() throws {
        try requireState(.open, "touch")
        guard var meta else { throw SessionError(.invalidState, message: "the session has no cookie to touch") }
        let now = settings.clock.now()
        let header = meta.header
        let elapsed = now - header.creationTime - header.rollingOffset
        meta.header.idlingOffset = max(0, min(elapsed, SessionCookieHeader.maximumIdlingOffset))
        meta.header.mac = mac(meta.header, key: meta.key)
        meta.timestamp = now
        let value = meta.header.encoded + (meta.initialChunk ?? "")
        setCookie(name: settings.cookieName, value: "\(settings.cookieName)=\(value)\(settings.cookieAttributes)")
        self.meta = meta
    }

    /// Logs out of the current audience: with other audiences in the cookie the session is
    /// saved without this one (and its index entry removed), otherwise it is destroyed.
    public mutating func logout() async throws {
        try requireState(.open, "log out")
        if entries.count == 1 {
            try await destroy()
            return
        }
        let removed = entries.remove(at: index)
        infoData[removed.audience] = nil
        index = 0
        let oldKey = meta.map { settings.storageKey(sid: $0.header.sid) }
        try await write(remember: false, newState: .closed, enforceSameSubject: false)
        // The previous record still holds the logged-out audience: drop it now rather than
        // keep it readable for staleTTL, and take it out of that audience's index.
        if let storage = settings.storage, let oldKey {
            var metadata: SessionMetadata?
            if settings.configuration.storeMetadata, let subject = removed.subject, !subject.isEmpty {
                metadata = try? settings.indexMetadata(audience: removed.audience, subject: subject)
            }
            do {
                try await storage.delete(name: settings.cookieName, key: oldKey, currentTime: settings.clock.now(), metadata: metadata)
            } catch {
                throw SessionError(.storageFailed, message: "unable to remove the logged-out session record", underlying: error)
            }
        }
        try await saveRememberCookie()
    }

    /// Destroys the session: every cookie (chunks and remember cookie) is expired and the
    /// store records deleted.
    public mutating func destroy() async throws {
        try requireState(.open, "destroy")
        try await expire(remember: false)
        state = .closed
        if effectiveRemember {
            if rememberMeta == nil {
                guard try await openCookie(remember: true, metaOnly: true) == nil else { return }
            }
            try await expire(remember: true)
        }
    }

    /// Closes the session for further use without sending anything.
    public mutating func close() {
        state = .closed
    }

    /// Lists the other live sessions of this session's subject for its audience (see
    /// ``SessionManager/sessions(audience:subject:)``).
    public func sessionsOfSubject() async throws -> SessionList {
        guard let subject, !subject.isEmpty else {
            throw SessionError(.invalidState, message: "the session has no subject")
        }
        return try await SessionManager(settings: settings).sessions(audience: audience, subject: subject)
    }

    /// Revokes every other session of this session's subject for its audience, keeping this
    /// one (and its remember record).
    @discardableResult
    public mutating func revokeOtherSessions() async throws -> Int {
        guard let subject, !subject.isEmpty else {
            throw SessionError(.invalidState, message: "the session has no subject")
        }
        if effectiveRemember, rememberMeta == nil {
            _ = try await openCookie(remember: true, metaOnly: true)
        }
        var keep: Set<String> = []
        if let storageKey { keep.insert(storageKey) }
        if let rememberMeta { keep.insert(settings.storageKey(sid: rememberMeta.header.sid)) }
        return try await SessionManager(settings: settings).revokeAll(audience: audience, subject: subject, except: keep)
    }

    // MARK: internals

    func requireNotClosed(_ operation: String) throws {
        guard state != .closed else {
            throw SessionError(.invalidState, message: "unable to \(operation) a closed session")
        }
    }

    func requireState(_ expected: State, _ operation: String) throws {
        try requireNotClosed(operation)
        guard state == expected else {
            throw SessionError(.invalidState, message: "unable to \(operation) a session that does not exist")
        }
    }

    mutating func saveRememberCookie() async throws {
        guard effectiveRemember else { return }
        if rememberMeta == nil {
            _ = try await openCookie(remember: true, metaOnly: true)
        }
        do {
            try await write(remember: true, newState: nil)
        } catch {
            // As lua-resty-session: the session cookie is saved; a failed remember cookie is
            // only logged.
            settings.logger.warning("unable to save the remember cookie", metadata: ["error": "\(error)"])
        }
    }

    /// Replaces or adds the `Set-Cookie` value of `name`.
    mutating func setCookie(name: String, value: String) {
        let prefix = name + "="
        if let existing = setCookieHeaders.firstIndex(where: { $0.hasPrefix(prefix) }) {
            setCookieHeaders[existing] = value
        } else {
            setCookieHeaders.append(value)
        }
    }

    /// The MAC input: header bytes 0..<66, with `#` sha256(bound values) appended when the
    /// header's bind flags select request facts that are present.
    func withMACMessage<Result>(_ header: SessionCookieHeader, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        header.withUnsafeBytes { raw in
            let input = UnsafeRawBufferPointer(rebasing: raw[0..<SessionCookieHeader.macOffset])
            let flags = header.flags
            guard !flags.isDisjoint(with: .bindings) else { return body(input) }
            var values: [String] = []
            if flags.contains(.bindIP), let value = request.remoteAddress, !value.isEmpty { values.append(value) }
            if flags.contains(.bindScheme), let value = request.scheme, !value.isEmpty { values.append(value) }
            if flags.contains(.bindUserAgent), let value = request.userAgent, !value.isEmpty { values.append(value) }
            guard !values.isEmpty else { return body(input) }
            var message = Array(input)
            message.append(UInt8(ascii: "#"))
            message.append(contentsOf: SessionCrypto.sha256(values.joined(separator: "|").utf8))
            return message.withUnsafeBytes(body)
        }
    }

    /// The header MAC of `header` (its MAC input, and the bound request facts) with `key`.
    func mac(_ header: SessionCookieHeader, key: SessionKey) -> HeaderBytes16 {
        withMACMessage(header) { SessionCrypto.mac(key, sid: header.sid, message: $0) }
    }

    func encodedInfo() -> String? {
        guard !infoData.isEmpty else { return nil }
        let json = SessionJSON.encode(.object(infoData.mapValues { .object($0) }))
        return Base64URL.encode(json)
    }

    func storeMetadata() -> SessionMetadata? {
        guard settings.configuration.storeMetadata else { return nil }
        var audiences: [String] = []
        var subjects: [String] = []
        for entry in entries {
            guard let subject = entry.subject, !subject.isEmpty, !entry.audience.isEmpty else { continue }
            // Every audience's subject is hashed alike (lua-resty-session dropped the hash when
            // a cookie had several audiences).
            audiences.append(settings.indexAudience(entry.audience))
            subjects.append(settings.indexSubject(subject))
        }
        guard !audiences.isEmpty else { return nil }
        return try? SessionMetadata(audiences: audiences, subjects: subjects)
    }

    private mutating func writeInfo(_ info: String, remember: Bool) async throws {
        guard let storage = settings.storage,
              let meta = remember ? rememberMeta : meta,
              let ciphertext = meta.ciphertext
        else { return }
        let now = settings.clock.now()
        let value = Self.storedValue(ciphertext: ciphertext, info: info)
        let ttl = settings.storeTTL(
            remember: remember,
            currentTime: now,
            creationTime: meta.header.creationTime,
            rollingOffset: meta.header.rollingOffset
        )
        do {
            try await storage.set(
                name: remember ? settings.rememberCookieName : settings.cookieName,
                key: settings.storageKey(sid: meta.header.sid),
                value: value,
                ttl: ttl,
                currentTime: now,
                staleTTL: settings.staleTTL,
                remember: remember
            )
        } catch {
            throw SessionError(.storageFailed, message: "unable to store session info", underlying: error)
        }
    }

    /// Expires a cookie (all its chunks) and deletes its store record.
    private mutating func expire(remember: Bool) async throws {
        let name = remember ? settings.rememberCookieName : settings.cookieName
        let meta = remember ? rememberMeta : self.meta
        var chunks = 1
        if settings.storage == nil, let meta {
            chunks = SessionSettings.chunkCount(nameSize: name.utf8.count, dataSize: meta.header.dataSize) ?? 1
        }
        if let storage = settings.storage, let meta {
            do {
                try await storage.delete(
                    name: name,
                    key: settings.storageKey(sid: meta.header.sid),
                    currentTime: settings.clock.now(),
                    metadata: storeMetadata()
                )
            } catch {
                throw SessionError(.storageFailed, message: "unable to destroy the session", underlying: error)
            }
        }
        setCookie(name: name, value: "\(name)=\(settings.cookieAttributes)\(Self.expireAttributes)")
        if chunks > 1 {
            for chunk in 2...chunks {
                let chunkName = name + String(chunk)
                setCookie(name: chunkName, value: "\(chunkName)=\(settings.cookieAttributes)\(Self.expireAttributes)")
            }
        }
    }

    static let expireAttributes = "; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"
}

extension SessionManager {
    init(settings: SessionSettings) {
        self.settings = settings
    }
}
