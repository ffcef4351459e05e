import _MemcachedWire
import Logging
import NIOCore
import ServiceLifecycle
import SessionStorage

/// The Memcached storage backend: lua-resty-session's `resty.session.memcached`, with the
/// original's bugs fixed (see `shared/spec/STORAGE.md`).
///
/// Layout, byte-compatible with lua-resty-session (so an OpenResty gateway and a Swift
/// service can share one memcached):
/// - keys are `[prefix:]name:key[:suffix]` and `[prefix:]name:audience:subject[:suffix]`,
///   URL-escaped like `ngx.escape_uri` (`:` becomes `%3A`);
/// - a record is the value with client flags 0 and the session's TTL (plus one second: memcached's
///   clock ticks in whole seconds, see ``serverSeconds(_:)``);
/// - an index is one string of `KEY:EXP;` and `KEY;` entries (``SessionIndexCodec``).
///
/// Fixes: index updates never lose an entry under concurrent writers (appends are atomic on
/// the server; rewrites are compare-and-swap loops that re-read and retry); an index is
/// compacted when it holds more than twice its live entries plus a slack, so it stays
/// bounded; an index expires with its latest member and is never shortened by an append;
/// the old record of a rotation is never lengthened; failed index writes are errors.
///
/// The store is a ServiceLifecycle `Service`: run it (``run()``) for as long as it is used.
public final class MemcachedSessionStore: SessionStore, Service {
    /// The storage's configuration, with the fields of lua-resty-session's memcached storage.
    public struct Configuration: Sendable {
        /// The first part of every key (`prefix`).
        public var prefix: String?
        /// The last part of every key (`suffix`).
        public var suffix: String?
        /// The server's host (`host`, default `127.0.0.1`); used when ``servers`` is empty.
        public var host: String = "127.0.0.1"
        /// The server's port (`port`, default 11211).
        public var port: Int = 11211
        /// A unix-domain socket path (`socket`); when set it replaces host and port.
        public var socket: String?
        /// Several servers, spread by consistent hashing; when not empty it replaces host,
        /// port and socket. A session's record and its index entries may live on different servers.
        public var servers: [MemcachedServerAddress] = []
        /// Connect timeout (`connect_timeout`); also the longest wait for a pooled connection.
        public var connectTimeout: Duration = .seconds(10)
        /// Send timeout (`send_timeout`).
        public var sendTimeout: Duration = .seconds(10)
        /// Read timeout (`read_timeout`).
        public var readTimeout: Duration = .seconds(10)
        /// How long an idle connection stays open (`keepalive_timeout`).
        public var keepaliveTimeout: Duration = .seconds(60)
        /// A name for the connection pool, shown in logs (`pool`). OpenResty shares pools by
        /// name across workers; here every store owns its pool.
        public var pool: String?
        /// Connections per server (`pool_size`). Requests are pipelined, so few are needed.
        public var poolSize: Int = 4
        /// Requests that may wait once every connection is full (`backlog`); past it a
        /// request fails at once with `poolExhausted`. `nil`: no limit.
        public var backlog: Int?
        /// Requests one connection carries at once (pipelining depth).
        public var pipelineDepth: Int = 64
        /// Use TLS (`ssl`, default false).
        public var ssl: Bool = false
        /// Verify the server's certificate (`ssl_verify`; default false, as in the original,
        /// where `nil` means no verification). Set it to true in production.
        public var sslVerify: Bool = false
        /// The name sent in SNI and checked against the certificate (`server_name`).
        public var serverName: String?
        /// A PEM file of CA certificates to trust instead of the system's.
        public var caFile: String?
        /// What a rotation of a `remember` session does with the old record.
        public var rememberRotation: RememberRotationPolicy = .removeAtOnce
        /// An index is compacted when it holds more than `2 × live entries + compactionSlack`
        /// entries.
        public var compactionSlack: Int = 16

        /// The defaults (127.0.0.1:11211, no prefix, no TLS).
        public init(prefix: String? = nil, suffix: String? = nil) {
            self.prefix = prefix
            self.suffix = suffix
        }

        /// The configuration of the wire client.
        public var clientConfiguration: MemcachedClient.Configuration {
            var configuration = MemcachedClient.Configuration()
            if !servers.isEmpty {
                configuration.servers = servers
            } else if let socket {
                configuration.servers = [.unixSocket(path: socket)]
            } else {
                configuration.servers = [.tcp(host: host, port: port)]
            }
            if ssl {
                configuration.tls = .require(verify: sslVerify, caFile: caFile, serverName: serverName)
            }
            configuration.connectTimeout = connectTimeout
            configuration.sendTimeout = sendTimeout
            configuration.readTimeout = readTimeout
            configuration.pool.size = poolSize
            configuration.pool.backlog = backlog
            configuration.pool.keepaliveTimeout = keepaliveTimeout
            configuration.pool.pipelineDepth = pipelineDepth
            configuration.pool.name = pool
            return configuration
        }
    }

    /// The configuration the store was made with.
    public let configuration: Configuration
    /// The wire client (shared by every operation).
    public let client: MemcachedClient
    let naming: SessionKeyNaming
    let instrumentation: SessionStoreInstrumentation
    private let ownsClient: Bool

    /// The flags of a plain read (`mg <key> v`), built once (no array per request).
    private static let returnValue: [MemcachedRequestFlag] = [.returnValue]

    /// The most read-modify-write rounds an index update tries before giving up.
    static let maximumAttempts = 64

    /// Creates a store with its own client (on NIO's shared event loops when
    /// `eventLoopGroup` is `nil`); run it with ``run()``.
    ///
    /// - Throws: ``SessionStoreError`` (`invalidArgument`, `tls`) when the configuration cannot work.
    public init(
        configuration: Configuration,
        eventLoopGroup: (any EventLoopGroup)? = nil,
        logger: Logger = Logger(label: "session.memcached")
    ) throws {
        self.configuration = configuration
        self.naming = SessionKeyNaming(prefix: configuration.prefix, suffix: configuration.suffix)
        self.instrumentation = SessionStoreInstrumentation(backend: "memcached", logger: logger)
        do {
            if let eventLoopGroup {
                self.client = try MemcachedClient(configuration: configuration.clientConfiguration, eventLoopGroup: eventLoopGroup, logger: logger)
            } else {
                self.client = try MemcachedClient(configuration: configuration.clientConfiguration, logger: logger)
            }
        } catch let error as MemcachedClientError {
            throw Self.storeError(error)
        }
        self.ownsClient = true
    }

    /// Creates a store on a client the caller runs.
    public init(client: MemcachedClient, configuration: Configuration = .init(), logger: Logger = Logger(label: "session.memcached")) {
        self.configuration = configuration
        self.naming = SessionKeyNaming(prefix: configuration.prefix, suffix: configuration.suffix)
        self.instrumentation = SessionStoreInstrumentation(backend: "memcached", logger: logger)
        self.client = client
        self.ownsClient = false
    }

    /// Runs the client's connection pools (when the store created the client) until
    /// cancelled or a graceful shutdown.
    public func run() async throws {
        if ownsClient {
            try await client.run()
        } else {
            try await gracefulShutdown()
        }
    }

    // MARK: - the four operations

    nonisolated(nonsending) public func set(_ request: SessionSetRequest) async throws {
        try await instrumentation.observe(.set) {
            try request.validate()
            let recordKey = try escapedRecordKey(name: request.name, key: request.key)
            let oldRecordKey = try request.oldKey.map { try escapedRecordKey(name: request.name, key: $0) }
            let indexKeys = try (request.metadata?.pairs ?? []).map {
                try escapedKey(naming.indexKey(name: request.name, audience: $0.audience, subject: $0.subject))
            }
            try await wire {
                try await client.set(
                    recordKey,
                    value: ByteBuffer(string: request.value),
                    expiration: Self.expiration(request.ttl, now: request.currentTime)
                )
                if let oldRecordKey {
                    try await retireOldRecord(oldRecordKey, action: request.oldKeyPolicy(configuration.rememberRotation), now: request.currentTime)
                }
                guard !indexKeys.isEmpty else { return }
                let entries =
                    SessionIndexCodec.entry(key: request.key, expiry: request.expiry)
                    + (request.oldKey.map(SessionIndexCodec.tombstone(key:)) ?? "")
                try await forEachIndex(indexKeys) { indexKey in
                    try await self.addToIndex(indexKey, entries: entries, expiry: request.expiry, now: request.currentTime)
                }
            }
        }
    }

    nonisolated(nonsending) public func get(name: String, key: String, currentTime: Int) async throws -> String? {
        try await instrumentation.observe(.get) {
            try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
            let recordKey = try escapedRecordKey(name: name, key: key)
            return try await wire {
                let meta = try await client.meta(.metaGet(key: recordKey, flags: Self.returnValue))
                switch meta.status {
                case .value: return String(buffer: meta.value ?? ByteBuffer())
                case .miss: return nil
                default: throw MemcachedClientError(.protocolError, message: "unexpected reply to mg")
                }
            }
        }
    }

    nonisolated(nonsending) public func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws {
        try await instrumentation.observe(.delete) {
            try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
            let recordKey = try escapedRecordKey(name: name, key: key)
            let indexKeys = try (metadata?.pairs ?? []).map {
                try escapedKey(naming.indexKey(name: name, audience: $0.audience, subject: $0.subject))
            }
            try await wire {
                try await client.delete(recordKey)
                try await forEachIndex(indexKeys) { indexKey in
                    try await self.removeFromIndex(indexKey, key: key, now: currentTime)
                }
            }
        }
    }

    nonisolated(nonsending) public func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int] {
        try await instrumentation.observe(.readMetadata) {
            try SessionStoreValidation.index(name: name, audience: audience, subject: subject, currentTime: currentTime)
            let indexKey = try escapedKey(naming.indexKey(name: name, audience: audience, subject: subject))
            return try await wire {
                let meta = try await client.meta(.metaGet(key: indexKey, flags: Self.returnValue))
                switch meta.status {
                case .value: return SessionIndexCodec.live(String(buffer: meta.value ?? ByteBuffer()), currentTime: currentTime)
                case .miss: return [:]
                default: throw MemcachedClientError(.protocolError, message: "unexpected reply to mg")
                }
            }
        }
    }

    // MARK: - expiry

    /// The relative TTL sent for `seconds`: memcached counts time in whole seconds on a
    /// clock that ticks once a second, so an item stored with TTL n lives between n − 1 and n
    /// seconds. One second is added so a record is never gone before its TTL.
    static func serverSeconds(_ seconds: Int) -> Int {
        seconds + 1
    }

    /// The expiration of something that must live `seconds` from `now` (an absolute Unix
    /// time past memcached's 30-day limit for relative TTLs).
    static func expiration(_ seconds: Int, now: Int) -> MemcachedExpiration {
        .after(serverSeconds(seconds), now: now)
    }

    // MARK: - keys

    /// The memcached key of a logical key name: escaped, at most 250 bytes.
    public static func memcachedKey(_ key: String) throws -> String {
        try checkedLength(MemcachedKeyEscaping.escape(key))
    }

    /// `escaped`, or the typed error when it is over memcached's key limit.
    private static func checkedLength(_ escaped: String) throws -> String {
        guard escaped.utf8.count <= MemcachedKey.maximumLength else {
            throw SessionStoreError(
                .keyTooLong,
                message: "the escaped key is \(escaped.utf8.count) bytes, over memcached's limit of \(MemcachedKey.maximumLength)",
                backend: "memcached"
            )
        }
        return escaped
    }

    private func escapedKey(_ key: String) throws -> String {
        try Self.memcachedKey(key)
    }

    /// `escapedKey(naming.recordKey(name:key:))` in one pass.
    func escapedRecordKey(name: String, key: String) throws -> String {
        try Self.checkedLength(MemcachedKeyEscaping.escapeJoined(naming.prefix, name, key, naming.suffix))
    }

    // MARK: - rotation

    private func retireOldRecord(_ key: String, action: OldRecordAction, now: Int) async throws {
        switch action {
        case .none:
            return
        case .remove:
            try await client.delete(key)
        case .keepStale(let until):
            let stale = until - now
            guard stale > 0 else {
                // A stale TTL of 0 means "gone now"; exptime 0 would mean "never expires".
                try await client.delete(key)
                return
            }
            // Never lengthen: touch only when the old record would outlive the stale TTL.
            switch try await client.remainingTTL(key) {
            case nil:
                return
            case .never:
                try await client.touch(key, expiration: Self.expiration(stale, now: now))
            case .seconds(let remaining):
                if remaining > Self.serverSeconds(stale) {
                    try await client.touch(key, expiration: Self.expiration(stale, now: now))
                }
            }
        }
    }

    // MARK: - index

    private func forEachIndex(_ keys: [String], _ body: @escaping @Sendable (String) async throws -> Void) async throws {
        if keys.count == 1 {
            try await body(keys[0])
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in keys {
                group.addTask { try await body(key) }
            }
            try await group.waitForAll()
        }
    }

    /// Whether an index of `entries` entries, `live` of them live, is due for compaction.
    func needsCompaction(entries: Int, live: Int) -> Bool {
        entries > 2 * live + configuration.compactionSlack
    }

    /// Appends `entries` to the index (creating it when absent), compacting it when due, and
    /// makes it live at least until `expiry`. No concurrent writer's entry is ever lost:
    /// appends are atomic on the server and every rewrite is a compare-and-swap.
    private func addToIndex(_ indexKey: String, entries: String, expiry: Int, now: Int) async throws {
        let ttl = max(1, expiry - now)
        for attempt in 0..<Self.maximumAttempts {
            try await backoff(attempt)
            guard let item = try await client.get(indexKey) else {
                if try await client.add(indexKey, value: ByteBuffer(string: entries), expiration: Self.expiration(ttl, now: now)) {
                    return
                }
                continue  // created meanwhile: read it
            }
            let current = item.string
            let combined = SessionIndexCodec.entries(current + entries)
            let live = SessionIndexCodec.live(entries: combined, currentTime: now)
            if needsCompaction(entries: combined.count, live: live.count) {
                let (compacted, latest) = SessionIndexCodec.compact(live)
                let result = try await client.compareAndSwap(
                    indexKey, value: ByteBuffer(string: compacted), cas: item.cas, expiration: Self.expiration(max(1, latest - now), now: now))
                if result == .stored { return }
                continue
            }
            guard try await client.append(indexKey, value: ByteBuffer(string: entries)) else {
                continue  // vanished meanwhile: start over
            }
            if let remaining = item.ttl, remaining < Self.serverSeconds(ttl) {
                if try await extendIndex(indexKey, ttl: ttl, now: now) { return }
                continue  // the index vanished after our append: write the entries again
            }
            return
        }
        throw SessionStoreError(.unavailable, message: "the index kept changing under concurrent writers", backend: "memcached")
    }

    /// Makes the index live for at least `ttl` more seconds, never shortening it. Returns
    /// false when the index is gone.
    private func extendIndex(_ indexKey: String, ttl: Int, now: Int) async throws -> Bool {
        for attempt in 0..<Self.maximumAttempts {
            try await backoff(attempt)
            guard let item = try await client.get(indexKey) else { return false }
            guard let remaining = item.ttl, remaining < Self.serverSeconds(ttl) else { return true }
            switch try await client.compareAndSwap(indexKey, value: item.value, cas: item.cas, expiration: Self.expiration(ttl, now: now)) {
            case .stored: return true
            case .exists: continue
            case .notFound: return false
            }
        }
        throw SessionStoreError(.unavailable, message: "the index kept changing under concurrent writers", backend: "memcached")
    }

    /// Drops `key` from the index: the index is rewritten with its live entries only (or
    /// deleted when none is left), by compare-and-swap.
    private func removeFromIndex(_ indexKey: String, key: String, now: Int) async throws {
        for attempt in 0..<Self.maximumAttempts {
            try await backoff(attempt)
            guard let item = try await client.get(indexKey) else { return }
            let live = SessionIndexCodec.live(item.string + SessionIndexCodec.tombstone(key: key), currentTime: now)
            let result: MemcachedCASResult
            if live.isEmpty {
                result = try await client.compareAndDelete(indexKey, cas: item.cas)
            } else {
                let (compacted, latest) = SessionIndexCodec.compact(live)
                result = try await client.compareAndSwap(
                    indexKey, value: ByteBuffer(string: compacted), cas: item.cas, expiration: Self.expiration(max(1, latest - now), now: now))
            }
            switch result {
            case .stored, .notFound: return
            case .exists: continue
            }
        }
        throw SessionStoreError(.unavailable, message: "the index kept changing under concurrent writers", backend: "memcached")
    }

    private func backoff(_ attempt: Int) async throws {
        guard attempt >= 3 else { return }
        let milliseconds = Int.random(in: 1...min(50, attempt * 2))
        try await Task.sleep(for: .milliseconds(milliseconds))
    }

    // MARK: - errors

    private nonisolated(nonsending) func wire<T>(_ body: nonisolated(nonsending) () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as MemcachedClientError {
            throw Self.storeError(error)
        }
    }

    static func storeError(_ error: MemcachedClientError) -> SessionStoreError {
        let code: SessionStoreError.Code
        switch error.code {
        case .invalidKey, .invalidConfiguration: code = .invalidArgument
        case .keyTooLong: code = .keyTooLong
        case .valueTooLarge: code = .valueTooLarge
        case .serverError, .clientError, .unknownCommand: code = .serverError
        case .protocolError: code = .protocolError
        case .connectionFailed: code = .connectionFailed
        case .connectionClosed: code = .connectionClosed
        case .timeout: code = .timeout
        case .tls: code = .tls
        case .poolExhausted: code = .poolExhausted
        case .shutdown: code = .shutdown
        default: code = .serverError
        }
        return SessionStoreError(code, message: error.message, backend: "memcached", serverMessage: error.serverMessage, underlying: error)
    }
}
