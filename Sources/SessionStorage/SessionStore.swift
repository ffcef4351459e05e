/// The storage contract every backend of this project fulfils.
///
/// It is the contract of lua-resty-session 4.x's storage modules (`set`, `get`, `delete`,
/// `read_metadata`), with the original's bugs fixed; see `shared/spec/STORAGE.md`. Data
/// layouts are byte-compatible with lua-resty-session, so a Swift service and an OpenResty or
/// Kong gateway can share one store.
///
/// All times are Unix seconds. `name` is the cookie name (e.g. `session`), `key` the session
/// id (43 characters of base64url in the session core, or a hash of it). Values are opaque
/// strings stored byte-exact.
///
/// Backends validate their input with ``SessionSetRequest/validate()`` and the other
/// `SessionStoreValidation` helpers, so every backend rejects the same bad input with the same
/// ``SessionStoreError/Code``.
public protocol SessionStore: Sendable {
    /// Stores a session record; see ``SessionSetRequest`` for the meaning of every field.
    nonisolated(nonsending) func set(_ request: SessionSetRequest) async throws

    /// Returns the value stored under `key`, or `nil` when it is absent or expired at `currentTime`.
    nonisolated(nonsending) func get(name: String, key: String, currentTime: Int) async throws -> String?

    /// Removes the record `key`, and drops `key` from the index of every (audience, subject)
    /// pair in `metadata`.
    nonisolated(nonsending) func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws

    /// Every live session of `subject` for `audience`: session key → expiry (Unix seconds).
    ///
    /// Entries that expired at or before `currentTime` are left out. An empty dictionary means
    /// "no sessions"; a failure to reach the store is an error, never an empty result.
    nonisolated(nonsending) func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int]
}

/// What ``SessionStore/set(_:)`` stores.
public struct SessionSetRequest: Sendable, Hashable {
    /// The cookie name, e.g. `session` or `remember`.
    public var name: String
    /// The session id under which `value` is stored.
    public var key: String
    /// The opaque value, stored byte-exact.
    public var value: String
    /// Seconds from `currentTime` until the record expires; must be positive.
    public var ttl: Int
    /// Now, in Unix seconds.
    public var currentTime: Int
    /// The id the session had before it was renewed, if it was.
    ///
    /// The old record stays readable for `staleTTL` more seconds only (never lengthened: an old
    /// record that expires sooner keeps its expiry), so concurrent requests that still carry
    /// the old cookie succeed; with `remember` it is removed at once (see ``oldKeyPolicy``).
    public var oldKey: String?
    /// Seconds the old record stays readable after a rotation; must not be negative.
    public var staleTTL: Int
    /// The (audience, subject) pairs whose index lists this session.
    public var metadata: SessionMetadata?
    /// Whether the record belongs to a persistent ("remember me") session.
    public var remember: Bool

    /// Creates a request. Arguments are checked by ``validate()``, which every backend calls.
    @inlinable
    public init(
        name: String,
        key: String,
        value: String,
        ttl: Int,
        currentTime: Int,
        oldKey: String? = nil,
        staleTTL: Int = 10,
        metadata: SessionMetadata? = nil,
        remember: Bool = false
    ) {
        self.name = name
        self.key = key
        self.value = value
        self.ttl = ttl
        self.currentTime = currentTime
        self.oldKey = oldKey
        self.staleTTL = staleTTL
        self.metadata = metadata
        self.remember = remember
    }

    /// The expiry of the new record, `currentTime + ttl`.
    public var expiry: Int { currentTime + ttl }

    /// Throws ``SessionStoreError/Code/invalidArgument`` for an empty name or key, a
    /// non-positive TTL, a negative stale TTL, an old key equal to the new key, or a time before 1970.
    public func validate() throws {
        try SessionStoreValidation.name(name)
        try SessionStoreValidation.key(key)
        try SessionStoreValidation.time(currentTime)
        guard ttl > 0 else {
            throw SessionStoreError(.invalidArgument, message: "ttl must be positive (got \(ttl))")
        }
        guard ttl <= SessionStoreValidation.maximumTTL else {
            throw SessionStoreError(.invalidArgument, message: "ttl exceeds \(SessionStoreValidation.maximumTTL) seconds")
        }
        guard staleTTL >= 0 else {
            throw SessionStoreError(.invalidArgument, message: "staleTTL must not be negative (got \(staleTTL))")
        }
        if let oldKey {
            try SessionStoreValidation.key(oldKey)
            guard oldKey != key else {
                throw SessionStoreError(.invalidArgument, message: "oldKey must differ from key")
            }
        }
    }

    /// What a backend does with the old record of a rotation, given the store's policy.
    public func oldKeyPolicy(_ policy: RememberRotationPolicy) -> OldRecordAction {
        guard oldKey != nil else { return .none }
        if remember && policy == .removeAtOnce { return .remove }
        return .keepStale(until: currentTime + staleTTL)
    }
}

/// What happens to the old record when a persistent (`remember`) session rotates.
public enum RememberRotationPolicy: Sendable, Hashable {
    /// The behaviour the seed documents describe: the old record of a `remember` session is
    /// removed at once instead of being kept for `staleTTL`.
    case removeAtOnce
    /// lua-resty-session ≥ 4.1.5: the old record is always kept stale, `remember` or not.
    case keepStale
}

/// The action a backend takes on the old record of a rotation.
public enum OldRecordAction: Sendable, Hashable {
    /// No rotation.
    case none
    /// Delete the old record now.
    case remove
    /// Let the old record expire at `until` (Unix seconds) unless it expires sooner already.
    case keepStale(until: Int)
}

extension SessionStore {
    /// Stores a session record (the seeds' `set(name, key, value, ttl, current_time, old_key,
    /// stale_ttl, metadata, remember)`).
    ///
    /// Inlinable: the request is built in the caller, so a call through `any SessionStore` is
    /// one async call (the store's ``set(_:)``), not two.
    @inlinable @inline(__always)
    nonisolated(nonsending) public func set(
        name: String,
        key: String,
        value: String,
        ttl: Int,
        currentTime: Int,
        oldKey: String? = nil,
        staleTTL: Int = 10,
        metadata: SessionMetadata? = nil,
        remember: Bool = false
    ) async throws {
        try await self.set(
            SessionSetRequest(
                name: name, key: key, value: value, ttl: ttl, currentTime: currentTime,
                oldKey: oldKey, staleTTL: staleTTL, metadata: metadata, remember: remember
            )
        )
    }

    /// Removes the record `key` without touching any index.
    @inlinable
    nonisolated(nonsending) public func delete(name: String, key: String, currentTime: Int) async throws {
        try await self.delete(name: name, key: key, currentTime: currentTime, metadata: nil)
    }
}

/// The input checks shared by every backend, so bad input gets the same typed error everywhere.
public enum SessionStoreValidation {
    /// The largest TTL accepted, lua-resty-session's `MAX_TTL` (400 days).
    public static let maximumTTL = 34_560_000

    /// A cookie name must be non-empty.
    public static func name(_ name: String) throws {
        guard !name.isEmpty else {
            throw SessionStoreError(.invalidArgument, message: "name must not be empty")
        }
    }

    /// A session key must be non-empty and must not contain `;` or `:`, the separators of the
    /// index encoding and of key names.
    public static func key(_ key: String) throws {
        guard !key.isEmpty else {
            throw SessionStoreError(.invalidArgument, message: "key must not be empty")
        }
        guard !containsSeparator(key) else {
            throw SessionStoreError(.invalidArgument, message: "key must not contain ';' or ':'")
        }
    }

    @inline(__always)
    private static func containsSeparator(_ key: String) -> Bool {
        if let found = key.utf8.withContiguousStorageIfAvailable({ containsSeparator($0) }) { return found }
        var key = key
        return key.withUTF8 { containsSeparator($0) }
    }

    /// Looks for `;` or `:` eight bytes at a time (a session id is 43 bytes: this runs on every
    /// operation of every backend).
    @inline(__always)
    private static func containsSeparator(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = bytes.count
        guard let base = bytes.baseAddress else { return false }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let semicolons = ones &* UInt64(UInt8(ascii: ";"))
        let colons = ones &* UInt64(UInt8(ascii: ":"))
        @inline(__always) func hasZeroByte(_ word: UInt64) -> Bool { ((word &- ones) & ~word & highs) != 0 }
        var index = 0
        while index + 8 <= count {
            let word = UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)
            if hasZeroByte(word ^ semicolons) || hasZeroByte(word ^ colons) { return true }
            index += 8
        }
        while index < count {
            if base[index] == UInt8(ascii: ";") || base[index] == UInt8(ascii: ":") { return true }
            index += 1
        }
        return false
    }

    /// Times are Unix seconds, never negative.
    public static func time(_ time: Int) throws {
        guard time >= 0 else {
            throw SessionStoreError(.invalidArgument, message: "currentTime must not be negative")
        }
    }

    /// Validates the arguments of `get` and `delete`.
    public static func lookup(name: String, key: String, currentTime: Int) throws {
        try Self.name(name)
        try Self.key(key)
        try Self.time(currentTime)
    }

    /// Validates the arguments of `readMetadata`.
    public static func index(name: String, audience: String, subject: String, currentTime: Int) throws {
        try Self.name(name)
        try Self.time(currentTime)
        guard !audience.isEmpty, !subject.isEmpty else {
            throw SessionStoreError(.invalidArgument, message: "audience and subject must not be empty")
        }
    }
}
