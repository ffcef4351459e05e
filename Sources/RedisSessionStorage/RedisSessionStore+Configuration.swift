import SessionStorage
import _RedisWire

extension RedisSessionStore {
    /// The options of lua-resty-session's Redis storage, with its defaults, plus Sentinel.
    public struct Configuration: Sendable {
        /// A Redis Sentinel group: the data node is the current master of `masterName`.
        public struct Sentinel: Sendable, Hashable {
            /// One sentinel.
            public struct Node: Sendable, Hashable {
                /// The sentinel's host.
                public var host: String
                /// The sentinel's port (Sentinel's default is 26379).
                public var port: Int

                /// Creates a node.
                public init(host: String = "127.0.0.1", port: Int = 26379) {
                    self.host = host
                    self.port = port
                }
            }

            /// The sentinels, asked in order.
            public var nodes: [Node]
            /// The monitored master's name.
            public var masterName: String
            /// The sentinels' ACL user, if any.
            public var username: String?
            /// The sentinels' password, if any.
            public var password: String?

            /// Creates a Sentinel configuration.
            public init(nodes: [Node], masterName: String, username: String? = nil, password: String? = nil) {
                self.nodes = nodes
                self.masterName = masterName
                self.username = username
                self.password = password
            }
        }

        /// Prefix of every key (`prefix`).
        public var prefix: String?
        /// Suffix of every key (`suffix`).
        public var suffix: String?
        /// The server's host (`host`, default `127.0.0.1`).
        public var host: String
        /// The server's port (`port`, default 6379).
        public var port: Int
        /// A unix-domain socket path, used instead of host and port (`socket`).
        public var socket: String?
        /// The ACL user (`username`); `nil` for `default`.
        public var username: String?
        /// The password (`password`).
        public var password: String?
        /// The database index (`database`), selected after logging in.
        public var database: Int
        /// Time allowed to connect and log in (`connect_timeout`).
        public var connectTimeout: Duration
        /// Time allowed to write a command (`send_timeout`).
        public var sendTimeout: Duration
        /// Time allowed for a reply (`read_timeout`).
        public var readTimeout: Duration
        /// An idle pooled connection is closed after this long (`keepalive_timeout`).
        public var keepaliveTimeout: Duration
        /// The pool's name (`pool`): a label on log lines. In OpenResty it names a shared
        /// cosocket pool; here each store owns its pool.
        public var pool: String?
        /// The most connections open at once (`pool_size`).
        public var poolSize: Int
        /// Callers allowed to wait once the pool is full (`backlog`); past it an operation
        /// fails at once with `poolExhausted`. `nil`: no bound, waiters time out after
        /// `connectTimeout`.
        public var backlog: Int?
        /// Operations one connection carries at once, pipelined.
        public var requestsPerConnection: Int
        /// TLS on (`ssl`, default off).
        public var ssl: Bool
        /// Verify the server's certificate (`ssl_verify`; off by default, as in the original).
        public var sslVerify: Bool
        /// A PEM file of the CAs to trust (default: the system's).
        public var sslCAFile: String?
        /// The TLS server name, for SNI and verification (`server_name`).
        public var serverName: String?
        /// The data node is found through these sentinels instead of host/port/socket.
        public var sentinel: Sentinel?
        /// Values longer than this are refused with `valueTooLarge` before being sent; match
        /// the server's `proto-max-bulk-len` (512 MiB by default). `nil`: no check here (the
        /// server's refusal is still mapped to `valueTooLarge`).
        public var maximumValueSize: Int?
        /// What a rotation of a `remember` session does with the old record.
        public var rememberRotation: RememberRotationPolicy

        /// Creates a configuration with lua-resty-session's defaults.
        public init(
            prefix: String? = nil,
            suffix: String? = nil,
            host: String = "127.0.0.1",
            port: Int = 6379,
            socket: String? = nil,
            username: String? = nil,
            password: String? = nil,
            database: Int = 0,
            connectTimeout: Duration = .seconds(10),
            sendTimeout: Duration = .seconds(10),
            readTimeout: Duration = .seconds(10),
            keepaliveTimeout: Duration = .seconds(60),
            pool: String? = nil,
            poolSize: Int = 16,
            backlog: Int? = nil,
            requestsPerConnection: Int = 32,
            ssl: Bool = false,
            sslVerify: Bool = false,
            sslCAFile: String? = nil,
            serverName: String? = nil,
            sentinel: Sentinel? = nil,
            maximumValueSize: Int? = 512 * 1024 * 1024,
            rememberRotation: RememberRotationPolicy = .removeAtOnce
        ) {
            self.prefix = prefix
            self.suffix = suffix
            self.host = host
            self.port = port
            self.socket = socket
            self.username = username
            self.password = password
            self.database = database
            self.connectTimeout = connectTimeout
            self.sendTimeout = sendTimeout
            self.readTimeout = readTimeout
            self.keepaliveTimeout = keepaliveTimeout
            self.pool = pool
            self.poolSize = poolSize
            self.backlog = backlog
            self.requestsPerConnection = requestsPerConnection
            self.ssl = ssl
            self.sslVerify = sslVerify
            self.sslCAFile = sslCAFile
            self.serverName = serverName
            self.sentinel = sentinel
            self.maximumValueSize = maximumValueSize
            self.rememberRotation = rememberRotation
        }

        /// `CLIENT SETNAME` accepts no spaces or newlines.
        static func clientName(_ pool: String) -> String {
            String(pool.map { $0.isLetter || $0.isNumber || "-_.:".contains($0) ? $0 : "_" })
        }

        /// The wire client's configuration for these options.
        var clientConfiguration: RedisClient.Configuration {
            let address: RedisAddress = socket.map { .unixSocket(path: $0) } ?? .tcp(host: host, port: port)
            let connection = RedisConnection.Configuration(
                address: address,
                username: username,
                password: password,
                database: database,
                tls: ssl ? .require(verify: sslVerify, caFile: sslCAFile, serverName: serverName) : .disable,
                connectTimeout: connectTimeout,
                sendTimeout: sendTimeout,
                readTimeout: readTimeout,
                clientName: pool.map(Self.clientName)
            )
            let endpoint: RedisClient.Configuration.Endpoint
            if let sentinel {
                endpoint = .sentinel(
                    RedisSentinelConfiguration(
                        sentinels: sentinel.nodes.map { .tcp(host: $0.host, port: $0.port) },
                        masterName: sentinel.masterName,
                        username: sentinel.username,
                        password: sentinel.password
                    )
                )
            } else {
                endpoint = .standalone
            }
            return RedisClient.Configuration(
                connection: connection,
                endpoint: endpoint,
                pool: .init(
                    name: pool,
                    maximumConnections: poolSize,
                    backlog: backlog,
                    idleTimeout: keepaliveTimeout,
                    maximumConcurrentRequestsPerConnection: requestsPerConnection
                )
            )
        }
    }
}

extension RedisSessionStore.Configuration: CustomStringConvertible {
    /// The options, without the passwords.
    public var description: String {
        let target = sentinel.map { "sentinel \($0.masterName)" } ?? socket.map { "unix:\($0)" } ?? "\(host):\(port)"
        return "RedisSessionStore.Configuration(\(target), database: \(database), ssl: \(ssl), password: \(password == nil ? "none" : "set"))"
    }
}
