#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import SessionStorage

/// The PostgreSQL backend of the storage contract, byte-compatible with lua-resty-session's
/// `resty.session.postgres` tables.
///
/// Built on postgres-nio's `PostgresConnection` and its connection pool module. Every value is a
/// bound parameter of a statement prepared once per connection. Times are stored as instants (`to_timestamp(epoch)` into a
/// `timestamptz` column), so the answer is the same whatever the server's `TimeZone`. Each
/// `set` is one statement (data-modifying CTEs), hence atomic: the upsert, the rotation of the
/// old record and every metadata row change together or not at all.
///
/// The store is a ServiceLifecycle `Service`: ``run()`` must be running (e.g. in a
/// `ServiceGroup`) for operations to get connections. Create the tables with ``migrate()`` or
/// from ``schemaSQL``. Expired rows are not removed inside requests: run a
/// ``PostgresSessionSweeper`` or call ``deleteExpired(currentTime:batchSize:)``.
public final class PostgresSessionStore: SessionStore, Service {
    /// The metadata keys of this backend's log lines.
    public enum LoggingKeys {
        /// The configured pool name (``Configuration/pool``).
        public static let pool = "session_store_pool"
        /// postgres-nio's connection id.
        public static let connectionID = "postgres_connection_id"
    }

    static let backendName = "postgres"

    /// The configuration the store was created with.
    public let configuration: Configuration
    private let statements: SQLStatements
    private let pool: PostgresStoreClient
    private let instrumentation: SessionStoreInstrumentation
    private let logger: Logger

    /// Creates a store. Nothing connects until ``run()`` runs and an operation needs a connection.
    ///
    /// - Throws: `invalidArgument` for an invalid table name, pool size or timeout; `tls` when
    ///   the CA file cannot be read or the TLS settings are unusable.
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "swift-resty-session.postgres"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        guard configuration.poolSize > 0 else {
            throw PostgresErrorMapping.error(.invalidArgument, "poolSize must be positive")
        }
        for timeout in [configuration.connectTimeout, configuration.sendTimeout, configuration.readTimeout, configuration.keepaliveTimeout]
        where timeout <= .zero {
            throw PostgresErrorMapping.error(.invalidArgument, "timeouts must be positive")
        }
        self.configuration = configuration
        self.statements = SQLStatements(
            sessions: try SQLTableName(configuration.tableName),
            meta: try SQLTableName(configuration.tableNameMeta)
        )
        var logger = logger
        if let name = configuration.pool {
            logger[metadataKey: LoggingKeys.pool] = .string(name)
        }
        self.logger = logger
        self.instrumentation = SessionStoreInstrumentation(backend: Self.backendName, logger: logger)
        let settings = try Self.tlsSettings(configuration)
        self.pool = PostgresStoreClient(
            connection: try Self.connectionConfiguration(configuration, tls: settings),
            poolSize: configuration.poolSize,
            backlog: configuration.backlog,
            idleTimeout: configuration.keepaliveTimeout,
            leaseTimeout: configuration.connectTimeout,
            queryTimeout: configuration.sendTimeout + configuration.readTimeout,
            eventLoopGroup: eventLoopGroup,
            logger: logger
        )
    }

    /// Runs the connection pool until the task is cancelled or a graceful shutdown is
    /// requested, then closes every connection and returns. Call it once.
    public func run() async {
        await pool.run()
    }

    /// Creates the tables and the `exp` index if they do not exist (``schemaSQL`` with the
    /// configured names). Idempotent; safe to call on every start, also from several instances
    /// at once (`CREATE … IF NOT EXISTS` alone can collide; the statements run in one
    /// transaction under an advisory lock).
    public func migrate() async throws {
        let (statements, lockName) = (statements, "swift-resty-session migrate " + configuration.tableName)
        try await pool.withConnection { connection in
            try await connection.execute("BEGIN")
            do {
                var binds = PostgresBindings()
                binds.append(lockName)
                try await connection.execute(PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock(hashtext($1))", binds: binds))
                for statement in statements.migrate {
                    try await connection.execute(PostgresQuery(unsafeSQL: statement))
                }
                try await connection.execute("COMMIT")
            } catch {
                if !connection.postgres.isClosed {
                    _ = try? await connection.execute("ROLLBACK")
                }
                throw error
            }
        }
    }

    // MARK: - SessionStore

    /// Upserts the record, rotates the old one and updates the metadata rows in one statement.
    nonisolated(nonsending) public func set(_ request: SessionSetRequest) async throws {
        try await instrumentation.observe(.set) {
            try request.validate()
            try Self.checkText(request.name, request.key, request.value)
            if let oldKey = request.oldKey { try Self.checkText(oldKey) }
            if let metadata = request.metadata {
                try Self.checkText(metadata.audiences)
                try Self.checkText(metadata.subjects)
            }

            var binds = StatementBinds(capacity: 8)
            binds.append(request.key)
            binds.append(request.name)
            binds.append(request.value)
            binds.append(request.expiry)
            let rotation: SQLStatements.Rotation
            switch request.oldKeyPolicy(configuration.rememberRotation) {
            case .none:
                rotation = .none
            case .remove:
                rotation = .remove
                binds.append(request.oldKey!)
            case .keepStale(let until):
                rotation = .keepStale
                binds.append(request.oldKey!)
                binds.append(until)
            }
            let metadata = request.metadata.flatMap { $0.isEmpty ? nil : $0 }
            if let metadata {
                binds.append(metadata.audiences)
                binds.append(metadata.subjects)
            }
            try await execute(statements.set(rotation: rotation, metadata: metadata != nil), binds)
        }
    }

    /// The value of `key` when its `exp` is at or after `currentTime`.
    nonisolated(nonsending) public func get(name: String, key: String, currentTime: Int) async throws -> String? {
        try await instrumentation.observe(.get) {
            try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
            try Self.checkText(name, key)
            var binds = StatementBinds(capacity: 2)
            binds.append(key)
            binds.append(currentTime)
            let sql = statements.get
            return try await pool.withConnection { connection in
                var value: String?
                for row in try await connection.execute(prepared: sql, binds) {
                    value = try PostgresErrorMapping.decode(row, as: String?.self)
                }
                return value
            }
        }
    }

    /// Deletes the record (its metadata rows follow by cascade) and the metadata rows of the
    /// given pairs.
    nonisolated(nonsending) public func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws {
        try await instrumentation.observe(.delete) {
            try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
            try Self.checkText(name, key)
            var binds = StatementBinds(capacity: 3)
            binds.append(key)
            let sql: String
            if let metadata, !metadata.isEmpty {
                try Self.checkText(metadata.audiences)
                try Self.checkText(metadata.subjects)
                binds.append(metadata.audiences)
                binds.append(metadata.subjects)
                sql = statements.deleteWithMetadata
            } else {
                sql = statements.delete
            }
            try await execute(sql, binds)
        }
    }

    /// Every session of (audience, subject) whose `exp` is at or after `currentTime`: sid → exp.
    nonisolated(nonsending) public func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int] {
        try await instrumentation.observe(.readMetadata) {
            try SessionStoreValidation.index(name: name, audience: audience, subject: subject, currentTime: currentTime)
            try Self.checkText(name, audience, subject)
            var binds = StatementBinds(capacity: 3)
            binds.append(audience)
            binds.append(subject)
            binds.append(currentTime)
            let sql = statements.readMetadata
            return try await pool.withConnection { connection in
                var result: [String: Int] = [:]
                for row in try await connection.execute(prepared: sql, binds) {
                    let (sid, exp) = try PostgresErrorMapping.decode(row, as: (String, String?).self)
                    if let exp {
                        result[sid] = try PostgresErrorMapping.integer(exp)
                    }
                }
                return result
            }
        }
    }

    // MARK: - Cleanup

    /// Deletes at most `batchSize` rows whose `exp` is before `currentTime`, in one statement;
    /// returns how many were deleted. Their metadata rows follow by cascade.
    public func deleteExpired(currentTime: Int, batchSize: Int) async throws -> Int {
        guard batchSize > 0 else {
            throw PostgresErrorMapping.error(.invalidArgument, "batchSize must be positive")
        }
        try SessionStoreValidation.time(currentTime)
        var binds = StatementBinds(capacity: 2)
        binds.append(currentTime)
        binds.append(batchSize)
        let sql = statements.deleteExpired
        return try await pool.withConnection { connection in
            var deleted = 0
            for row in try await connection.execute(prepared: sql, binds) {
                deleted = try PostgresErrorMapping.integer(try PostgresErrorMapping.decode(row, as: String.self))
            }
            return deleted
        }
    }

    // MARK: - Helpers

    private func execute(_ sql: String, _ binds: StatementBinds) async throws {
        try await pool.withConnection { connection in
            _ = try await connection.execute(prepared: sql, binds)
        }
    }

    /// PostgreSQL's `text` cannot hold NUL; reject it before sending.
    private static func checkText(_ values: String...) throws {
        try checkText(values)
    }

    private static func checkText(_ values: [String]) throws {
        for value in values where containsNUL(value) {
            throw PostgresErrorMapping.error(.invalidArgument, "PostgreSQL text cannot contain a NUL byte")
        }
    }

    /// Whether `value` holds a NUL byte: `memchr` over native strings' contiguous UTF-8.
    private static func containsNUL(_ value: String) -> Bool {
        if let found = value.utf8.withContiguousStorageIfAvailable({ bytes -> Bool in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return false }
            return memchr(base, 0, bytes.count) != nil
        }) {
            return found
        }
        return value.utf8.contains(0)
    }

    /// The client's TLS settings; `nil` without TLS.
    private static func tlsSettings(_ configuration: Configuration) throws -> TLSConfiguration? {
        let tls = configuration.tls
        guard tls.mode != .disable, configuration.socket == nil else { return nil }
        var settings = TLSConfiguration.makeClientConfiguration()
        if tls.verify {
            settings.certificateVerification = .fullVerification
            if let caFile = tls.caFile {
                do {
                    settings.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
                } catch {
                    throw PostgresErrorMapping.error(.tls, "the CA file could not be read", underlying: error)
                }
            }
        } else {
            settings.certificateVerification = .none
        }
        return settings
    }

    /// The settings of each pooled connection.
    static func connectionConfiguration(_ configuration: Configuration, tls settings: TLSConfiguration?) throws -> PostgresConnection.Configuration {
        var result: PostgresConnection.Configuration
        if let socket = configuration.socket {
            result = PostgresConnection.Configuration(
                unixSocketPath: socket,
                username: configuration.username,
                password: configuration.password,
                database: configuration.database
            )
        } else {
            var tls = PostgresConnection.Configuration.TLS.disable
            if let settings {
                let context: NIOSSLContext
                do {
                    context = try NIOSSLContext(configuration: settings)
                } catch {
                    throw PostgresErrorMapping.error(.tls, "the TLS settings are unusable", underlying: error)
                }
                tls = configuration.tls.mode == .require ? .require(context) : .prefer(context)
            }
            result = PostgresConnection.Configuration(
                host: configuration.host,
                port: configuration.port,
                username: configuration.username,
                password: configuration.password,
                database: configuration.database,
                tls: tls
            )
            result.options.tlsServerName = configuration.tls.serverName
        }
        result.options.connectTimeout = TimeAmount(configuration.connectTimeout)
        result.options.additionalStartupParameters = [("application_name", configuration.application)]
        return result
    }
}
