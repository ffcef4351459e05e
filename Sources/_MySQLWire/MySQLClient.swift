import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import _ConnectionPoolModule
import _PoolLease

extension MySQLConnection: PooledConnection {
    /// Calls `closure` once the channel closed.
    public func onClose(_ closure: @escaping @Sendable ((any Error)?) -> Void) {
        channel.closeFuture.whenComplete { _ in closure(nil) }
    }
}

/// A pool of ``MySQLConnection``s on postgres-nio's `_ConnectionPoolModule`, as a
/// ServiceLifecycle `Service`: call ``run()`` (or add it to a `ServiceGroup`) before use.
public final class MySQLClient: Service, Sendable {
    /// The pool options.
    public struct Pool: Sendable, Hashable {
        /// The most connections open at once (the seed's `pool_size`).
        public var size: Int
        /// Requests that may wait for a busy pool; past it a request fails at once with
        /// ``MySQLError/Code/poolExhausted`` (the seed's `backlog`).
        public var backlog: Int
        /// An idle connection is closed after this long (the seed's `keepalive_timeout`),
        /// counted from when the client hands it back to the pool: at most about two seconds
        /// after its last use.
        public var keepaliveTimeout: Duration
        /// Idle connections are pinged (COM_PING) this often; `nil` disables it.
        public var pingInterval: Duration?
        /// While no connection can be made for this long, requests fail at once instead of
        /// waiting (and the pool keeps retrying in the background).
        public var failFastAfter: Duration
        /// The name of the pool (the seed's `pool`), used in logs.
        public var name: String?
        /// How many of the pool's connections ``MySQLClient/execute(_:binds:lane:)`` shares
        /// between concurrent single statements in each ``MySQLClient/Lane``, each carrying up
        /// to ``pipelineDepth`` of them at once (pipelining: fewer system calls and wake-ups per
        /// statement, on both sides). At least one connection stays unshared, for transactions
        /// and ``MySQLClient/withConnection(_:)``. 0 (the default): every statement has a
        /// connection to itself.
        public var sharedConnections: Int
        /// The most statements on the wire at once on a shared connection.
        public var pipelineDepth: Int

        /// Creates pool options.
        public init(
            size: Int = 16, backlog: Int = 256, keepaliveTimeout: Duration = .seconds(60), pingInterval: Duration? = .seconds(30),
            failFastAfter: Duration = .seconds(2), name: String? = nil, sharedConnections: Int = 0, pipelineDepth: Int = 16
        ) {
            self.size = size
            self.backlog = backlog
            self.keepaliveTimeout = keepaliveTimeout
            self.pingInterval = pingInterval
            self.failFastAfter = failFastAfter
            self.name = name
            self.sharedConnections = sharedConnections
            self.pipelineDepth = pipelineDepth
        }
    }

    struct KeepAlive: ConnectionKeepAliveBehavior {
        var keepAliveFrequency: Duration?
        func runKeepAlive(for connection: MySQLConnection) async throws {
            try await connection.ping()
        }
    }

    typealias ConnectionPool = _ConnectionPoolModule.ConnectionPool<
        MySQLConnection, Int, ConnectionIDGenerator, PoolLeaseRequest<MySQLConnection>, Int, KeepAlive,
        NoOpConnectionPoolMetrics<Int>, ContinuousClock
    >

    /// The connection configuration.
    public let configuration: MySQLConnection.Configuration
    /// The pool options.
    public let pool: Pool
    private let connectionPool: ConnectionPool
    private let outstanding = Atomic<Int>(0)
    private let lastConnectError = ErrorBox()
    private let waiters = PoolLeaseWaiters<MySQLConnection>()
    /// Leases kept between operations (see `PoolLeaseCache`): most operations never touch the
    /// pool.
    private let cache = PoolLeaseCache<MySQLConnection>(maximumIdle: .seconds(1)) { $0.isClosed }
    /// The connections shared by single statements, one set per ``Lane`` (none with
    /// ``Pool/sharedConnections`` 0).
    private let shared: [Lane: MySQLSharedLeases]
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger

    /// Creates a client; connections are made on demand once ``run()`` runs.
    public init(
        configuration: MySQLConnection.Configuration,
        pool: Pool = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "mysql.client")
    ) {
        // At least one connection stays for transactions and `withConnection`.
        let sharedCount = min(max(0, pool.sharedConnections), (max(1, pool.size) - 1) / 2)
        self.shared =
            sharedCount > 0
            ? [
                .reads: MySQLSharedLeases(maximum: sharedCount, depth: pool.pipelineDepth),
                .writes: MySQLSharedLeases(maximum: sharedCount, depth: pool.pipelineDepth),
            ] : [:]
        var pipelined = configuration
        if sharedCount > 0 { pipelined.pipelineDepth = max(configuration.pipelineDepth, pool.pipelineDepth) }
        let configuration = pipelined
        self.configuration = configuration
        self.pool = pool
        self.eventLoopGroup = eventLoopGroup
        var logger = logger
        if let name = pool.name { logger[metadataKey: "mysql_pool"] = .string(name) }
        self.logger = logger
        let connectionLogger = logger
        var poolConfiguration = ConnectionPoolConfiguration()
        poolConfiguration.minimumConnectionCount = 0
        poolConfiguration.maximumConnectionSoftLimit = max(1, pool.size)
        poolConfiguration.maximumConnectionHardLimit = max(1, pool.size)
        poolConfiguration.idleTimeout = pool.keepaliveTimeout
        poolConfiguration.circuitBreakerTripAfter = pool.failFastAfter
        let errorBox = self.lastConnectError
        let placement = EventLoopPlacement(eventLoopGroup)
        self.connectionPool = ConnectionPool(
            configuration: poolConfiguration,
            idGenerator: ConnectionIDGenerator(),
            requestType: PoolLeaseRequest<MySQLConnection>.self,
            keepAliveBehavior: KeepAlive(keepAliveFrequency: pool.pingInterval),
            observabilityDelegate: NoOpConnectionPoolMetrics(connectionIDType: Int.self),
            clock: ContinuousClock()
        ) { id, _ in
            // the least used event loop: `any()` from the pool's task is a round-robin that other
            // callers shift, which can put every connection on one loop
            let (slot, eventLoop) = placement.take()
            do {
                let connection = try await MySQLConnection.connect(
                    configuration: configuration, id: id, eventLoop: eventLoop, logger: connectionLogger)
                connection.channel.closeFuture.whenComplete { _ in placement.release(slot) }
                errorBox.value.withLock { $0 = nil }
                return ConnectionAndMetadata(connection: connection, maximalStreamsOnConnection: 1)
            } catch {
                placement.release(slot)
                let typed = error as? MySQLError ?? MySQLError(.connectionFailed, message: "could not connect", underlying: error)
                errorBox.record(typed)
                errorBox.onFailure?()
                throw typed
            }
        }
        let waiters = self.waiters
        // weak: the pool's connection factory holds the error box, which holds this hook
        let weakPool = WeakPool(connectionPool)
        lastConnectError.failureHook.withLock { hook in
            hook = {
                guard let pool = weakPool.pool else { return }
                waiters.abandonAll { pool.cancelLeaseConnection($0) }
            }
        }
    }

    /// Runs the pool until cancelled or gracefully shut down.
    public func run() async throws {
        let cache = self.cache
        let shared = Array(self.shared.values)
        // Leases kept unused for a second go back to the pool, whose idle timeout then applies.
        let sweeper = eventLoopGroup.any().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            cache.releaseIdle()
            for lease in shared.flatMap({ $0.releaseIdle() }) { Self.handBack(lease) }
        }
        await cancelWhenGracefulShutdown {
            await withTaskCancellationHandler {
                await self.connectionPool.run()
            } onCancel: {
                // The pool shuts down once every lease is back.
                cache.close()
                for lease in shared.flatMap({ $0.close() }) { Self.handBack(lease) }
            }
        }
        sweeper.cancel()
        cache.close()
        for lease in shared.flatMap({ $0.close() }) { Self.handBack(lease) }
    }

    /// Leases a connection for `body` and returns it to the pool afterwards. A connection whose
    /// command failed with a connection-level error is closed, not reused.
    public func withConnection<Result: Sendable>(_ body: (MySQLConnection) async throws -> Result) async throws -> Result {
        try await admitted {
            let lease = try await takeLease()
            do {
                let result = try await body(lease.connection)
                cache.put(lease)
                return result
            } catch {
                if Self.closesConnection(error) {
                    Self.handBack(lease, closing: true)
                } else {
                    cache.put(lease)
                }
                throw error
            }
        }
    }

    /// Runs `body` counted among the callers using or waiting for the pool; past the pool's
    /// size plus its backlog, fails at once with ``MySQLError/Code/poolExhausted``.
    private func admitted<Result>(_ body: () async throws -> Result) async throws -> Result {
        let limit = max(1, pool.size) + max(0, pool.backlog)
        let count = outstanding.add(1, ordering: .relaxed).newValue
        defer { outstanding.subtract(1, ordering: .relaxed) }
        guard count <= limit else {
            throw MySQLError(.poolExhausted, message: "the pool of \(pool.size) connections and its backlog of \(pool.backlog) are full")
        }
        return try await body()
    }

    /// Returns a lease to the pool; a connection that is closing (`closing`, or already closed)
    /// goes back only once its channel has closed. The pool learns of the close through the
    /// same close future, from a callback registered when the connection was made (so it runs
    /// first): it never leases the closing connection out again.
    static func handBack(_ lease: ConnectionLease<MySQLConnection>, closing: Bool = false) {
        guard closing || lease.connection.isClosed else {
            lease.release()
            return
        }
        lease.connection.close()
        lease.connection.channel.closeFuture.whenComplete { _ in lease.release() }
    }

    /// A kept lease or one from the pool (within the connect timeout), errors mapped.
    private func takeLease() async throws -> ConnectionLease<MySQLConnection> {
        let lease: ConnectionLease<MySQLConnection>
        do {
            if let kept = cache.takePreferringCurrentEventLoop({ $0.channel.eventLoop }) {
                lease = kept
            } else {
                defer { cache.doneWaiting() }
                lease = try await leaseWithTimeout()
            }
        } catch let error as MySQLError {
            throw error
        } catch let error as ConnectionPoolError {
            if error == .poolShutdown {
                throw MySQLError(.shutdown, message: "the client is shut down", underlying: error)
            }
            let last = lastConnectError.value.withLock { $0 }
            throw MySQLError(
                last?.code ?? .connectionFailed, message: "no connection to the server could be made",
                serverError: last?.serverError, underlying: last ?? error)
        }
        return lease
    }

    /// Whether `error` leaves the connection unusable (anything but a server's error reply or a
    /// command refused before sending).
    static func closesConnection(_ error: any Error) -> Bool {
        guard let error = error as? MySQLError else { return true }
        switch error.code {
        case .server, .invalidArgument, .packetTooLarge: return false
        default: return true
        }
    }

    private func leaseWithTimeout() async throws -> ConnectionLease<MySQLConnection> {
        let connectionPool = self.connectionPool
        // A connect attempt that fails while callers wait ends their wait at once (with its error).
        let failuresBefore = lastConnectError.failures.load(ordering: .relaxed)
        let leased = await waiters.lease(
            timeout: TimeAmount(configuration.timeouts.connect),
            on: eventLoopGroup.any(),
            request: { connectionPool.leaseConnection($0) },
            cancel: { connectionPool.cancelLeaseConnection($0) }
        )
        enum Outcome { case lease(ConnectionLease<MySQLConnection>), timedOut, connectFailed }
        let outcome: Outcome
        switch (leased.result, leased.cancellation) {
        case (.success(let lease), _):
            outcome = .lease(lease)
        case (.failure, .timedOut?):
            outcome = lastConnectError.failures.load(ordering: .relaxed) != failuresBefore ? .connectFailed : .timedOut
        case (.failure, .abandoned?):
            outcome = .connectFailed
        case (.failure(let error), _):
            throw error
        }
        switch outcome {
        case .lease(let lease):
            return lease
        case .timedOut, .connectFailed:
            let last = lastConnectError.value.withLock { $0 }
            if case .connectFailed = outcome, let last { throw last }
            throw MySQLError(
                last?.code ?? .timeout, message: "no pooled connection within the connect timeout",
                serverError: last?.serverError, underlying: last)
        }
    }

    /// Runs SQL with the text protocol on a pooled connection.
    @discardableResult
    public func query(_ sql: String) async throws -> MySQLQueryResult {
        try await withConnection { try await $0.query(sql) }
    }

    /// The two sets of shared connections: a statement waits only behind statements of its own
    /// lane, so a write waiting for a row lock never holds up a read.
    public enum Lane: Sendable, Hashable {
        /// Non-locking reads (plain `SELECT`s).
        case reads
        /// Anything else.
        case writes
    }

    /// Runs a prepared statement on a pooled connection: with ``Pool/sharedConnections``, on a
    /// connection of `lane` shared with other callers' statements (pipelined), otherwise on one
    /// of its own. Each statement commits on its own (autocommit); use ``withConnection(_:)``
    /// for a transaction.
    @discardableResult
    public func execute(_ sql: String, binds: [MySQLValue] = [], lane: Lane = .writes) async throws -> MySQLQueryResult {
        guard let shared = shared[lane] else { return try await withConnection { try await $0.execute(sql, binds: binds) } }
        let lease: ConnectionLease<MySQLConnection>
        // false: a lease taken while the client shut down, for this statement alone
        var isShared = true
        switch shared.pick() {
        case .use(let sharedLease):
            lease = sharedLease
        case .full:
            return try await withConnection { try await $0.execute(sql, binds: binds) }
        case .takeNew:
            do {
                lease = try await admitted { try await takeLease() }
            } catch {
                shared.addFailed()
                throw error
            }
            isShared = shared.added(lease)
        }
        do {
            let result = try await lease.connection.execute(sql, binds: binds)
            Self.finished(lease, isShared ? shared : nil, failed: false)
            return result
        } catch {
            Self.finished(lease, isShared ? shared : nil, failed: Self.closesConnection(error))
            throw error
        }
    }

    /// A statement on `lease` is done: its user leaves the shared connection (handed back after
    /// its last user once it failed), or an unshared lease goes back at once.
    private static func finished(_ lease: ConnectionLease<MySQLConnection>, _ shared: MySQLSharedLeases?, failed: Bool) {
        guard let shared else {
            handBack(lease, closing: failed)
            return
        }
        // Closed now, so its other users fail at once rather than wait for their replies.
        if failed { lease.connection.close() }
        if let last = shared.done(lease, failed: failed) { handBack(last, closing: failed) }
    }

    /// The shared connections' ids and users, and the most users one had at once (tests).
    func sharedConnections(_ lane: Lane) -> (entries: [(connectionID: Int, users: Int)], peakUsers: Int) {
        shared[lane]?.snapshot ?? ([], 0)
    }
}

/// The last connect error and the number of failed connects, shared with the pool's
/// connection factory, so requests waiting for a connection fail at once when connecting fails.
/// A weak reference to the pool, for the connect-failure hook.
final class WeakPool: Sendable {
    nonisolated(unsafe) weak var pool: MySQLClient.ConnectionPool?
    init(_ pool: MySQLClient.ConnectionPool) { self.pool = pool }
}

final class ErrorBox: Sendable {
    let value = Mutex<MySQLError?>(nil)
    let failures = Atomic<Int>(0)
    /// Runs after each failed connect attempt (ends the waits of the callers waiting meanwhile).
    let failureHook = Mutex<(@Sendable () -> Void)?>(nil)

    var onFailure: (@Sendable () -> Void)? { failureHook.withLock { $0 } }

    func record(_ error: MySQLError) {
        value.withLock { $0 = error }
        failures.add(1, ordering: .relaxed)
    }
}
