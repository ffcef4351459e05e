import NIOCore

extension RedisClient {
    /// How a ``RedisClient`` reaches Redis and sizes its pool.
    public struct Configuration: Sendable {
        /// Where the data node is found.
        public enum Endpoint: Sendable {
            /// One server at ``RedisClient/Configuration/connection``'s address.
            case standalone
            /// The master of a Sentinel-monitored group; the connection's address is ignored.
            case sentinel(RedisSentinelConfiguration)
        }

        /// The pool's sizes and timeouts.
        public struct Pool: Sendable, Hashable {
            /// The pool's name, used as a log label (`pool`).
            public var name: String?
            /// The most connections open at once (`pool_size`).
            public var maximumConnections: Int
            /// Connections kept open even when idle.
            public var minimumConnections: Int
            /// How many callers may wait once every connection carries
            /// ``maximumConcurrentRequestsPerConnection`` requests (`backlog`); past it a request
            /// fails at once with `poolExhausted`. `nil`: no bound (waiters still time out after
            /// the connect timeout).
            public var backlog: Int?
            /// An idle connection is closed after this long (`keepalive_timeout`).
            public var idleTimeout: Duration
            /// Requests one connection carries at once (pipelined, answered in order).
            public var maximumConcurrentRequestsPerConnection: Int
            /// Idle connections are checked with `PING` this often; `nil`: never.
            public var keepAlivePingInterval: Duration?

            /// Creates pool options.
            public init(
                name: String? = nil,
                maximumConnections: Int = 16,
                minimumConnections: Int = 0,
                backlog: Int? = nil,
                idleTimeout: Duration = .seconds(60),
                maximumConcurrentRequestsPerConnection: Int = 32,
                keepAlivePingInterval: Duration? = nil
            ) {
                self.name = name
                self.maximumConnections = maximumConnections
                self.minimumConnections = minimumConnections
                self.backlog = backlog
                self.idleTimeout = idleTimeout
                self.maximumConcurrentRequestsPerConnection = maximumConcurrentRequestsPerConnection
                self.keepAlivePingInterval = keepAlivePingInterval
            }
        }

        /// The data node's address (standalone), credentials, database, TLS and timeouts.
        public var connection: RedisConnection.Configuration
        /// Standalone or Sentinel.
        public var endpoint: Endpoint
        /// The pool.
        public var pool: Pool

        /// Creates a configuration.
        public init(
            connection: RedisConnection.Configuration = .init(),
            endpoint: Endpoint = .standalone,
            pool: Pool = .init()
        ) {
            self.connection = connection
            self.endpoint = endpoint
            self.pool = pool
        }
    }
}

/// A Redis Sentinel deployment: where the sentinels are and which master to ask for.
public struct RedisSentinelConfiguration: Sendable, Hashable {
    /// The sentinels, asked in order until one names the master.
    public var sentinels: [RedisAddress]
    /// The monitored master's name (`sentinel monitor <name> …`).
    public var masterName: String
    /// The sentinels' ACL user, if they require one.
    public var username: String?
    /// The sentinels' password, if they require one.
    public var password: String?
    /// TLS towards the sentinels.
    public var tls: RedisTLS

    /// Creates a Sentinel configuration.
    public init(
        sentinels: [RedisAddress],
        masterName: String,
        username: String? = nil,
        password: String? = nil,
        tls: RedisTLS = .disable
    ) {
        self.sentinels = sentinels
        self.masterName = masterName
        self.username = username
        self.password = password
        self.tls = tls
    }
}

extension RedisConnection.Configuration: CustomStringConvertible {
    /// The address, user and options; never the password.
    public var description: String {
        "RedisConnection.Configuration(address: \(address), username: \(username ?? "default"), password: \(password == nil ? "none" : "set"), database: \(database), tls: \(tls.enabled))"
    }
}

extension RedisSentinelConfiguration: CustomStringConvertible {
    /// The sentinels and master name; never the password.
    public var description: String {
        "RedisSentinelConfiguration(sentinels: \(sentinels), masterName: \(masterName), password: \(password == nil ? "none" : "set"))"
    }
}

extension RedisSentinelConfiguration {
    /// The connection to one sentinel: the sentinel's credentials and TLS, database 0, and
    /// the timeouts of the data connections.
    func connectionConfiguration(
        to address: RedisAddress,
        timeoutsOf connection: RedisConnection.Configuration
    ) -> RedisConnection.Configuration {
        RedisConnection.Configuration(
            address: address,
            username: username,
            password: password,
            database: 0,
            tls: tls,
            connectTimeout: connection.connectTimeout,
            sendTimeout: connection.sendTimeout,
            readTimeout: connection.readTimeout
        )
    }
}
