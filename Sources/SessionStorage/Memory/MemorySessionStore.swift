import Logging
import Metrics

/// The in-process session store (lua-resty-session's `shm` backend).
///
/// Records and per-user indexes live in a ``MemoryZone`` shared by every store in the process
/// that names the same zone. The index layout is the original's: one string per (audience,
/// subject) of `KEY:EXP;` entries and `KEY;` tombstones (``SessionIndexCodec``), appended
/// atomically, so concurrent set / rotate / delete of one subject lose no entry.
///
/// Expiry follows the `currentTime` the caller passes: a record set at `t` with `ttl` is
/// returned while `currentTime < t + ttl`.
public struct MemorySessionStore: SessionStore {
    /// The memory store's configuration (the seed's `prefix`, `suffix`, `zone`).
    public struct Configuration: Sendable, Hashable {
        /// Prefix of every key name.
        public var prefix: String?
        /// Suffix of every key name.
        public var suffix: String?
        /// The name of the shared zone (default `sessions`).
        public var zone: String
        /// The zone's capacity in bytes when this store creates it (default 64 MiB).
        public var capacity: Int
        /// What a rotation of a `remember` session does with the old record.
        public var rememberRotation: RememberRotationPolicy

        /// Creates a configuration.
        public init(
            prefix: String? = nil,
            suffix: String? = nil,
            zone: String = "sessions",
            capacity: Int = 64 << 20,
            rememberRotation: RememberRotationPolicy = .removeAtOnce
        ) {
            self.prefix = prefix
            self.suffix = suffix
            self.zone = zone
            self.capacity = capacity
            self.rememberRotation = rememberRotation
        }
    }

    /// The configuration.
    public let configuration: Configuration
    /// The zone holding the records.
    public let zone: MemoryZone
    /// The key names.
    public let naming: SessionKeyNaming
    private let instrumentation: SessionStoreInstrumentation

    /// Creates a store on the process-wide zone named in `configuration`.
    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "session.memory")) {
        self.init(
            configuration: configuration,
            zone: MemoryZone.named(configuration.zone, capacity: configuration.capacity),
            logger: logger
        )
    }

    /// Creates a store on a given zone.
    /// - Parameter metricsFactory: where metrics go; the process-wide `MetricsSystem` by default.
    public init(
        configuration: Configuration = .init(),
        zone: MemoryZone,
        logger: Logger = Logger(label: "session.memory"),
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.configuration = configuration
        self.zone = zone
        self.naming = SessionKeyNaming(prefix: configuration.prefix, suffix: configuration.suffix)
        self.instrumentation = SessionStoreInstrumentation(backend: "memory", logger: logger, metricsFactory: metricsFactory)
    }

    // Each operation runs in a synchronous function of its own: a closure capturing an async
    // function's parameters makes the async frame copy them (for a set, the whole request).

    nonisolated(nonsending) public func set(_ request: SessionSetRequest) async throws {
        try setNow(request)
    }

    private func setNow(_ request: SessionSetRequest) throws {
        try instrumentation.observeSync(.set) {
            try request.validate()
            let now = request.currentTime
            try naming.withRecordKey(name: request.name, key: request.key) { key in
                try zone.set(ZoneKey(bytes: key), value: request.value, expiresAt: request.expiry, now: now)
            }
            if let oldKey = request.oldKey {
                naming.withRecordKey(name: request.name, key: oldKey) { oldRecord in
                    switch request.oldKeyPolicy(configuration.rememberRotation) {
                    case .remove: zone.delete(ZoneKey(bytes: oldRecord))
                    case .keepStale(let until): zone.expireNoLater(ZoneKey(bytes: oldRecord), expiresAt: until, now: now)
                    case .none: break
                    }
                }
            }
            guard let metadata = request.metadata else { return }
            var entries = SessionIndexCodec.entry(key: request.key, expiry: request.expiry)
            if let oldKey = request.oldKey { entries += SessionIndexCodec.tombstone(key: oldKey) }
            for (audience, subject) in metadata.pairs {
                try naming.withIndexKey(name: request.name, audience: audience, subject: subject) { index in
                    try zone.appendIndex(ZoneKey(bytes: index), entries: entries, latestExpiry: request.expiry, now: now)
                }
            }
        }
    }

    nonisolated(nonsending) public func get(name: String, key: String, currentTime: Int) async throws -> String? {
        try getNow(name: name, key: key, currentTime: currentTime)
    }

    private func getNow(name: String, key: String, currentTime: Int) throws -> String? {
        try instrumentation.observeSync(.get) {
            try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
            return naming.withRecordKey(name: name, key: key) { zone.get(ZoneKey(bytes: $0), now: currentTime) }
        }
    }

    nonisolated(nonsending) public func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws {
        try deleteNow(name: name, key: key, currentTime: currentTime, metadata: metadata)
    }

    private func deleteNow(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) throws {
        try instrumentation.observeSync(.delete) {
            try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
            naming.withRecordKey(name: name, key: key) { _ = zone.delete(ZoneKey(bytes: $0)) }
            guard let metadata else { return }
            let tombstone = SessionIndexCodec.tombstone(key: key)
            for (audience, subject) in metadata.pairs {
                try naming.withIndexKey(name: name, audience: audience, subject: subject) { index in
                    try zone.appendIndex(ZoneKey(bytes: index), entries: tombstone, latestExpiry: currentTime, now: currentTime)
                }
            }
        }
    }

    nonisolated(nonsending) public func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int] {
        try readMetadataNow(name: name, audience: audience, subject: subject, currentTime: currentTime)
    }

    private func readMetadataNow(name: String, audience: String, subject: String, currentTime: Int) throws -> [String: Int] {
        try instrumentation.observeSync(.readMetadata) {
            try SessionStoreValidation.index(name: name, audience: audience, subject: subject, currentTime: currentTime)
            let index = naming.withIndexKey(name: name, audience: audience, subject: subject) {
                zone.get(ZoneKey(bytes: $0), now: currentTime)
            }
            guard let index else { return [:] }
            return SessionIndexCodec.live(index, currentTime: currentTime)
        }
    }
}
