import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import _ConnectionPoolModule
import _PoolLease

/// A pooled Redis client: `Sendable`, shared by any number of concurrent callers.
///
/// It is a ServiceLifecycle `Service`: the pool works only while ``run()`` runs (run it in a
/// `ServiceGroup` or a task group); cancelling `run()` or a graceful shutdown closes every
/// connection. Each connection carries up to
/// ``Configuration/Pool-swift.struct/maximumConcurrentRequestsPerConnection`` requests at
/// once, so concurrent callers pipeline over few connections.
///
/// With ``Configuration/Endpoint-swift.enum/sentinel(_:)`` every new connection asks the
/// sentinels for the master's address and checks `ROLE`. The client follows a failover: while
/// ``run()`` runs, it subscribes to `+switch-master` on a sentinel and, when the master
/// changes, closes its connections to the old one, so the pool makes new ones to the new
/// master; a lost connection or a `READONLY` reply (the node was demoted) also closes that
/// connection, so the next one finds the new master.
public final class RedisClient: Sendable, Service {
    typealias Pool = ConnectionPool<
        RedisConnection, Int, ConnectionIDGenerator, PoolLeaseRequest<RedisConnection>, Int,
        RedisKeepAliveBehavior, RedisPoolObservability, ContinuousClock
    >

    /// The configuration the client was made with.
    public let configuration: Configuration
    private let pool: Pool
    private let logger: Logger
    private let eventLoopGroup: any EventLoopGroup
    private let state: NIOLockedValueBox<State>
    /// Requests admitted and not yet finished (running or waiting for a connection), counted
    /// only when the pool has a backlog to enforce.
    private let active = Atomic<Int>(0)
    /// The callers waiting for the pool to hand out a connection.
    private let waiters: PoolLeaseWaiters<RedisConnection>
    private let multiplexer: RedisMultiplexer
    /// The master switches (`+switch-master` of our group) handled so far.
    private let masterSwitches = Atomic<Int>(0)

    private struct State {
        var lastConnectError: RedisClientError?
        var tlsContext: NIOSSLContext?
        var sentinelTLSContext: NIOSSLContext?
        /// The open connections to a Sentinel-named master, by pool id, closed when it is demoted.
        var connections: [Int: RedisConnection] = [:]
        /// Bumped by every `+switch-master`: a connection whose master was resolved before a
        /// switch it missed is not kept.
        var switchGeneration = 0
    }

    /// How many `+switch-master` events of the configured group the client has handled
    /// (its connections to the old master were closed by then); for tests.
    package var observedMasterSwitches: Int { masterSwitches.load(ordering: .acquiring) }

    /// Creates a client. Nothing connects until ``run()`` runs and a request comes.
    public init(
        configuration: Configuration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "redis", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        var logger = logger
        if let name = configuration.pool.name {
            logger[metadataKey: RedisLoggingKeys.pool] = .string(name)
        }
        self.configuration = configuration
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        let state = NIOLockedValueBox(State())
        self.state = state
        let waiters = PoolLeaseWaiters<RedisConnection>()
        self.waiters = waiters

        var poolConfiguration = ConnectionPoolConfiguration()
        poolConfiguration.minimumConnectionCount = configuration.pool.minimumConnections
        poolConfiguration.maximumConnectionSoftLimit = configuration.pool.maximumConnections
        poolConfiguration.maximumConnectionHardLimit = configuration.pool.maximumConnections
        poolConfiguration.idleTimeout = configuration.pool.idleTimeout
        // Once connecting has failed for a connect timeout with no connection left, waiting
        // callers fail at once instead of queueing; the pool keeps retrying in the background.
        poolConfiguration.circuitBreakerTripAfter = configuration.connection.connectTimeout
        let connectionConfiguration = configuration.connection
        let endpoint = configuration.endpoint
        // The pool leases each connection whole; RedisMultiplexer shares a lease among requests.
        let streams: UInt16 = 1
        self.multiplexer = RedisMultiplexer(maximumRequests: configuration.pool.maximumConcurrentRequestsPerConnection)
        let factoryLogger = logger

        self.pool = Pool(
            configuration: poolConfiguration,
            idGenerator: ConnectionIDGenerator(),
            requestType: PoolLeaseRequest<RedisConnection>.self,
            keepAliveBehavior: RedisKeepAliveBehavior(frequency: configuration.pool.keepAlivePingInterval),
            observabilityDelegate: RedisPoolObservability(logger: logger),
            clock: ContinuousClock()
        ) { [eventLoopGroup] id, pool in
            do {
                let connection = try await Self.makeConnection(
                    id: id, configuration: connectionConfiguration, endpoint: endpoint,
                    eventLoop: eventLoopGroup.any(), state: state, logger: factoryLogger
                )
                state.withLockedValue { $0.lastConnectError = nil }
                return ConnectionAndMetadata(connection: connection, maximalStreamsOnConnection: streams)
            } catch {
                let typed = RedisWireErrors.mapError(error, handshaking: true)
                // Like a failed connect in OpenResty, the callers waiting for this connection
                // get its error now rather than after the connect timeout; the pool retries
                // with backoff for later callers.
                state.withLockedValue { $0.lastConnectError = typed }
                waiters.abandonAll { pool.cancelLeaseConnection($0) }
                throw typed
            }
        }
    }

    /// Runs the pool until cancelled or until a graceful shutdown; then closes every connection.
    ///
    /// With a Sentinel endpoint, it also watches the sentinels' `+switch-master` events
    /// meanwhile; the watch ends with the pool.
    public func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                if case .sentinel(let sentinel) = self.configuration.endpoint {
                    group.addTask { await self.watchSentinels(sentinel) }
                }
                await self.pool.run()
                group.cancelAll()
            }
        } onCancelOrGracefulShutdown: {
            self.pool.triggerForceShutdown()
        }
    }

    // MARK: requests

    /// Sends one command and returns its reply; an error reply throws `serverError`.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        try await withConnection { try await $0.send(command) }
    }

    /// Sends several commands in one write on one connection and returns their replies
    /// (error replies as values).
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        try await withConnection { try await $0.pipeline(commands) }
    }

    /// Runs `commands` in `MULTI`/`EXEC` on one connection; see ``RedisConnection/transaction(_:)``.
    public func transaction(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        try await withConnection { try await $0.transaction(commands) }
    }

    /// Runs `body` on a pooled connection, which up to
    /// ``Configuration/Pool-swift.struct/maximumConcurrentRequestsPerConnection`` callers share.
    ///
    /// - Throws: `poolExhausted` at once when the pool and its backlog are full; `timeout` or
    ///   `connectionFailed` when no connection is ready within the connect timeout;
    ///   `shutdown` once the client stopped.
    public func withConnection<Result: Sendable>(
        _ body: (RedisConnection) async throws -> Result
    ) async throws -> Result {
        let pool = configuration.pool
        // Without a backlog nothing is bounded: no count of the requests (two atomic updates
        // of a shared counter per request).
        guard let backlog = pool.backlog else { return try await runOnConnection(body) }
        let capacity = pool.maximumConnections * max(1, pool.maximumConcurrentRequestsPerConnection)
        let running = active.add(1, ordering: .relaxed).newValue
        defer { active.subtract(1, ordering: .relaxed) }
        if running > capacity + backlog {
            throw RedisClientError(.poolExhausted, message: "the pool and its backlog are full")
        }
        return try await runOnConnection(body)
    }

    /// ``withConnection(_:)`` once admitted: a shared connection, a retry on another when the
    /// request was not sent.
    private func runOnConnection<Result: Sendable>(
        _ body: (RedisConnection) async throws -> Result
    ) async throws -> Result {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await multiplexer.withConnection(lease: { try await self.leaseConnection() }) { connection in
                    do {
                        return try await body(connection)
                    } catch let error as RedisClientError {
                        if error.serverErrorPrefix == "READONLY" || error.requestWasNotSent {
                            // A demoted master (failover), or a connection that closed before the
                            // pool knew: drop it, so the next one is made afresh. Wait until it is
                            // closed (the pool hears of it first): its lease goes back to the pool
                            // right after, and a pool that still thought it open would hand the
                            // same connection to the retry.
                            self.multiplexer.retire(connection)
                            await connection.closeAndWait()
                        }
                        throw error
                    }
                }
            } catch let error as RedisClientError where error.requestWasNotSent && attempt < 3 {
                // Nothing reached the server: safe to run again on another connection.
                continue
            }
        }
    }

    private func leaseConnection() async throws -> (connection: RedisConnection, release: @Sendable () -> Void) {
        let pool = self.pool
        let leased = await waiters.lease(
            timeout: TimeAmount(configuration.connection.connectTimeout),
            on: eventLoopGroup.any(),
            request: { pool.leaseConnection($0) },
            cancel: { pool.cancelLeaseConnection($0) }
        )
        switch leased.result {
        case .success(let lease):
            return (lease.connection, { lease.release() })
        case .failure(let error):
            let lastConnectError = state.withLockedValue { $0.lastConnectError }
            throw Self.leaseError(error, cancellation: leased.cancellation, lastConnectError: lastConnectError)
        }
    }

    static func leaseError(
        _ error: ConnectionPoolError,
        cancellation: PoolLeaseCancellation?,
        lastConnectError: RedisClientError?
    ) -> any Error {
        if error == .poolShutdown {
            return RedisClientError(.shutdown, message: "the client is shut down", underlying: error)
        }
        let timedOut = cancellation == .timedOut || cancellation == .abandoned
        if timedOut || error == .connectionCreationCircuitBreakerTripped {
            // Why no connection could be had says more than "no connection".
            if let lastConnectError { return lastConnectError }
            if timedOut {
                return RedisClientError(.timeout, message: "no connection was free within the connect timeout", underlying: error)
            }
            return RedisClientError(.connectionFailed, message: "no connection to Redis could be made", underlying: error)
        }
        return CancellationError()
    }

    // MARK: Sentinel

    private func watchSentinels(_ sentinel: RedisSentinelConfiguration) async {
        let state = self.state
        await RedisSentinelWatcher.watch(
            sentinel,
            connection: configuration.connection,
            eventLoopGroup: eventLoopGroup,
            tlsContext: { try Self.sentinelTLSContext(sentinel, state: state) },
            logger: logger,
            onSwitch: { await self.masterSwitched($0) }
        )
    }

    /// Closes every connection not to the new master: the pool replaces them with connections
    /// that ask the sentinels again. Requests in flight on them fail with `connectionClosed`;
    /// requests not yet written fail with `requestWasNotSent` and run again elsewhere.
    private func masterSwitched(_ change: RedisMasterSwitch) async {
        let stale = state.withLockedValue { state in
            state.switchGeneration += 1
            return state.connections.values.filter { $0.address != change.newMaster }
        }
        logger.info(
            "sentinel switched the master",
            metadata: ["old": "\(change.oldMaster)", "new": "\(change.newMaster)", "closing": "\(stale.count)"]
        )
        for connection in stale { multiplexer.retire(connection) }
        for connection in stale { await connection.closeAndWait() }
        masterSwitches.add(1, ordering: .releasing)
    }

    private static func sentinelTLSContext(_ sentinel: RedisSentinelConfiguration, state: NIOLockedValueBox<State>) throws -> NIOSSLContext? {
        try state.withLockedValue { state -> NIOSSLContext? in
            if state.sentinelTLSContext == nil { state.sentinelTLSContext = try sentinel.tls.makeContext() }
            return state.sentinelTLSContext
        }
    }

    // MARK: connections

    private static func makeConnection(
        id: Int,
        configuration: RedisConnection.Configuration,
        endpoint: Configuration.Endpoint,
        eventLoop: any EventLoop,
        state: NIOLockedValueBox<State>,
        logger: Logger
    ) async throws -> RedisConnection {
        let tlsContext = try state.withLockedValue { state -> NIOSSLContext? in
            if state.tlsContext == nil { state.tlsContext = try configuration.tls.makeContext() }
            return state.tlsContext
        }
        switch endpoint {
        case .standalone:
            return try await RedisConnection.connect(
                configuration: configuration, id: id, eventLoop: eventLoop, tlsContext: tlsContext, logger: logger
            )
        case .sentinel(let sentinel):
            let sentinelTLS = try sentinelTLSContext(sentinel, state: state)
            let generation = state.withLockedValue { $0.switchGeneration }
            let master = try await RedisSentinelResolver.masterAddress(
                sentinel, connection: configuration, eventLoop: eventLoop, tlsContext: sentinelTLS, logger: logger
            )
            var configuration = configuration
            configuration.address = master
            let connection = try await RedisConnection.connect(
                configuration: configuration, id: id, eventLoop: eventLoop, tlsContext: tlsContext, logger: logger
            )
            do {
                let role = try await connection.send(.role())
                guard role.array?.first?.string == "master" else {
                    throw RedisClientError(.sentinel, message: "the node Sentinel named as master is not a master (failover in progress)")
                }
                // Registered for a `+switch-master`; unregistered once closed (at once if it
                // closed already). A switch seen while this one was being made may have
                // demoted the node it found: not kept, the pool makes another.
                let current = state.withLockedValue { state -> Bool in
                    guard state.switchGeneration == generation else { return false }
                    state.connections[id] = connection
                    return true
                }
                guard current else {
                    throw RedisClientError(.sentinel, message: "the master changed while connecting (failover)")
                }
                connection.onClose { _ in state.withLockedValue { $0.connections[id] = nil } }
                return connection
            } catch {
                await connection.closeAndWait()
                throw error
            }
        }
    }
}

/// Checks idle connections with `PING`.
struct RedisKeepAliveBehavior: ConnectionKeepAliveBehavior {
    typealias Connection = RedisConnection
    let frequency: Duration?

    var keepAliveFrequency: Duration? { frequency }

    func runKeepAlive(for connection: RedisConnection) async throws {
        try await connection.send(.ping())
    }
}

/// Logs the pool's events at debug level.
struct RedisPoolObservability: ConnectionPoolObservabilityDelegate {
    typealias ConnectionID = Int
    let logger: Logger

    func startedConnecting(id: Int) {
        logger.debug("redis pool connecting", metadata: [RedisLoggingKeys.connectionID: "\(id)"])
    }

    func connectFailed(id: Int, error: any Error) {
        logger.debug(
            "redis pool connect failed",
            metadata: [RedisLoggingKeys.connectionID: "\(id)", "error": "\(error)"]
        )
    }

    func connectSucceeded(id: Int, streamCapacity: UInt16) {
        logger.debug("redis pool connected", metadata: [RedisLoggingKeys.connectionID: "\(id)"])
    }

    func connectionUtilizationChanged(id: Int, streamsUsed: UInt16, streamCapacity: UInt16) {}

    func keepAliveTriggered(id: Int) {}

    func keepAliveSucceeded(id: Int) {}

    func keepAliveFailed(id: Int, error: any Error) {
        logger.debug("redis pool keep-alive failed", metadata: [RedisLoggingKeys.connectionID: "\(id)"])
    }

    func connectionClosing(id: Int) {}

    func connectionClosed(id: Int, error: (any Error)?) {
        logger.debug("redis pool connection closed", metadata: [RedisLoggingKeys.connectionID: "\(id)"])
    }

    func requestQueueDepthChanged(_ newDepth: Int) {}
}
