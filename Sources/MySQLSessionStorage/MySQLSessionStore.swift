import Logging
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import SessionStorage
import _MySQLWire

/// The MySQL / MariaDB session store (lua-resty-session's `mysql` backend), with its table
/// layout and these fixes: every value is bound (prepared statements), the upsert works on
/// MariaDB and MySQL 5.7 / 8.x and renews `exp`, a rotation and its metadata are one
/// transaction that also drops the rotated-out key from the index, and expired rows are removed
/// in bounded batches (``deleteExpired(currentTime:batchSize:)``, ``MySQLSessionSweeper``).
///
/// It is a `Service`: run it (in a `ServiceGroup`, or `run()` in a task) so its pool runs.
/// Create the tables once with ``migrate()``.
public struct MySQLSessionStore: SessionStore, Service {
    /// The configuration.
    public let configuration: Configuration
    /// The wire client (a pool).
    public let client: MySQLClient
    private let instrumentation: SessionStoreInstrumentation
    private let sessions: String
    private let meta: String
    private let sql: Statements

    /// Creates a store; throws `invalidArgument` for an unknown charset or a table name that is
    /// not a plain identifier. The connections run on `eventLoopGroup` (default: NIO's singleton
    /// group).
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "session.mysql"),
        metricsFactory: (any MetricsFactory)? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        self.configuration = configuration
        self.sessions = try Self.quotedIdentifier(configuration.tableName)
        self.meta = try Self.quotedIdentifier(configuration.tableNameMeta)
        self.client = MySQLClient(
            configuration: try configuration.connectionConfiguration(),
            pool: .init(
                size: configuration.poolSize, backlog: configuration.backlog, keepaliveTimeout: configuration.keepaliveTimeout,
                failFastAfter: configuration.connectTimeout, name: configuration.pool,
                sharedConnections: configuration.sharedConnections, pipelineDepth: configuration.pipelineDepth),
            eventLoopGroup: eventLoopGroup,
            logger: logger)
        self.instrumentation = SessionStoreInstrumentation(backend: "mysql", logger: logger, metricsFactory: metricsFactory)
        self.sql = Statements(sessions: sessions, meta: meta)
    }

    /// Runs the connection pool until cancelled or gracefully shut down.
    public func run() async throws {
        try await client.run()
    }

    struct Statements {
        let upsert: String
        let get: String
        let keepStale: String
        let deleteSession: String
        let insertMeta: String
        let deleteMeta: String
        let readMetadata: String
        let deleteExpired: String

        init(sessions: String, meta: String) {
            // VALUES() works on MariaDB and every MySQL (deprecated, still working, on 8.0.20+).
            upsert = "INSERT INTO \(sessions) (sid, name, data, exp) VALUES (?, ?, ?, FROM_UNIXTIME(?)) "
                + "ON DUPLICATE KEY UPDATE name = VALUES(name), data = VALUES(data), exp = VALUES(exp)"
            get = "SELECT data FROM \(sessions) WHERE sid = ? AND exp >= FROM_UNIXTIME(?)"
            keepStale = "UPDATE \(sessions) SET exp = FROM_UNIXTIME(?) WHERE sid = ? AND exp > FROM_UNIXTIME(?)"
            deleteSession = "DELETE FROM \(sessions) WHERE sid = ?"
            // Not INSERT IGNORE: IGNORE also downgrades truncation and foreign-key errors to warnings.
            insertMeta = "INSERT INTO \(meta) (aud, sub, sid) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE sid = sid"
            deleteMeta = "DELETE FROM \(meta) WHERE aud = ? AND sub = ? AND sid = ?"
            readMetadata = "SELECT m.sid, UNIX_TIMESTAMP(s.exp) FROM \(meta) m JOIN \(sessions) s ON s.sid = m.sid "
                + "WHERE m.aud = ? AND m.sub = ? AND s.exp >= FROM_UNIXTIME(?)"
            deleteExpired = "DELETE FROM \(sessions) WHERE exp < FROM_UNIXTIME(?) LIMIT ?"
        }
    }

    // MARK: - schema

    /// The `CREATE TABLE` statements of the configured schema.
    public var schemaStatements: [String] {
        let charset =
            configuration.schema == .ascii ? "CHARACTER SET ascii" : "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        return [
            """
            CREATE TABLE IF NOT EXISTS \(sessions) (
              sid  CHAR(43) PRIMARY KEY,
              name VARCHAR(255),
              data MEDIUMTEXT,
              exp  DATETIME,
              INDEX (exp)
            ) \(charset)
            """,
            """
            CREATE TABLE IF NOT EXISTS \(meta) (
              aud VARCHAR(255),
              sub VARCHAR(255),
              sid CHAR(43),
              PRIMARY KEY (aud, sub, sid),
              CONSTRAINT FOREIGN KEY (sid) REFERENCES \(sessions)(sid) ON DELETE CASCADE ON UPDATE CASCADE
            ) \(charset)
            """,
        ]
    }

    /// Creates the two tables if they do not exist (idempotent).
    public func migrate() async throws {
        do {
            try await client.withConnection { connection in
                for statement in schemaStatements { try await connection.query(statement) }
            }
        } catch {
            throw Self.map(error)
        }
    }

    // MARK: - the four operations

    nonisolated(nonsending) public func set(_ request: SessionSetRequest) async throws {
        try await instrumentation.observe(.set) {
            try request.validate()
            try validateKey(request.key)
            if let oldKey = request.oldKey { try validateKey(oldKey) }
            try validateText(request.name, what: "name")
            try validateTime(request.expiry)
            let pairs = request.metadata?.pairs ?? []
            for pair in pairs {
                try validateText(pair.audience, what: "audience")
                try validateText(pair.subject, what: "subject")
            }
            let upsertBinds: [MySQLValue] = [
                .string(request.key), .string(request.name), .string(request.value), .int(Int64(request.expiry)),
            ]
            guard MySQLClientMessage.executePayloadSize(binds: upsertBinds) <= configuration.maxPacketSize else {
                throw SessionStoreError(
                    .valueTooLarge, message: "the value exceeds max_packet_size (\(configuration.maxPacketSize) bytes)", backend: "mysql")
            }
            let action = request.oldKeyPolicy(configuration.rememberRotation)
            if action == .none && pairs.isEmpty {
                try await execute(sql.upsert, binds: upsertBinds, lane: .writes)
                return
            }
            try await transaction { connection in
                try await connection.execute(sql.upsert, binds: upsertBinds)
                switch action {
                case .none:
                    break
                case .remove:
                    try await connection.execute(sql.deleteSession, binds: [.string(request.oldKey!)])
                case .keepStale(let until):
                    try await connection.execute(
                        sql.keepStale, binds: [.int(Int64(until)), .string(request.oldKey!), .int(Int64(until))])
                }
                for pair in pairs {
                    try await connection.execute(
                        sql.insertMeta, binds: [.string(pair.audience), .string(pair.subject), .string(request.key)])
                    if let oldKey = request.oldKey {
                        try await connection.execute(
                            sql.deleteMeta, binds: [.string(pair.audience), .string(pair.subject), .string(oldKey)])
                    }
                }
            }
        }
    }

    nonisolated(nonsending) public func get(name: String, key: String, currentTime: Int) async throws -> String? {
        try await instrumentation.observe(.get) {
            try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
            try validateKey(key)
            try validateTime(currentTime)
            let result = try await execute(sql.get, binds: [.string(key), .int(Int64(currentTime))], lane: .reads)
            guard let row = result.rows.first else { return nil }
            return row[0].string
        }
    }

    nonisolated(nonsending) public func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws {
        try await instrumentation.observe(.delete) {
            try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
            try validateKey(key)
            // The metadata rows follow the session row by ON DELETE CASCADE.
            try await execute(sql.deleteSession, binds: [.string(key)], lane: .writes)
        }
    }

    nonisolated(nonsending) public func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int] {
        try await instrumentation.observe(.readMetadata) {
            try SessionStoreValidation.index(name: name, audience: audience, subject: subject, currentTime: currentTime)
            try validateText(audience, what: "audience")
            try validateText(subject, what: "subject")
            try validateTime(currentTime)
            let result = try await execute(
                sql.readMetadata, binds: [.string(audience), .string(subject), .int(Int64(currentTime))], lane: .reads)
            var index: [String: Int] = [:]
            for row in result.rows {
                guard let sid = row[0].string, let expiry = row[1].int else {
                    throw SessionStoreError(.protocolError, message: "unreadable metadata row", backend: "mysql")
                }
                index[sid] = expiry
            }
            return index
        }
    }

    // MARK: - expiry sweep

    /// Deletes rows that expired before `currentTime`, `batchSize` rows per statement, until a
    /// statement deletes fewer than `batchSize` or `maximumBatches` ran; returns the rows deleted.
    @discardableResult
    public func deleteExpired(currentTime: Int, batchSize: Int = 1000, maximumBatches: Int = 100) async throws -> Int {
        guard batchSize > 0, maximumBatches > 0 else {
            throw SessionStoreError(.invalidArgument, message: "batchSize and maximumBatches must be positive", backend: "mysql")
        }
        try validateTime(currentTime)
        var total = 0
        for _ in 0..<maximumBatches {
            let result = try await run {
                try await $0.execute(sql.deleteExpired, binds: [.int(Int64(currentTime)), .int(Int64(batchSize))])
            }
            total += Int(result.affectedRows)
            if result.affectedRows < UInt64(batchSize) { break }
        }
        return total
    }

    // MARK: - helpers

    /// One autocommit statement, on a connection shared with other statements of its lane
    /// (``Configuration/sharedConnections``, pipelined) or on one of its own. Reads and writes
    /// have lanes of their own: a write waiting for a row lock never holds up a read.
    @discardableResult
    private func execute(_ statement: String, binds: [MySQLValue], lane: MySQLClient.Lane) async throws -> MySQLQueryResult {
        do {
            return try await client.execute(statement, binds: binds, lane: lane)
        } catch {
            throw Self.map(error)
        }
    }

    @discardableResult
    private func run<T: Sendable>(_ body: (MySQLConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withConnection(body)
        } catch {
            throw Self.map(error)
        }
    }

    /// Runs `body` between BEGIN and COMMIT on one leased connection, rolling back on error;
    /// retried on deadlock (1213) and lock wait timeout (1205).
    private func transaction(_ body: (MySQLConnection) async throws -> Void) async throws {
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await client.withConnection { connection in
                    try await connection.query("BEGIN")
                    do {
                        try await body(connection)
                        try await connection.query("COMMIT")
                    } catch {
                        if !connection.isClosed { _ = try? await connection.query("ROLLBACK") }
                        throw error
                    }
                }
                return
            } catch let error as MySQLError where (error.errorCode == 1213 || error.errorCode == 1205) && attempt < 5 {
                continue
            } catch {
                throw Self.map(error)
            }
        }
    }

    private func validateKey(_ key: String) throws {
        // At most 43 UTF-8 bytes is at most 43 characters (the common case, one pass less).
        guard key.utf8.count <= 43 || key.unicodeScalars.count <= 43 else {
            throw SessionStoreError(.invalidArgument, message: "key longer than the 43 characters of the sid column", backend: "mysql")
        }
        if configuration.schema == .ascii {
            guard Self.isASCII(key) else {
                throw SessionStoreError(.invalidArgument, message: "key must be ASCII for the ascii schema", backend: "mysql")
            }
        }
        guard key.last != " " else {
            throw SessionStoreError(.invalidArgument, message: "key must not end with a space (CHAR columns ignore it)", backend: "mysql")
        }
    }

    /// Whether every byte of `text` is ASCII (over the contiguous UTF-8 of a native string, one
    /// OR per byte, no index arithmetic of the UTF-8 view).
    static func isASCII(_ text: String) -> Bool {
        if let ascii = text.utf8.withContiguousStorageIfAvailable({ bytes in
            bytes.reduce(UInt8(0)) { $0 | $1 } < 0x80
        }) {
            return ascii
        }
        return text.utf8.allSatisfy { $0 < 0x80 }
    }

    private func validateText(_ text: String, what: String) throws {
        if configuration.schema == .ascii {
            guard Self.isASCII(text) else {
                throw SessionStoreError(.invalidArgument, message: "\(what) must be ASCII for the ascii schema", backend: "mysql")
            }
        }
        guard text.unicodeScalars.count <= 255 else {
            throw SessionStoreError(.invalidArgument, message: "\(what) longer than 255 characters", backend: "mysql")
        }
    }

    private func validateTime(_ time: Int) throws {
        // FROM_UNIXTIME returns NULL past 2038-01-19 on MariaDB < 11.5 and MySQL < 8.0.28.
        guard time <= Int(Int32.max) else {
            throw SessionStoreError(.invalidArgument, message: "times past 2038-01-19 cannot be stored in a DATETIME via FROM_UNIXTIME", backend: "mysql")
        }
    }

    static func quotedIdentifier(_ name: String) throws -> String {
        guard !name.isEmpty, name.utf8.count <= 64,
            name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x24 })
        else {
            throw SessionStoreError(.invalidArgument, message: "table names must be 1–64 characters of [A-Za-z0-9_$]", backend: "mysql")
        }
        return "`\(name)`"
    }

    /// Maps the wire client's errors to ``SessionStoreError``.
    static func map(_ error: any Error) -> any Error {
        if error is SessionStoreError { return error }
        guard let error = error as? MySQLError else { return error }
        let code: SessionStoreError.Code
        switch error.code {
        case .connectionFailed: code = .connectionFailed
        case .connectionClosed: code = .connectionClosed
        case .timeout: code = .timeout
        case .authenticationFailed, .unsupportedAuthenticationPlugin: code = .authenticationFailed
        case .tls: code = .tls
        case .packetTooLarge: code = .valueTooLarge
        case .poolExhausted: code = .poolExhausted
        case .shutdown: code = .shutdown
        case .invalidArgument: code = .invalidArgument
        case .protocolError: code = .protocolError
        default: code = .serverError
        }
        var message = error.message
        if let errorCode = error.errorCode, let state = error.sqlState {
            message += " (error \(errorCode), SQLSTATE \(state))"
        }
        return SessionStoreError(
            code, message: message, backend: "mysql", serverMessage: error.serverError?.message, underlying: error)
    }
}
