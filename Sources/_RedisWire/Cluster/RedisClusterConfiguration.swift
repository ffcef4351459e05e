import NIOConcurrencyHelpers

extension RedisClusterClient {
    /// How a ``RedisClusterClient`` finds the cluster, reaches its nodes and retries.
    public struct Configuration: Sendable {
        /// The nodes asked for the slot map (`nodes`); any subset of the cluster will do.
        public var nodes: [RedisAddress]
        /// Credentials, TLS and timeouts of every node connection; its address is ignored.
        public var connection: RedisConnection.Configuration
        /// The pool of each node (one ``RedisClient`` per master).
        public var pool: RedisClient.Configuration.Pool
        /// How many `MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN` or `LOADING` replies one request
        /// follows before failing with ``RedisClusterError/Code/tooManyRedirections``
        /// (`max_redirections`).
        public var maxRedirections: Int
        /// How many times one request tries a node it cannot reach (connect refused, timeout,
        /// connection lost), refreshing the map from other nodes between tries, before failing
        /// with ``RedisClusterError/Code/noReachableNode`` (`max_connection_attempts`).
        public var maxConnectionAttempts: Int
        /// The most time one request spends on those tries, in total
        /// (`max_connection_timeout`).
        public var maxConnectionTimeout: Duration
        /// The least time between two background refreshes of the map (a `MOVED` storm during
        /// a resharding refreshes once per interval; each `MOVED` still moves its slot at once).
        public var minimumRefreshInterval: Duration
        /// The first pause before retrying after `TRYAGAIN`/`CLUSTERDOWN`/`LOADING` or a
        /// connection failure; doubled per retry, at most one second.
        public var retryBackoff: Duration
        /// Shares map refreshes with other clients of the same cluster (single flight); `nil`:
        /// a group of this client's own.
        public var refreshGroup: RedisClusterRefreshGroup?

        /// Creates a configuration.
        public init(
            nodes: [RedisAddress],
            connection: RedisConnection.Configuration = .init(),
            pool: RedisClient.Configuration.Pool = .init(),
            maxRedirections: Int = 5,
            maxConnectionAttempts: Int = 3,
            maxConnectionTimeout: Duration = .seconds(5),
            minimumRefreshInterval: Duration = .milliseconds(100),
            retryBackoff: Duration = .milliseconds(50),
            refreshGroup: RedisClusterRefreshGroup? = nil
        ) {
            self.nodes = nodes
            self.connection = connection
            self.pool = pool
            self.maxRedirections = maxRedirections
            self.maxConnectionAttempts = maxConnectionAttempts
            self.maxConnectionTimeout = maxConnectionTimeout
            self.minimumRefreshInterval = minimumRefreshInterval
            self.retryBackoff = retryBackoff
            self.refreshGroup = refreshGroup
        }
    }
}

/// A single-flight guard for slot-map refreshes: while one refresh runs, every other caller of
/// the group waits for its result instead of asking the cluster again.
///
/// Clients (and session stores) of the same cluster in one process share a group through
/// ``shared(_:)``, so a resharding seen by many stores at once costs one round of
/// `CLUSTER SHARDS`. (This is what lua-resty-session's `lock_zone`/`lock_prefix` shared-memory
/// locks did across nginx workers.)
public final class RedisClusterRefreshGroup: Sendable {
    // The in-flight refresh is an unstructured task so that every joined caller can await it,
    // and one caller's cancellation does not cancel the refresh of the others.
    private let inFlight = NIOLockedValueBox<Task<RedisClusterTopology, any Error>?>(nil)
    private let fetches = NIOLockedValueBox(0)

    /// Creates a group of its own.
    public init() {}

    private static let registry = NIOLockedValueBox<[String: RedisClusterRefreshGroup]>([:])

    /// The process-wide group named `name` (created on first use).
    public static func shared(_ name: String) -> RedisClusterRefreshGroup {
        registry.withLockedValue { groups in
            if let group = groups[name] { return group }
            let group = RedisClusterRefreshGroup()
            groups[name] = group
            return group
        }
    }

    /// How many refreshes actually ran (joined callers do not count).
    public var refreshCount: Int { fetches.withLockedValue { $0 } }

    /// Runs `fetch`, or joins the refresh that runs already.
    public func refresh(_ fetch: @escaping @Sendable () async throws -> RedisClusterTopology) async throws -> RedisClusterTopology {
        let task = inFlight.withLockedValue { current -> Task<RedisClusterTopology, any Error> in
            if let current { return current }
            fetches.withLockedValue { $0 += 1 }
            let task = Task { try await fetch() }
            current = task
            return task
        }
        defer {
            inFlight.withLockedValue { current in
                if current == task { current = nil }
            }
        }
        return try await task.value
    }
}
