import SessionStorage
import _RedisWire

extension RedisClusterSessionStore {
    /// The options of lua-resty-session's Redis Cluster storage, with its defaults.
    public struct Configuration: Sendable {
        /// One node the store may ask for the slot map (`node`).
        public struct Node: Sendable, Hashable {
            /// The node's IP address or host name (`ip`, default `127.0.0.1`).
            public var ip: String
            /// The node's port (`port`, default 6379).
            public var port: Int

            /// Creates a node.
            public init(ip: String = "127.0.0.1", port: Int = 6379) {
                self.ip = ip
                self.port = port
            }
        }

        /// Prefix of every key (`prefix`).
        public var prefix: String?
        /// Suffix of every key (`suffix`).
        public var suffix: String?
        /// The cluster's name (`name`). Stores of this process naming the same cluster share
        /// one single-flight guard for slot-map refreshes (see ``lockZone``); `nil`: the store
        /// refreshes on its own.
        public var name: String?
        /// The nodes asked for the slot map (`nodes`); any subset of the cluster will do.
        public var nodes: [Node]
        /// In OpenResty, the `lua_shared_dict` holding the locks that keep nginx workers from
        /// refreshing the slot map at the same time (`lock_zone`). Here: a namespace of the
        /// process-wide refresh guard. Stores with the same `lockZone`, `lockPrefix` and
        /// ``name`` share one guard, so while one refreshes the map the others wait for its
        /// result instead of asking the cluster too.
        public var lockZone: String?
        /// The prefix of the lock's name in that zone (`lock_prefix`); here part of the
        /// guard's name, as above.
        public var lockPrefix: String?
        /// Redirections (`MOVED`, `ASK`) and retried errors (`TRYAGAIN`, `CLUSTERDOWN`,
        /// `LOADING`) followed per request (`max_redirections`); past it the operation fails
        /// with `redirectionsExhausted`.
        public var maxRedirections: Int
        /// Tries per request of a node that cannot be reached, refreshing the map from the
        /// other nodes in between (`max_connection_attempts`).
        public var maxConnectionAttempts: Int
        /// Time spent on those tries per request, in total (`max_connection_timeout`).
        public var maxConnectionTimeout: Duration
        /// The ACL user (`username`); `nil` for `default`.
        public var username: String?
        /// The password (`password`).
        public var password: String?
        /// Time allowed to connect and log in to a node (`connect_timeout`).
        public var connectTimeout: Duration
        /// Time allowed to write a command (`send_timeout`).
        public var sendTimeout: Duration
        /// Time allowed for a reply (`read_timeout`).
        public var readTimeout: Duration
        /// An idle pooled connection is closed after this long (`keepalive_timeout`).
        public var keepaliveTimeout: Duration
        /// The pools' name (`pool`): a label on log lines and the connections' client name.
        /// In OpenResty it names a shared cosocket pool; here each store owns one pool per node.
        public var pool: String?
        /// The most connections open at once to each node (`pool_size`).
        public var poolSize: Int
        /// Callers allowed to wait per node once its pool is full (`backlog`); `nil`: no bound.
        public var backlog: Int?
        /// Operations one connection carries at once, pipelined.
        public var requestsPerConnection: Int
        /// TLS on (`ssl`, default off).
        public var ssl: Bool
        /// Verify the nodes' certificates (`ssl_verify`; off by default, as in the original).
        public var sslVerify: Bool
        /// A PEM file of the CAs to trust (default: the system's).
        public var sslCAFile: String?
        /// The TLS server name, for SNI and verification (`server_name`).
        public var serverName: String?
        /// Values longer than this are refused with `valueTooLarge` before being sent.
        public var maximumValueSize: Int?
        /// What a rotation of a `remember` session does with the old record.
        public var rememberRotation: RememberRotationPolicy

        /// Creates a configuration with lua-resty-session's defaults.
        public init(
            prefix: String? = nil,
            suffix: String? = nil,
            name: String? = nil,
            nodes: [Node] = [Node()],
            lockZone: String? = nil,
            lockPrefix: String? = nil,
            maxRedirections: Int = 5,
            maxConnectionAttempts: Int = 3,
            maxConnectionTimeout: Duration = .seconds(5),
            username: String? = nil,
            password: String? = nil,
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
            maximumValueSize: Int? = 512 * 1024 * 1024,
            rememberRotation: RememberRotationPolicy = .removeAtOnce
        ) {
            self.prefix = prefix
            self.suffix = suffix
            self.name = name
            self.nodes = nodes
            self.lockZone = lockZone
            self.lockPrefix = lockPrefix
            self.maxRedirections = maxRedirections
            self.maxConnectionAttempts = maxConnectionAttempts
            self.maxConnectionTimeout = maxConnectionTimeout
            self.username = username
            self.password = password
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
            self.maximumValueSize = maximumValueSize
            self.rememberRotation = rememberRotation
        }

        /// The name of the shared refresh guard, when ``name`` is set.
        var refreshGroupName: String? {
            name.map { "\(lockZone ?? "")\u{0}\(lockPrefix ?? "")\u{0}\($0)" }
        }

        /// The cluster client's configuration for these options.
        var clientConfiguration: RedisClusterClient.Configuration {
            let connection = RedisConnection.Configuration(
                username: username,
                password: password,
                tls: ssl ? .require(verify: sslVerify, caFile: sslCAFile, serverName: serverName) : .disable,
                connectTimeout: connectTimeout,
                sendTimeout: sendTimeout,
                readTimeout: readTimeout,
                clientName: pool.map { String($0.map { $0.isLetter || $0.isNumber || "-_.:".contains($0) ? $0 : "_" }) }
            )
            return RedisClusterClient.Configuration(
                nodes: nodes.map { .tcp(host: $0.ip, port: $0.port) },
                connection: connection,
                pool: .init(
                    name: pool,
                    maximumConnections: poolSize,
                    backlog: backlog,
                    idleTimeout: keepaliveTimeout,
                    maximumConcurrentRequestsPerConnection: requestsPerConnection
                ),
                maxRedirections: maxRedirections,
                maxConnectionAttempts: maxConnectionAttempts,
                maxConnectionTimeout: maxConnectionTimeout,
                refreshGroup: refreshGroupName.map(RedisClusterRefreshGroup.shared)
            )
        }
    }
}

extension RedisClusterSessionStore.Configuration: CustomStringConvertible {
    /// The options, without the password.
    public var description: String {
        let nodeList = nodes.map { "\($0.ip):\($0.port)" }.joined(separator: ",")
        return "RedisClusterSessionStore.Configuration(name: \(name ?? "none"), nodes: [\(nodeList)], ssl: \(ssl), password: \(password == nil ? "none" : "set"))"
    }
}
