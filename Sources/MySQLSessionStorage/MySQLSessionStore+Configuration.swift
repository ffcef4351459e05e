import NIOSSL
import SessionStorage
import _MySQLWire

extension MySQLSessionStore {
    /// The column character set of the tables ``MySQLSessionStore/migrate()`` creates.
    public enum Schema: Sendable, Hashable {
        /// The seed's layout: `CHARACTER SET ascii`. Names, audiences, subjects and keys must be
        /// ASCII (anything else is refused with `invalidArgument` before it is sent).
        case ascii
        /// The same columns in `utf8mb4` with the binary collation `utf8mb4_bin` (exact,
        /// case-sensitive comparisons), for non-ASCII audiences and subjects. The connection then
        /// uses `utf8mb4` too.
        case utf8mb4
    }

    /// The MySQL / MariaDB store's configuration: every field of the seed (`resty.session.mysql`)
    /// with its default.
    public struct Configuration: Sendable {
        /// The host (default `127.0.0.1`).
        public var host: String
        /// The port (default 3306).
        public var port: Int
        /// A unix-domain socket path; when set it is used instead of host and port.
        public var socket: String?
        /// The user.
        public var username: String
        /// The password; never logged nor shown in an error's description.
        public var password: String
        /// The connection character set (default `ascii`; `utf8mb4` with the ``Schema/utf8mb4`` schema).
        public var charset: String
        /// The database.
        public var database: String?
        /// The sessions table (default `sessions`).
        public var tableName: String
        /// The metadata table (default `sessions_meta`).
        public var tableNameMeta: String
        /// The largest packet sent or read (default 1 MiB); a value that would exceed it is refused
        /// with `valueTooLarge` before anything is written.
        public var maxPacketSize: Int
        /// Timeout of the TCP / unix-socket connect plus the login.
        public var connectTimeout: Duration
        /// Timeout of sending one statement.
        public var sendTimeout: Duration
        /// Timeout of reading one statement's reply.
        public var readTimeout: Duration
        /// An idle pooled connection is closed after this long (the seed's `keepalive_timeout`),
        /// counted from when the client hands it back to the pool: at most about two seconds
        /// after its last use.
        public var keepaliveTimeout: Duration
        /// The pool's name, used in logs (nginx's socket pools are per name; here each store has its own pool).
        public var pool: String?
        /// The most connections open at once.
        public var poolSize: Int
        /// Requests that may wait for a busy pool; past it `poolExhausted` at once.
        public var backlog: Int
        /// How many of the pool's connections the single statements share, in each of two lanes:
        /// reads (`get`, `readMetadata`: non-locking `SELECT`s) and writes (a `set` without
        /// rotation or index, a `delete` without index). Each shared connection carries up to
        /// ``pipelineDepth`` statements at once (pipelining: the server answers in order; fewer
        /// system calls and wake-ups per statement on both sides); a write waiting for a row lock
        /// holds up only the writes behind it, never a read. Transactions keep a connection to
        /// themselves, and at least one connection stays unshared. 0: every statement has a
        /// connection to itself.
        public var sharedConnections: Int
        /// The most statements on the wire at once on a shared connection.
        public var pipelineDepth: Int
        /// Use TLS (default `false`): when `true` TLS is required.
        public var ssl: Bool
        /// Verify the server certificate and host name (default: verify when `ssl` is on).
        public var sslVerify: Bool?
        /// A PEM file of CA certificates to trust instead of the system's.
        public var sslCAFile: String?
        /// The server name for SNI and verification (defaults to `host` when it is a name).
        public var serverName: String?
        /// The tables' character set.
        public var schema: Schema
        /// What a rotation of a `remember` session does with the old record.
        public var rememberRotation: RememberRotationPolicy

        /// Creates a configuration.
        public init(
            host: String = "127.0.0.1",
            port: Int = 3306,
            socket: String? = nil,
            username: String,
            password: String = "",
            charset: String = "ascii",
            database: String? = nil,
            tableName: String = "sessions",
            tableNameMeta: String = "sessions_meta",
            maxPacketSize: Int = 1 << 20,
            connectTimeout: Duration = .seconds(5),
            sendTimeout: Duration = .seconds(5),
            readTimeout: Duration = .seconds(10),
            keepaliveTimeout: Duration = .seconds(60),
            pool: String? = nil,
            poolSize: Int = 30,
            backlog: Int = 1024,
            sharedConnections: Int = 1,
            pipelineDepth: Int = 16,
            ssl: Bool = false,
            sslVerify: Bool? = nil,
            sslCAFile: String? = nil,
            serverName: String? = nil,
            schema: Schema = .ascii,
            rememberRotation: RememberRotationPolicy = .removeAtOnce
        ) {
            self.host = host
            self.port = port
            self.socket = socket
            self.username = username
            self.password = password
            self.charset = charset
            self.database = database
            self.tableName = tableName
            self.tableNameMeta = tableNameMeta
            self.maxPacketSize = maxPacketSize
            self.connectTimeout = connectTimeout
            self.sendTimeout = sendTimeout
            self.readTimeout = readTimeout
            self.keepaliveTimeout = keepaliveTimeout
            self.pool = pool
            self.poolSize = poolSize
            self.backlog = backlog
            self.sharedConnections = sharedConnections
            self.pipelineDepth = pipelineDepth
            self.ssl = ssl
            self.sslVerify = sslVerify
            self.sslCAFile = sslCAFile
            self.serverName = serverName
            self.schema = schema
            self.rememberRotation = rememberRotation
        }

        /// The wire client's configuration.
        func connectionConfiguration() throws -> MySQLConnection.Configuration {
            var charset = MySQLCharset(name: self.charset)
            guard charset != nil else {
                throw SessionStoreError(.invalidArgument, message: "unknown charset \(self.charset)", backend: "mysql")
            }
            if schema == .utf8mb4 { charset = .utf8mb4 }
            var tls = MySQLConnection.Configuration.TLS.disable
            if ssl {
                var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
                if sslVerify == false {
                    tlsConfiguration.certificateVerification = .none
                }
                if let sslCAFile {
                    tlsConfiguration.trustRoots = .file(sslCAFile)
                }
                tls = .require(tlsConfiguration, serverName: serverName)
            }
            let endpoint: MySQLConnection.Configuration.Endpoint =
                socket.map { .unixSocket(path: $0) } ?? .tcp(host: host, port: port)
            return MySQLConnection.Configuration(
                endpoint: endpoint, username: username, password: password, database: database, charset: charset!,
                maxPacketSize: maxPacketSize, tls: tls,
                timeouts: .init(connect: connectTimeout, send: sendTimeout, read: readTimeout),
                // DATETIME has no zone and FROM_UNIXTIME / UNIX_TIMESTAMP use the session's
                // time_zone: pin it, so any server time zone stores and compares the same UTC
                // DATETIMEs as lua-resty-session on a UTC server.
                setupStatements: ["SET time_zone = '+00:00'"])
        }
    }
}
