import SessionStorage

extension PostgresSessionStore {
    /// Everything the PostgreSQL backend can be told, one field per field of
    /// lua-resty-session's `resty.session.postgres` configuration, with the same defaults
    /// (except `application`, which names this project instead of `pgmoon`).
    public struct Configuration: Sendable {
        /// The host to connect to (seed `host`). Ignored when ``socket`` is set.
        public var host: String = "127.0.0.1"
        /// The TCP port (seed `port`).
        public var port: Int = 5432
        /// The path of a unix-domain socket file to connect through instead of TCP (seed
        /// `socket`), e.g. `/run/postgresql/.s.PGSQL.5432`. TLS is not used over a socket.
        public var socket: String?
        /// The connection name shown in `pg_stat_activity.application_name` (seed
        /// `application`; the original defaults to `pgmoon`).
        public var application: String = "swift-resty-session"
        /// The role to log in as (seed `username`).
        public var username: String = "postgres"
        /// The password, if the server asks for one (seed `password`). Never logged and never
        /// part of an error's `description`.
        public var password: String?
        /// The database to open (seed `database`); `nil` means the server's default (the
        /// role's name).
        public var database: String?
        /// The sessions table (seed `table_name`), optionally schema-qualified
        /// (`auth.sessions`). Each part must match `[A-Za-z_][A-Za-z0-9_]*`; it is quoted as
        /// an identifier in every statement.
        public var tableName: String = "sessions"
        /// The metadata table (seed `table_name_meta`), same rules as ``tableName``.
        public var tableNameMeta: String = "sessions_meta"

        /// How long establishing one connection may take: TCP or unix-socket connect, TLS
        /// handshake, startup and authentication (seed `connect_timeout`; postgres-nio's
        /// `connectTimeout`). It also bounds how long an operation waits for a pooled
        /// connection (the original's `backlog` wait is bounded by the connect timeout too);
        /// past it the operation fails with `timeout`, or with the error of the last failed
        /// connection attempt when no connection could be made.
        public var connectTimeout: Duration = .seconds(10)
        /// Seed `send_timeout`. postgres-nio writes a whole query in one flush and has no
        /// separate write timeout, so this is added to ``readTimeout`` to form the deadline of
        /// the query phase of an operation.
        public var sendTimeout: Duration = .seconds(10)
        /// Seed `read_timeout`: with ``sendTimeout``, the deadline of an operation from the
        /// moment it holds a connection until its result is read. When it passes, the
        /// connection is closed (the statement's outcome is unknown, so the connection
        /// cannot be reused) and the operation fails with `timeout`.
        public var readTimeout: Duration = .seconds(10)
        /// How long a connection may stay idle in the pool before it is closed (seed
        /// `keepalive_timeout`; the pool's idle timeout, counted from when the store hands the
        /// connection back to the pool: at most about two seconds after its last use). Idle
        /// connections are not pinged: a
        /// connection the server closed is dropped from the pool as soon as the close arrives.
        public var keepaliveTimeout: Duration = .seconds(60)
        /// A name for the connection pool (seed `pool`). Each store has its own pool; the
        /// name is put on the store's log lines as `session_store_pool`.
        public var pool: String?
        /// The maximum number of connections the store opens (seed `pool_size`).
        public var poolSize: Int = 30
        /// How many operations may wait for a connection while all ``poolSize`` connections
        /// are busy (seed `backlog`). Past it an operation fails at once with
        /// `poolExhausted`; `0` means no operation waits. `nil` (the default) lets any
        /// number wait, each for at most ``connectTimeout``.
        public var backlog: Int?
        /// TLS: off, preferred or required, and how the server's certificate is verified
        /// (seed `ssl`, `ssl_verify`, `ssl_required`; see also those accessors).
        public var tls: TLS = .disable
        /// What happens to the old record when a `remember` session rotates.
        public var rememberRotation: RememberRotationPolicy = .removeAtOnce

        /// A configuration with every default.
        public init() {}

        /// A configuration for a server at `host:port`.
        public init(
            host: String = "127.0.0.1",
            port: Int = 5432,
            username: String = "postgres",
            password: String? = nil,
            database: String? = nil
        ) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
        }

        /// Seed `ssl`: whether TLS is used at all. Setting it to `true` on a configuration
        /// without TLS selects ``TLS/prefer(verify:serverName:)``; `false` disables TLS.
        public var ssl: Bool {
            get { tls.mode != .disable }
            set {
                if !newValue {
                    tls.mode = .disable
                } else if tls.mode == .disable {
                    tls.mode = .prefer
                }
            }
        }

        /// Seed `ssl_required`: fail instead of falling back to plaintext when the server
        /// does not offer TLS. Setting it to `true` selects ``TLS/Mode/require``.
        public var sslRequired: Bool {
            get { tls.mode == .require }
            set {
                if newValue {
                    tls.mode = .require
                } else if tls.mode == .require {
                    tls.mode = .prefer
                }
            }
        }

        /// Seed `ssl_verify`: whether the server's certificate is verified (against
        /// ``TLS/caFile`` when set, else the system's roots) and its name checked.
        public var sslVerify: Bool {
            get { tls.verify }
            set { tls.verify = newValue }
        }
    }

    /// How the connection to PostgreSQL is protected.
    public struct TLS: Sendable, Hashable {
        /// Whether TLS is used.
        public enum Mode: Sendable, Hashable {
            /// Plaintext only.
            case disable
            /// TLS when the server offers it, else plaintext (libpq's `sslmode=prefer`).
            case prefer
            /// TLS or fail with a `tls` error (libpq's `sslmode=require`, or `verify-full`
            /// with ``TLS/verify``).
            case require
        }

        /// Whether TLS is used.
        public var mode: Mode
        /// Verify the server's certificate chain and host name (seed `ssl_verify`). Without
        /// it the connection is encrypted but not authenticated.
        public var verify: Bool
        /// A PEM file of the certificate authorities to trust; `nil` uses the system's roots.
        public var caFile: String?
        /// The name checked against the certificate and sent as SNI; `nil` uses ``Configuration/host``
        /// (SNI is not sent for an IP address, but the certificate is still checked against it).
        public var serverName: String?

        /// Creates a TLS setting.
        public init(mode: Mode, verify: Bool = true, caFile: String? = nil, serverName: String? = nil) {
            self.mode = mode
            self.verify = verify
            self.caFile = caFile
            self.serverName = serverName
        }

        /// No TLS (the seed's default, `ssl = false`).
        public static let disable = TLS(mode: .disable, verify: false)

        /// TLS when the server offers it (`ssl = true`).
        public static func prefer(verify: Bool = false, caFile: String? = nil, serverName: String? = nil) -> TLS {
            TLS(mode: .prefer, verify: verify, caFile: caFile, serverName: serverName)
        }

        /// TLS or nothing (`ssl = true, ssl_required = true`).
        public static func require(verify: Bool = true, caFile: String? = nil, serverName: String? = nil) -> TLS {
            TLS(mode: .require, verify: verify, caFile: caFile, serverName: serverName)
        }
    }
}
