import _ConnectionPoolModule
import _PoolLease
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A memcached client: one connection pool per server, keys spread over the servers by a
/// consistent hash ring (``MemcachedHashRing``), requests pipelined on few connections.
///
/// The client is a ServiceLifecycle `Service`: requests are served while ``run()`` runs
/// (run it in a service group or a task); cancelling `run()` (or a graceful shutdown) closes
/// every connection.
///
///     let client = try MemcachedClient(configuration: .init(), logger: logger)
///     async let _ = client.run()
///     try await client.set("k", value: ByteBuffer(string: "v"), expiration: .seconds(60))
public final class MemcachedClient: MemcachedCommands, Service, Sendable {
    /// How the client connects, times out and pools connections.
    public struct Configuration: Sendable {
        /// The servers; keys are spread over them by consistent hashing. Default `127.0.0.1:11211`.
        public var servers: [MemcachedServerAddress] = [.tcp(host: "127.0.0.1", port: 11211)]
        /// TLS (off by default).
        public var tls: MemcachedTLS = .disable
        /// The longest a connect (TCP and TLS) may take; also the longest a request waits
        /// for a pooled connection.
        public var connectTimeout: Duration = .seconds(10)
        /// The longest a write may stay blocked; `nil` for no limit.
        public var sendTimeout: Duration? = .seconds(10)
        /// The longest to wait for a reply while requests are in flight; `nil` for no limit.
        public var readTimeout: Duration? = .seconds(10)
        /// Connection pool options (per server).
        public var pool: Pool = .init()
        /// The largest value accepted in a reply.
        public var maximumValueLength: Int = 64 << 20
        /// Points per server on the hash ring.
        public var pointsPerServer: Int = 160

        /// Connection pool options, per server.
        public struct Pool: Sendable {
            /// The most connections per server (`pool_size`).
            public var size: Int = 4
            /// How many requests may wait once every connection carries `pipelineDepth`
            /// requests (`backlog`); past it a request fails at once with `poolExhausted`.
            /// `nil`: no limit (requests wait up to the connect timeout).
            public var backlog: Int? = nil
            /// How long an idle connection stays open (`keepalive_timeout`). The client keeps
            /// the connections it uses until one sweep (at most a second, or half this timeout
            /// when shorter) passes without a request on them; the timeout counts from then.
            public var keepaliveTimeout: Duration = .seconds(60)
            /// How many requests one connection carries at once (pipelining). A request goes
            /// to the least loaded connection below this depth; a new connection is opened
            /// only when every open one is at it.
            public var pipelineDepth: Int = 64
            /// A name for the pool in logs (`pool`).
            public var name: String? = nil

            /// The defaults.
            public init() {}
        }

        /// The defaults.
        public init() {}

        /// One server.
        public init(server: MemcachedServerAddress) {
            self.servers = [server]
        }
    }

    /// The configuration the client was made with.
    public let configuration: Configuration
    private let servers: [ServerPool]
    private let ring: MemcachedHashRing
    private let logger: Logger

    /// Creates a client; nothing connects until requests arrive while ``run()`` runs.
    ///
    /// - Throws: ``MemcachedClientError/Code/invalidConfiguration`` (no servers, bad pool
    ///   sizes) or `tls` (the TLS configuration cannot be loaded).
    public init(
        configuration: Configuration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) throws {
        guard !configuration.servers.isEmpty else {
            throw MemcachedClientError(.invalidConfiguration, message: "no memcached servers configured")
        }
        guard configuration.pool.size >= 1, (1...Int(UInt16.max)).contains(configuration.pool.pipelineDepth) else {
            throw MemcachedClientError(.invalidConfiguration, message: "pool size and pipeline depth must be positive")
        }
        if let backlog = configuration.pool.backlog, backlog < 0 {
            throw MemcachedClientError(.invalidConfiguration, message: "backlog must not be negative")
        }
        let sslContext = try configuration.tls.makeContext()
        var logger = logger
        if let name = configuration.pool.name { logger[metadataKey: "memcached_pool"] = .string(name) }
        self.configuration = configuration
        self.logger = logger
        self.ring = MemcachedHashRing(servers: configuration.servers.map(\.description), pointsPerServer: configuration.pointsPerServer)
        self.servers = configuration.servers.map {
            ServerPool(address: $0, configuration: configuration, sslContext: sslContext, eventLoopGroup: eventLoopGroup, logger: logger)
        }
    }

    /// Runs the connection pools until cancelled or until a graceful shutdown; then closes
    /// every connection.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for server in self.servers {
                    group.addTask { await server.run() }
                }
            }
        }
    }

    /// Sends a request to the server that holds its key (`mn` and `stats` go to the first
    /// server). The key is validated first; nothing is sent for an invalid key.
    public nonisolated(nonsending) func execute(_ request: MemcachedRequest) async throws -> MemcachedResponse {
        try request.validate()
        let index = request.key.map(ring.server(for:)) ?? 0
        return try await servers[index].execute(request)
    }

    /// Sends a request to the server at `index` of ``Configuration/servers``.
    public func execute(_ request: MemcachedRequest, onServer index: Int) async throws -> MemcachedResponse {
        try request.validate()
        guard servers.indices.contains(index) else {
            throw MemcachedClientError(.invalidConfiguration, message: "no server at index \(index)")
        }
        return try await servers[index].execute(request)
    }

    /// The index (in ``Configuration/servers``) of the server that holds `key`.
    public func server(for key: String) -> Int {
        ring.server(for: key)
    }

    /// The statistics of the server at `index`.
    public func stats(onServer index: Int, group: String? = nil) async throws -> [String: String] {
        switch try await execute(.stats(group: group), onServer: index) {
        case .stats(let statistics): return statistics
        case .error(let reply): throw reply.clientError
        case .meta: throw MemcachedClientError(.protocolError, message: "a meta reply to stats")
        }
    }
}

// MARK: - one server

typealias MemcachedConnectionPool = ConnectionPool<
    MemcachedConnection,
    Int,
    ConnectionIDGenerator,
    PoolLeaseRequest<MemcachedConnection>,
    Int,
    NoOpKeepAliveBehavior<MemcachedConnection>,
    MemcachedPoolObserver,
    ContinuousClock
>

/// The connections of one server: a connection pool that opens, keeps alive and closes them,
/// and a ``MemcachedDispatcher`` that spreads requests over the connections it leased, with
/// the backlog limit and lease timeout around it.
///
/// The pool hands out whole connections (one stream each); the dispatcher keeps the ones it
/// leased and multiplexes requests on them (up to `pipelineDepth` in flight each), so a
/// request costs one short lock instead of a pool lease. Connections unused for a sweep
/// period go back to the pool, whose keep-alive timeout closes them.
final class ServerPool: Sendable {
    typealias Lease = ConnectionLease<MemcachedConnection>

    let address: MemcachedServerAddress
    let pool: MemcachedConnectionPool
    private let observer: MemcachedPoolObserver
    private let active = Atomic<Int>(0)
    private let capacity: Int
    private let backlog: Int?
    private let leaseTimeout: Duration
    private let sweepPeriod: Duration
    private let eventLoopGroup: any EventLoopGroup
    private let waiters = PoolLeaseWaiters<MemcachedConnection>()
    private let dispatcher: Mutex<MemcachedDispatcher<MemcachedConnection, Lease, DispatchWaiter>>

    init(
        address: MemcachedServerAddress,
        configuration: MemcachedClient.Configuration,
        sslContext: NIOSSLContext?,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) {
        var logger = logger
        logger[metadataKey: "memcached_server"] = .string(address.description)
        self.address = address
        self.capacity = configuration.pool.size * configuration.pool.pipelineDepth
        self.backlog = configuration.pool.backlog
        self.leaseTimeout = configuration.connectTimeout
        // Kept connections idle for one to two periods go back to the pool; its idle timer
        // (the keep-alive timeout) starts then.
        self.sweepPeriod = max(.milliseconds(10), min(configuration.pool.keepaliveTimeout / 2, .seconds(1)))
        self.eventLoopGroup = eventLoopGroup
        self.dispatcher = Mutex(MemcachedDispatcher(maximumConnections: configuration.pool.size, depth: configuration.pool.pipelineDepth))
        let observer = MemcachedPoolObserver(logger: logger)
        self.observer = observer

        var poolConfiguration = ConnectionPoolConfiguration()
        poolConfiguration.minimumConnectionCount = 0
        poolConfiguration.maximumConnectionSoftLimit = configuration.pool.size
        poolConfiguration.maximumConnectionHardLimit = configuration.pool.size
        poolConfiguration.idleTimeout = configuration.pool.keepaliveTimeout
        poolConfiguration.circuitBreakerTripAfter = max(configuration.connectTimeout, .seconds(1))

        var connectionConfiguration = MemcachedConnection.Configuration()
        connectionConfiguration.tls = configuration.tls
        connectionConfiguration.connectTimeout = configuration.connectTimeout
        connectionConfiguration.sendTimeout = configuration.sendTimeout
        connectionConfiguration.readTimeout = configuration.readTimeout
        connectionConfiguration.maximumValueLength = configuration.maximumValueLength
        let connectConfiguration = connectionConfiguration
        let connectionLogger = logger

        self.pool = MemcachedConnectionPool(
            configuration: poolConfiguration,
            idGenerator: ConnectionIDGenerator(),
            requestType: PoolLeaseRequest<MemcachedConnection>.self,
            keepAliveBehavior: NoOpKeepAliveBehavior(connectionType: MemcachedConnection.self),
            observabilityDelegate: observer,
            clock: ContinuousClock()
        ) { id, _ in
            let connection = try await MemcachedConnection.connect(
                to: address,
                configuration: connectConfiguration,
                sslContext: sslContext,
                id: id,
                eventLoop: eventLoopGroup.any(),
                logger: connectionLogger
            )
            // One stream: the dispatcher leases a connection whole and multiplexes on it.
            return ConnectionAndMetadata(connection: connection, maximalStreamsOnConnection: 1)
        }
    }

    /// Runs the pool and the sweeps until cancelled; then hands every kept connection back
    /// and fails every waiting request.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.pool.run() }
            group.addTask { await self.sweepUntilCancelled() }
        }
    }

    // Runs on the caller's executor (no hop to the global executor on entry and on return):
    // the common path is one lock and the request's one suspension, for its reply.
    nonisolated(nonsending) func execute(_ request: MemcachedRequest) async throws -> MemcachedResponse {
        let running = active.add(1, ordering: .relaxed).newValue
        defer { active.subtract(1, ordering: .relaxed) }
        if let backlog, running > capacity + backlog {
            throw MemcachedClientError(
                .poolExhausted,
                message: "every connection is busy and the backlog of \(backlog) waiting requests is full"
            )
        }
        var retired: [Lease] = []
        let action = dispatcher.withLock { $0.acquire(retired: &retired) }
        for lease in retired { lease.release() }
        let connection: MemcachedConnection
        switch action {
        case .use(let kept):
            connection = kept
        case .lease:
            connection = try await leaseConnection()
        case .mustWait:
            connection = try await waitInLine()
        case .shutDown, .queued, .cancelled:
            throw Self.shutdownError
        }
        defer { release(connection) }
        return try await connection.send(request)
    }

    // MARK: dispatching

    private func release(_ connection: MemcachedConnection) {
        var retired: [Lease] = []
        let granted = dispatcher.withLock { $0.release(connection, retired: &retired) }
        for lease in retired { lease.release() }
        if let (waiter, grant) = granted { waiter.resume(.success(grant)) }
    }

    /// Asks the pool for one more connection (the dispatcher counted this lease already).
    private func leaseConnection() async throws -> MemcachedConnection {
        let pool = self.pool
        let leased = await waiters.lease(
            timeout: TimeAmount(leaseTimeout),
            on: eventLoopGroup.any(),
            request: { pool.leaseConnection($0) },
            cancel: { pool.cancelLeaseConnection($0) }
        )
        switch leased.result {
        case .success(let lease):
            let connection = lease.connection
            guard let granted = dispatcher.withLock({ $0.leased(connection, lease: lease) }) else {
                lease.release()
                throw Self.shutdownError
            }
            for waiter in granted { waiter.resume(.success(.use(connection))) }
            return connection
        case .failure(let poolError):
            let error = map(poolError, timedOut: leased.cancellation == .timedOut)
            let connectingFails = observer.lastConnectError != nil || poolError == .poolShutdown
                || poolError == .connectionCreationCircuitBreakerTripped
            let (failed, retry) = dispatcher.withLock { $0.leaseFailed(abandonWaiters: connectingFails) }
            for waiter in failed { waiter.resume(.failure(error)) }
            retry?.resume(.success(.lease))
            throw error
        }
    }

    /// Waits for a slot on a kept connection (or for the right to lease one), at most the
    /// connect timeout.
    private func waitInLine() async throws -> MemcachedConnection {
        let waiter = DispatchWaiter()
        let grant = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: DispatchWaiter.Continuation) in
                waiter.start(continuation)
                var retired: [Lease] = []
                let action = dispatcher.withLock {
                    $0.enqueue(waiter, isCancelled: waiter.isCancelled, retired: &retired)
                }
                for lease in retired { lease.release() }
                switch action {
                case .use(let connection):
                    waiter.resume(.success(.use(connection)))
                case .lease:
                    waiter.resume(.success(.lease))
                case .queued:
                    let timeout = self.leaseTimeout
                    waiter.armTimer {
                        eventLoopGroup.any().scheduleTask(in: TimeAmount(timeout)) {
                            if self.dispatcher.withLock({ $0.removeWaiter(waiter) }) {
                                waiter.resume(.failure(self.waitTimedOut()))
                            }
                        }
                    }
                case .cancelled:
                    waiter.resume(.failure(MemcachedClientError(.connectionFailed, message: "the connection request was cancelled")))
                case .shutDown, .mustWait:
                    waiter.resume(.failure(Self.shutdownError))
                }
            }
        } onCancel: {
            waiter.markCancelled()
            if dispatcher.withLock({ $0.removeWaiter(waiter) }) {
                waiter.resume(.failure(MemcachedClientError(.connectionFailed, message: "the connection request was cancelled")))
            }
        }
        switch grant {
        case .use(let connection):
            return connection
        case .lease:
            return try await leaseConnection()
        }
    }

    private func waitTimedOut() -> MemcachedClientError {
        if let underlying = observer.lastConnectError {
            return connectFailure(underlying)
        }
        return MemcachedClientError(.timeout, message: "no connection became available within the connect timeout (is run() running?)")
    }

    private func sweepUntilCancelled() async {
        while (try? await Task.sleep(for: sweepPeriod)) != nil {
            var retired: [Lease] = []
            let granted = dispatcher.withLock { $0.sweep(retired: &retired) }
            for lease in retired { lease.release() }
            for waiter in granted { waiter.resume(.success(.lease)) }
        }
        var retired: [Lease] = []
        let failed = dispatcher.withLock { $0.shutDown(retired: &retired) }
        for lease in retired { lease.release() }
        for waiter in failed { waiter.resume(.failure(Self.shutdownError)) }
    }

    private static var shutdownError: MemcachedClientError {
        MemcachedClientError(.shutdown, message: "the memcached client is shut down")
    }

    private func map(_ error: ConnectionPoolError, timedOut: Bool) -> MemcachedClientError {
        switch error {
        case .poolShutdown:
            return Self.shutdownError
        case .connectionCreationCircuitBreakerTripped:
            return connectFailure(observer.lastConnectError)
        default:
            if let underlying = observer.lastConnectError {
                return connectFailure(underlying)
            }
            if timedOut {
                return MemcachedClientError(.timeout, message: "no connection became available within the connect timeout (is run() running?)")
            }
            return MemcachedClientError(.connectionFailed, message: "the connection request was cancelled")
        }
    }
}

/// A request waiting in a ``ServerPool``'s line for a connection. Completed exactly once: by
/// whoever takes it out of the dispatcher's line (a grant, its timeout, its cancellation, a
/// shutdown), always under the dispatcher's lock.
final class DispatchWaiter: Sendable {
    typealias Grant = MemcachedDispatcher<MemcachedConnection, ServerPool.Lease, DispatchWaiter>.Grant
    typealias Continuation = CheckedContinuation<Grant, any Error>

    private struct State {
        var continuation: Continuation?
        var timer: Scheduled<Void>?
        var completed = false
        var cancelled = false
    }

    private let state = Mutex(State())

    func start(_ continuation: Continuation) {
        state.withLock { $0.continuation = continuation }
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    func markCancelled() {
        state.withLock { $0.cancelled = true }
    }

    func armTimer(_ schedule: () -> Scheduled<Void>) {
        state.withLock { state in
            guard !state.completed else { return }
            state.timer = schedule()
        }
    }

    func resume(_ result: Result<Grant, MemcachedClientError>) {
        let (continuation, timer) = state.withLock { state -> (Continuation?, Scheduled<Void>?) in
            guard !state.completed else { return (nil, nil) }
            state.completed = true
            defer {
                state.continuation = nil
                state.timer = nil
            }
            return (state.continuation, state.timer)
        }
        timer?.cancel()
        continuation?.resume(with: result.mapError { $0 as any Error })
    }
}

extension ServerPool {
    /// The error of a request that got no connection because connecting fails: `tls` or
    /// `timeout` when that is why, else `connectionFailed`.
    func connectFailure(_ underlying: (any Error)?) -> MemcachedClientError {
        let code: MemcachedClientError.Code
        switch (underlying as? MemcachedClientError)?.code {
        case .tls?: code = .tls
        case .timeout?: code = .timeout
        default: code = .connectionFailed
        }
        return MemcachedClientError(code, message: "cannot connect to the memcached server", underlying: underlying)
    }
}

/// Logs pool events and remembers the last connect error, for clear error messages.
final class MemcachedPoolObserver: ConnectionPoolObservabilityDelegate {
    typealias ConnectionID = Int
    private let logger: Logger
    private let lastError = Mutex<(any Error)?>(nil)

    init(logger: Logger) { self.logger = logger }

    var lastConnectError: (any Error)? { lastError.withLock { $0 } }

    func startedConnecting(id: Int) {
        logger.debug("memcached connecting", metadata: ["memcached_connection_id": .stringConvertible(id)])
    }

    func connectFailed(id: Int, error: any Error) {
        lastError.withLock { $0 = error }
        logger.debug("memcached connect failed", metadata: ["memcached_connection_id": .stringConvertible(id), "error": "\(error)"])
    }

    func connectSucceeded(id: Int, streamCapacity: UInt16) {
        lastError.withLock { $0 = nil }
        logger.debug("memcached connected", metadata: ["memcached_connection_id": .stringConvertible(id)])
    }

    func connectionUtilizationChanged(id: Int, streamsUsed: UInt16, streamCapacity: UInt16) {}

    func keepAliveTriggered(id: Int) {}

    func keepAliveSucceeded(id: Int) {}

    func keepAliveFailed(id: Int, error: any Error) {}

    func connectionClosing(id: Int) {
        logger.debug("memcached connection closing", metadata: ["memcached_connection_id": .stringConvertible(id)])
    }

    func connectionClosed(id: Int, error: (any Error)?) {
        logger.debug("memcached connection closed", metadata: ["memcached_connection_id": .stringConvertible(id)])
    }

    func requestQueueDepthChanged(_ newDepth: Int) {}
}
