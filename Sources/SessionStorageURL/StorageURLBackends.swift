import Logging
import MemcachedSessionStorage
import MySQLSessionStorage
import PostgresSessionStorage
import RedisClusterSessionStorage
import RedisSessionStorage
import SessionStorage

/// The makers of ``SessionStorageFactory/standard``: each maps a URL's parts and query
/// parameters onto a backend's `Configuration` (parameter names are the seeds' option names).
enum StorageURLBackends {
    // MARK: shared options

    static func keyNaming(_ parameters: inout SessionStorageURLParameters) throws(SessionStorageURLError) -> (prefix: String?, suffix: String?) {
        (try parameters.nonEmptyString("prefix"), try parameters.nonEmptyString("suffix"))
    }

    static func rememberRotation(_ parameters: inout SessionStorageURLParameters) throws(SessionStorageURLError) -> RememberRotationPolicy? {
        try parameters.choice("remember_rotation", ["remove": .removeAtOnce, "keep_stale": .keepStale])
    }

    static func single(_ url: SessionStorageURL, defaultPort: Int) throws(SessionStorageURLError) -> (host: String, port: Int)? {
        guard url.hosts.count <= 1 else {
            throw SessionStorageURLError(.invalidParameter, message: "\(url.scheme):// takes one host", parameter: "host")
        }
        return url.hosts.first.map { ($0.name, $0.port ?? defaultPort) }
    }

    static func noUserInfo(_ url: SessionStorageURL) throws(SessionStorageURLError) {
        guard url.user == nil, url.password == nil else {
            throw SessionStorageURLError(.invalidParameter, message: "\(url.scheme):// takes no user or password", parameter: "userinfo")
        }
    }

    static func noPath(_ url: SessionStorageURL) throws(SessionStorageURLError) {
        guard url.path.isEmpty else {
            throw SessionStorageURLError(.invalidParameter, message: "\(url.scheme):// takes no path", parameter: "path")
        }
    }

    // MARK: memory

    /// `memory://[ZONE]?capacity=64m&sweep_interval=60s&prefix=…&suffix=…&remember_rotation=…`
    static func memory(_ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters, _ logger: Logger) throws -> ConfiguredSessionStore {
        try noUserInfo(url)
        try noPath(url)
        guard url.hosts.count <= 1, url.hosts.first?.port == nil else {
            throw SessionStorageURLError(.invalidParameter, message: "memory:// takes one zone name and no port", parameter: "host")
        }
        var configuration = MemorySessionStore.Configuration()
        (configuration.prefix, configuration.suffix) = try keyNaming(&parameters)
        if let zone = url.hosts.first?.name { configuration.zone = zone }
        if let capacity = try parameters.byteCount("capacity", in: (1 << 16)...(1 << 40)) { configuration.capacity = capacity }
        if let policy = try rememberRotation(&parameters) { configuration.rememberRotation = policy }
        let sweepInterval = try parameters.duration("sweep_interval") ?? .seconds(60)
        let store = MemorySessionStore(configuration: configuration, logger: logger)
        let sweeper = sweepInterval > .zero ? MemoryZoneSweeper(zone: store.zone, interval: sweepInterval, logger: logger) : nil
        return ConfiguredSessionStore(store: store, redactedURL: url.redacted, services: sweeper.map { [$0] } ?? [])
    }

    // MARK: Redis

    /// `redis://[user:password@]host[:port][/database]?tls=…` (also `rediss://`, TLS on).
    static func redis(_ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters, _ logger: Logger) throws -> ConfiguredSessionStore {
        var configuration = RedisSessionStore.Configuration()
        if let (host, port) = try single(url, defaultPort: 6379) {
            configuration.host = host
            configuration.port = port
        }
        configuration.database = try redisDatabase(url, &parameters)
        try redisCommon(url, &parameters, into: &configuration)
        let store = RedisSessionStore(configuration: configuration, logger: logger)
        return ConfiguredSessionStore(store: store, redactedURL: url.redacted, services: [store])
    }

    /// `redis-sentinel://[user:password@]sentinel[:port],sentinel[:port]/MASTER?database=0&sentinel_username=…`
    static func redisSentinel(_ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters, _ logger: Logger) throws -> ConfiguredSessionStore {
        guard !url.hosts.isEmpty else {
            throw SessionStorageURLError(.missingComponent, message: "redis-sentinel:// needs at least one sentinel", parameter: "host")
        }
        guard !url.path.isEmpty, !url.path.contains("/") else {
            throw SessionStorageURLError(.missingComponent, message: "redis-sentinel:// needs the master name as its path", parameter: "path")
        }
        var configuration = RedisSessionStore.Configuration()
        configuration.sentinel = .init(
            nodes: url.hosts.map { .init(host: $0.name, port: $0.port ?? 26379) },
            masterName: url.path,
            username: try parameters.nonEmptyString("sentinel_username"),
            password: try parameters.nonEmptyString("sentinel_password")
        )
        configuration.database = try parameters.int("database", in: 0...1_000_000) ?? 0
        try redisCommon(url, &parameters, into: &configuration)
        let store = RedisSessionStore(configuration: configuration, logger: logger)
        return ConfiguredSessionStore(store: store, redactedURL: url.redacted, services: [store])
    }

    private static func redisDatabase(_ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters) throws(SessionStorageURLError) -> Int {
        let fromQuery = try parameters.int("database", in: 0...1_000_000)
        guard !url.path.isEmpty else { return fromQuery ?? 0 }
        guard let database = Int(url.path), database >= 0, database <= 1_000_000 else {
            throw SessionStorageURLError(.invalidParameter, message: "the path of redis:// is a database number", parameter: "path")
        }
        guard fromQuery == nil || fromQuery == database else {
            throw SessionStorageURLError(.invalidParameter, message: "the database is given twice, differently", parameter: "database")
        }
        return database
    }

    private static func redisCommon(
        _ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters, into configuration: inout RedisSessionStore.Configuration
    ) throws(SessionStorageURLError) {
        configuration.username = url.user
        configuration.password = url.password
        (configuration.prefix, configuration.suffix) = try keyNaming(&parameters)
        if let socket = try parameters.nonEmptyString("socket") { configuration.socket = socket }
        configuration.ssl = try parameters.bool("tls") ?? (url.scheme == "rediss")
        if let verify = try parameters.bool("tls_verify") { configuration.sslVerify = verify }
        configuration.sslCAFile = try parameters.nonEmptyString("tls_ca_file")
        configuration.serverName = try parameters.nonEmptyString("tls_server_name")
        if let value = try parameters.duration("connect_timeout") { configuration.connectTimeout = value }
        if let value = try parameters.duration("send_timeout") { configuration.sendTimeout = value }
        if let value = try parameters.duration("read_timeout") { configuration.readTimeout = value }
        if let value = try parameters.duration("keepalive_timeout") { configuration.keepaliveTimeout = value }
        configuration.pool = try parameters.nonEmptyString("pool")
        if let value = try parameters.int("pool_size", in: 1...10_000) { configuration.poolSize = value }
        configuration.backlog = try parameters.int("backlog", in: 0...1_000_000)
        if let value = try parameters.int("requests_per_connection", in: 1...10_000) { configuration.requestsPerConnection = value }
        if let value = try parameters.byteCount("max_value_size", in: 1...(1 << 40)) { configuration.maximumValueSize = value }
        if let policy = try rememberRotation(&parameters) { configuration.rememberRotation = policy }
    }

    // MARK: Redis Cluster

    /// `redis-cluster://[user:password@]node[:port],node[:port]…?name=…&max_redirections=…`
    static func redisCluster(_ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters, _ logger: Logger) throws -> ConfiguredSessionStore {
        guard !url.hosts.isEmpty else {
            throw SessionStorageURLError(.missingComponent, message: "redis-cluster:// needs at least one node", parameter: "host")
        }
        try noPath(url)
        var configuration = RedisClusterSessionStore.Configuration()
        configuration.nodes = url.hosts.map { .init(ip: $0.name, port: $0.port ?? 6379) }
        configuration.username = url.user
        configuration.password = url.password
        (configuration.prefix, configuration.suffix) = try keyNaming(&parameters)
        configuration.name = try parameters.nonEmptyString("name")
        configuration.lockZone = try parameters.nonEmptyString("lock_zone")
        configuration.lockPrefix = try parameters.nonEmptyString("lock_prefix")
        if let value = try parameters.int("max_redirections", in: 0...1_000) { configuration.maxRedirections = value }
        if let value = try parameters.int("max_connection_attempts", in: 1...1_000) { configuration.maxConnectionAttempts = value }
        if let value = try parameters.duration("max_connection_timeout") { configuration.maxConnectionTimeout = value }
        configuration.ssl = try parameters.bool("tls") ?? false
        if let verify = try parameters.bool("tls_verify") { configuration.sslVerify = verify }
        configuration.sslCAFile = try parameters.nonEmptyString("tls_ca_file")
        configuration.serverName = try parameters.nonEmptyString("tls_server_name")
        if let value = try parameters.duration("connect_timeout") { configuration.connectTimeout = value }
        if let value = try parameters.duration("send_timeout") { configuration.sendTimeout = value }
        if let value = try parameters.duration("read_timeout") { configuration.readTimeout = value }
        if let value = try parameters.duration("keepalive_timeout") { configuration.keepaliveTimeout = value }
        configuration.pool = try parameters.nonEmptyString("pool")
        if let value = try parameters.int("pool_size", in: 1...10_000) { configuration.poolSize = value }
        configuration.backlog = try parameters.int("backlog", in: 0...1_000_000)
        if let value = try parameters.int("requests_per_connection", in: 1...10_000) { configuration.requestsPerConnection = value }
        if let value = try parameters.byteCount("max_value_size", in: 1...(1 << 40)) { configuration.maximumValueSize = value }
        if let policy = try rememberRotation(&parameters) { configuration.rememberRotation = policy }
        let store = RedisClusterSessionStore(configuration: configuration, logger: logger)
        return ConfiguredSessionStore(store: store, redactedURL: url.redacted, services: [store])
    }

    // MARK: memcached

    /// `memcached://host[:port][,host[:port]…]?tls=…&pool_size=…` (or `?socket=/path`).
    static func memcached(_ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters, _ logger: Logger) throws -> ConfiguredSessionStore {
        try noUserInfo(url)
        try noPath(url)
        var configuration = MemcachedSessionStore.Configuration()
        (configuration.prefix, configuration.suffix) = try keyNaming(&parameters)
        if url.hosts.count == 1 {
            configuration.host = url.hosts[0].name
            configuration.port = url.hosts[0].port ?? 11211
        } else if url.hosts.count > 1 {
            configuration.servers = url.hosts.map { .tcp(host: $0.name, port: $0.port ?? 11211) }
        }
        if let socket = try parameters.nonEmptyString("socket") {
            guard url.hosts.isEmpty else {
                throw SessionStorageURLError(.invalidParameter, message: "give either hosts or a socket", parameter: "socket")
            }
            configuration.socket = socket
        }
        configuration.ssl = try parameters.bool("tls") ?? false
        if let verify = try parameters.bool("tls_verify") { configuration.sslVerify = verify }
        configuration.caFile = try parameters.nonEmptyString("tls_ca_file")
        configuration.serverName = try parameters.nonEmptyString("tls_server_name")
        if let value = try parameters.duration("connect_timeout") { configuration.connectTimeout = value }
        if let value = try parameters.duration("send_timeout") { configuration.sendTimeout = value }
        if let value = try parameters.duration("read_timeout") { configuration.readTimeout = value }
        if let value = try parameters.duration("keepalive_timeout") { configuration.keepaliveTimeout = value }
        configuration.pool = try parameters.nonEmptyString("pool")
        if let value = try parameters.int("pool_size", in: 1...10_000) { configuration.poolSize = value }
        configuration.backlog = try parameters.int("backlog", in: 0...1_000_000)
        if let value = try parameters.int("pipeline_depth", in: 1...10_000) { configuration.pipelineDepth = value }
        if let policy = try rememberRotation(&parameters) { configuration.rememberRotation = policy }
        let store = try MemcachedSessionStore(configuration: configuration, logger: logger)
        return ConfiguredSessionStore(store: store, redactedURL: url.redacted, services: [store])
    }

    // MARK: MySQL / MariaDB

    /// `mysql://user[:password]@host[:port]/database?tls=…&migrate=true` (also `mariadb://`);
    /// `shared_connections=0` turns pipelining off.
    static func mysql(_ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters, _ logger: Logger) throws -> ConfiguredSessionStore {
        guard let user = url.user else {
            throw SessionStorageURLError(.missingComponent, message: "\(url.scheme):// needs a user", parameter: "user")
        }
        var configuration = MySQLSessionStore.Configuration(username: user, password: url.password ?? "")
        if let (host, port) = try single(url, defaultPort: 3306) {
            configuration.host = host
            configuration.port = port
        }
        if !url.path.isEmpty { configuration.database = url.path }
        if let socket = try parameters.nonEmptyString("socket") { configuration.socket = socket }
        if let value = try parameters.nonEmptyString("charset") { configuration.charset = value }
        if let value = try parameters.nonEmptyString("table") { configuration.tableName = value }
        if let value = try parameters.nonEmptyString("table_meta") { configuration.tableNameMeta = value }
        if let value = try parameters.byteCount("max_packet_size", in: 1024...(1 << 30)) { configuration.maxPacketSize = value }
        configuration.ssl = try parameters.bool("tls") ?? false
        configuration.sslVerify = try parameters.bool("tls_verify")
        configuration.sslCAFile = try parameters.nonEmptyString("tls_ca_file")
        configuration.serverName = try parameters.nonEmptyString("tls_server_name")
        if let value = try parameters.duration("connect_timeout") { configuration.connectTimeout = value }
        if let value = try parameters.duration("send_timeout") { configuration.sendTimeout = value }
        if let value = try parameters.duration("read_timeout") { configuration.readTimeout = value }
        if let value = try parameters.duration("keepalive_timeout") { configuration.keepaliveTimeout = value }
        configuration.pool = try parameters.nonEmptyString("pool")
        if let value = try parameters.int("pool_size", in: 1...10_000) { configuration.poolSize = value }
        if let value = try parameters.int("backlog", in: 0...1_000_000) { configuration.backlog = value }
        if let value = try parameters.int("shared_connections", in: 0...10_000) { configuration.sharedConnections = value }
        if let value = try parameters.int("pipeline_depth", in: 1...1024) { configuration.pipelineDepth = value }
        if let value = try parameters.choice("schema", ["ascii": MySQLSessionStore.Schema.ascii, "utf8mb4": .utf8mb4]) {
            configuration.schema = value
        }
        if let policy = try rememberRotation(&parameters) { configuration.rememberRotation = policy }
        let migrate = try parameters.bool("migrate") ?? false
        let store = try MySQLSessionStore(configuration: configuration, logger: logger)
        var prepare: (@Sendable () async throws -> Void)?
        if migrate {
            prepare = { try await store.migrate() }
        }
        return ConfiguredSessionStore(store: store, redactedURL: url.redacted, services: [store], prepare: prepare)
    }

    // MARK: PostgreSQL

    /// `postgres://user[:password]@host[:port]/database?tls=require&migrate=true` (also `postgresql://`).
    static func postgres(_ url: SessionStorageURL, _ parameters: inout SessionStorageURLParameters, _ logger: Logger) throws -> ConfiguredSessionStore {
        var configuration = PostgresSessionStore.Configuration(
            username: url.user ?? "postgres", password: url.password, database: url.path.isEmpty ? nil : url.path)
        if let (host, port) = try single(url, defaultPort: 5432) {
            configuration.host = host
            configuration.port = port
        }
        if let socket = try parameters.nonEmptyString("socket") { configuration.socket = socket }
        if let value = try parameters.nonEmptyString("application") { configuration.application = value }
        if let value = try parameters.nonEmptyString("table") { configuration.tableName = value }
        if let value = try parameters.nonEmptyString("table_meta") { configuration.tableNameMeta = value }
        let verify = try parameters.bool("tls_verify")
        let caFile = try parameters.nonEmptyString("tls_ca_file")
        let serverName = try parameters.nonEmptyString("tls_server_name")
        let mode = try parameters.choice(
            "tls", ["disable": "disable", "false": "disable", "prefer": "prefer", "require": "require", "true": "require"]) ?? "disable"
        switch mode {
        case "prefer": configuration.tls = .prefer(verify: verify ?? false, caFile: caFile, serverName: serverName)
        case "require": configuration.tls = .require(verify: verify ?? true, caFile: caFile, serverName: serverName)
        default: configuration.tls = .disable
        }
        if let value = try parameters.duration("connect_timeout") { configuration.connectTimeout = value }
        if let value = try parameters.duration("send_timeout") { configuration.sendTimeout = value }
        if let value = try parameters.duration("read_timeout") { configuration.readTimeout = value }
        if let value = try parameters.duration("keepalive_timeout") { configuration.keepaliveTimeout = value }
        configuration.pool = try parameters.nonEmptyString("pool")
        if let value = try parameters.int("pool_size", in: 1...10_000) { configuration.poolSize = value }
        configuration.backlog = try parameters.int("backlog", in: 0...1_000_000)
        if let policy = try rememberRotation(&parameters) { configuration.rememberRotation = policy }
        let migrate = try parameters.bool("migrate") ?? false
        let store = try PostgresSessionStore(configuration: configuration, logger: logger)
        var prepare: (@Sendable () async throws -> Void)?
        if migrate {
            prepare = { try await store.migrate() }
        }
        return ConfiguredSessionStore(store: store, redactedURL: url.redacted, services: [store], prepare: prepare)
    }
}
