import Logging
import MemcachedSessionStorage
import MySQLSessionStorage
import PostgresSessionStorage
import RedisClusterSessionStorage
import RedisSessionStorage
import ServiceLifecycle
import SessionStorage

/// Makes a session store from a storage URL, one maker per scheme.
///
/// ``standard`` knows `memory://`, `redis://`, `rediss://`, `redis-sentinel://`,
/// `redis-cluster://`, `memcached://`, `mysql://`, `mariadb://`, `postgres://` and
/// `postgresql://`; ``register(scheme:_:)`` adds a scheme (a backend of your own).
///
///     let store = try SessionStorageFactory.standard.makeStore(url: "redis://127.0.0.1:6379/0?prefix=sessions")
///     // run `store` in your ServiceGroup: it owns the connection pool
public struct SessionStorageFactory: Sendable {
    /// Makes a store from a parsed URL; reads its options from the parameters (unread ones are
    /// refused afterwards by the factory).
    public typealias Maker = @Sendable (_ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters, _ logger: Logger) throws -> ConfiguredSessionStore

    private var makers: [String: Maker] = [:]

    /// A factory that knows no scheme.
    public init() {}

    /// The schemes this factory knows, sorted.
    public var schemes: [String] { makers.keys.sorted() }

    /// Adds or replaces the maker of `scheme` (lower-case, without `://`).
    public mutating func register(scheme: String, _ maker: @escaping Maker) {
        makers[scheme.lowercased()] = maker
    }

    /// The factory of every backend in this package.
    public static var standard: SessionStorageFactory {
        var factory = SessionStorageFactory()
        factory.register(scheme: "memory", StorageURLBackends.memory)
        factory.register(scheme: "redis", StorageURLBackends.redis)
        factory.register(scheme: "rediss", StorageURLBackends.redis)
        factory.register(scheme: "redis-sentinel", StorageURLBackends.redisSentinel)
        factory.register(scheme: "redis-cluster", StorageURLBackends.redisCluster)
        factory.register(scheme: "memcached", StorageURLBackends.memcached)
        factory.register(scheme: "mysql", StorageURLBackends.mysql)
        factory.register(scheme: "mariadb", StorageURLBackends.mysql)
        factory.register(scheme: "postgres", StorageURLBackends.postgres)
        factory.register(scheme: "postgresql", StorageURLBackends.postgres)
        return factory
    }

    /// Parses `url` and makes its store.
    ///
    /// - Throws: ``SessionStorageURLError``: `malformedURL`, `unsupportedScheme`,
    ///   `unknownParameter`, `invalidParameter`, `missingComponent`, or `storeFailed` when the
    ///   backend refuses the configuration. The error's `description` never holds the URL or a
    ///   password.
    public func makeStore(url: String, logger: Logger = Logger(label: "session.storage")) throws(SessionStorageURLError) -> ConfiguredSessionStore {
        try makeStore(url: try SessionStorageURL(url), logger: logger)
    }

    /// Makes the store of a parsed URL.
    public func makeStore(url: SessionStorageURL, logger: Logger = Logger(label: "session.storage")) throws(SessionStorageURLError) -> ConfiguredSessionStore {
        guard let maker = makers[url.scheme] else {
            throw SessionStorageURLError(
                .unsupportedScheme, message: "no storage for this scheme; known: \(schemes.joined(separator: ", "))",
                parameter: SessionStorageURLParameters.safeName(url.scheme), redactedURL: url.redacted)
        }
        var parameters = SessionStorageURLParameters(url: url)
        do {
            let store = try maker(url, &parameters, logger)
            try parameters.finish()
            return store
        } catch var error as SessionStorageURLError {
            error.redactedURL = url.redacted
            throw error
        } catch {
            throw SessionStorageURLError(
                .storeFailed, message: "the backend refused the configuration", redactedURL: url.redacted, underlying: error)
        }
    }
}

/// A store made from a URL, with the background work it needs (a connection pool, the memory
/// zone's sweeper) as one ServiceLifecycle `Service`: add it to your `ServiceGroup`.
///
/// It forwards the four storage operations to ``store``.
public struct ConfiguredSessionStore: SessionStore, Service, CustomStringConvertible {
    /// The backend store.
    public let store: any SessionStore
    /// The URL it was made from, with the password redacted.
    public let redactedURL: String
    private let services: [any Service]
    private let preparation: (@Sendable () async throws -> Void)?

    /// Wraps a store and the services it needs.
    ///
    /// - Parameters:
    ///   - prepare: what ``prepare()`` does (e.g. creating SQL tables).
    public init(
        store: any SessionStore,
        redactedURL: String,
        services: [any Service] = [],
        prepare: (@Sendable () async throws -> Void)? = nil
    ) {
        self.store = store
        self.redactedURL = redactedURL
        self.services = services
        self.preparation = prepare
    }

    /// Runs the store's services until they end, or until graceful shutdown when it has none.
    public func run() async throws {
        guard !services.isEmpty else {
            try? await gracefulShutdown()
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for service in services {
                group.addTask { try await service.run() }
            }
            try await group.waitForAll()
        }
    }

    /// Gets the backend ready once ``run()`` runs: with `migrate=true` on `mysql://` it creates
    /// the tables (idempotent); otherwise it does nothing. Call it before serving requests.
    public func prepare() async throws {
        try await preparation?()
    }

    public var description: String { "ConfiguredSessionStore(\(redactedURL))" }

    nonisolated(nonsending) public func set(_ request: SessionSetRequest) async throws {
        try await store.set(request)
    }

    nonisolated(nonsending) public func get(name: String, key: String, currentTime: Int) async throws -> String? {
        try await store.get(name: name, key: key, currentTime: currentTime)
    }

    nonisolated(nonsending) public func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws {
        try await store.delete(name: name, key: key, currentTime: currentTime, metadata: metadata)
    }

    nonisolated(nonsending) public func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int] {
        try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: currentTime)
    }
}
