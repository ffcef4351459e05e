import _ConnectionPoolModule
import Logging
import NIOCore
import PostgresNIO
import SessionStorage
import Synchronization

/// The store's connection pool: postgres-nio's `ConnectionPool` (the pool inside
/// `PostgresClient`) of `PostgresConnection`s, with what `PostgresClient` does not offer:
///
/// - the error of a failed connection attempt reaches the waiting callers at once
///   (`PostgresClient` keeps them queued until its circuit breaker trips after 60 s, then fails
///   them without the cause), so a wrong password is `authenticationFailed`, a TLS failure
///   `tls`, a stopped server `connectionFailed`;
/// - a bounded backlog: past `poolSize + backlog` operations in flight, `poolExhausted` at once;
/// - deadlines: the wait for a connection is bounded by the connect timeout, the query phase by
///   send + read timeout (on expiry the connection is closed, as its state is unknown).
final class PostgresConnectionPool: Sendable {
    typealias Pool = ConnectionPool<
        PostgresConnection,
        PostgresConnection.ID,
        ConnectionIDGenerator,
        LeaseRequest,
        Int,
        KeepAlive,
        Observer,
        ContinuousClock
    >

    private let pool: Pool
    private let shared: SharedState
    private let requestIDs = ConnectionIDGenerator()
    private let inFlight = Atomic<Int>(0)
    /// `poolSize + backlog`, or `nil` for an unbounded backlog.
    private let admissionLimit: Int?
    private let leaseTimeout: TimeAmount
    private let queryTimeout: TimeAmount
    private let timerLoop: any EventLoopGroup
    private let logger: Logger

    init(
        connection configuration: PostgresConnection.Configuration,
        poolSize: Int,
        backlog: Int?,
        idleTimeout: Duration,
        keepAlive: Duration?,
        leaseTimeout: Duration,
        queryTimeout: Duration,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) {
        let shared = SharedState()
        self.shared = shared
        self.admissionLimit = backlog.map { poolSize + max(0, $0) }
        self.leaseTimeout = TimeAmount(leaseTimeout)
        self.queryTimeout = TimeAmount(queryTimeout)
        self.timerLoop = eventLoopGroup
        self.logger = logger

        var poolConfiguration = ConnectionPoolConfiguration()
        poolConfiguration.minimumConnectionCount = 0
        poolConfiguration.maximumConnectionSoftLimit = poolSize
        poolConfiguration.maximumConnectionHardLimit = poolSize
        poolConfiguration.idleTimeout = idleTimeout
        // Callers never wait for the breaker: they fail with the connection error at once and
        // are bounded by the lease timeout. The breaker then fails new callers at once while
        // the pool keeps retrying in the background.
        poolConfiguration.circuitBreakerTripAfter = max(leaseTimeout, .seconds(1))

        self.pool = Pool(
            configuration: poolConfiguration,
            idGenerator: ConnectionIDGenerator(),
            requestType: LeaseRequest.self,
            keepAliveBehavior: KeepAlive(keepAliveFrequency: keepAlive, logger: logger),
            observabilityDelegate: Observer(shared: shared, logger: logger),
            clock: ContinuousClock()
        ) { connectionID, _ in
            let connection = try await PostgresConnection.connect(
                on: eventLoopGroup.any(),
                configuration: configuration,
                id: connectionID,
                logger: logger
            )
            return ConnectionAndMetadata(connection: connection, maximalStreamsOnConnection: 1)
        }
    }

    /// Runs the pool until the task is cancelled.
    ///
    /// After cancellation it returns once the pool has closed its connections, or after
    /// `shutdownGrace` at the latest: postgres-nio 1.33.2's pool can keep waiting for a
    /// connection attempt it is retrying and never finish (vapor/postgres-nio#599); the pool's
    /// task is then left to end on its own rather than hanging the caller's shutdown.
    func run(shutdownGrace: Duration = .seconds(5)) async {
        let pool = self.pool
        let finished = OneShot()
        let poolTask = Task {
            await pool.run()
            finished.signal()
        }
        let logger = self.logger
        await withTaskCancellationHandler {
            await finished.wait()
        } onCancel: {
            poolTask.cancel()
            timerLoop.any().scheduleTask(in: TimeAmount(shutdownGrace)) {
                if finished.signal() {
                    logger.warning("the postgres connection pool did not finish shutting down in time; leaving it behind")
                }
            }
        }
    }

    /// Leases a connection, runs `body` on it within the query deadline, and returns it.
    func withConnection<Result>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        if let admissionLimit {
            let now = inFlight.wrappingAdd(1, ordering: .relaxed).newValue
            if now > admissionLimit {
                inFlight.wrappingSubtract(1, ordering: .relaxed)
                throw PostgresErrorMapping.error(
                    .poolExhausted,
                    "every pooled connection is busy and the backlog is full"
                )
            }
        }
        defer {
            if admissionLimit != nil { inFlight.wrappingSubtract(1, ordering: .relaxed) }
        }

        let lease = try await self.lease()
        defer { lease.release() }
        let connection = lease.connection

        let deadline = QueryDeadline()
        let timer = connection.eventLoop.scheduleTask(in: queryTimeout) {
            deadline.fire()
            let _: EventLoopFuture<Void> = connection.close()
        }
        defer { timer.cancel() }
        do {
            return try await body(connection)
        } catch {
            if deadline.fired || connection.isClosed {
                // Hand a closed connection back only once the pool knows it is closed, or the
                // next caller could lease it.
                try? await connection.closeFuture.get()
            }
            if deadline.fired {
                throw PostgresErrorMapping.error(
                    .timeout,
                    "the statement did not complete within the send and read timeouts; the connection was closed",
                    underlying: error
                )
            }
            throw PostgresErrorMapping.map(error, phase: .query)
        }
    }

    private func lease() async throws -> ConnectionLease<PostgresConnection> {
        let waiter = LeaseWaiter(id: requestIDs.next(), shared: shared)
        let pool = self.pool
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let shared = self.shared
                guard waiter.start(continuation) else { return }
                waiter.setCanceller { pool.cancelLeaseConnection(waiter.id) }
                shared.register(waiter)
                let timer = timerLoop.any().scheduleTask(in: leaseTimeout) {
                    if waiter.fail(Self.leaseTimeoutError(shared.connectFailure())) {
                        pool.cancelLeaseConnection(waiter.id)
                    }
                }
                waiter.setTimer(timer)
                // A caller failed in the meantime (cancelled, or a connection attempt failed)
                // must not leave a request queued in the pool.
                guard waiter.isWaiting else { return }
                pool.leaseConnection(LeaseRequest(id: waiter.id, waiter: waiter))
            }
        } onCancel: {
            if waiter.fail(PostgresErrorMapping.error(.timeout, "the operation was cancelled while waiting for a connection")) {
                pool.cancelLeaseConnection(waiter.id)
            }
        }
    }

    private static func leaseTimeoutError(_ connectFailure: (any Error)?) -> SessionStoreError {
        if let connectFailure {
            return PostgresErrorMapping.map(connectFailure, phase: .connect)
        }
        return PostgresErrorMapping.error(.timeout, "no pooled connection became available within the connect timeout")
    }
}

/// State shared by the pool's observer and the waiting callers.
final class SharedState: Sendable {
    private struct Inner {
        var waiters: [Int: LeaseWaiter] = [:]
        var openConnections = 0
        var lastConnectError: (any Error)?
    }

    private let inner = Mutex(Inner())

    func register(_ waiter: LeaseWaiter) {
        inner.withLock { $0.waiters[waiter.id] = waiter }
    }

    func unregister(_ id: Int) {
        _ = inner.withLock { $0.waiters.removeValue(forKey: id) }
    }

    /// The error of the last connection attempt when it failed and no connection is open.
    func connectFailure() -> (any Error)? {
        inner.withLock { $0.openConnections == 0 ? $0.lastConnectError : nil }
    }

    func connectSucceeded() {
        inner.withLock {
            $0.openConnections += 1
            $0.lastConnectError = nil
        }
    }

    func connectionClosed() {
        inner.withLock { $0.openConnections = max(0, $0.openConnections - 1) }
    }

    /// Records a failed attempt; with no connection open, every waiting caller fails with it.
    func connectFailed(_ error: any Error) {
        let doomed: [LeaseWaiter] = inner.withLock {
            $0.lastConnectError = error
            guard $0.openConnections == 0 else { return [] }
            let waiters = Array($0.waiters.values)
            $0.waiters.removeAll()
            return waiters
        }
        guard !doomed.isEmpty else { return }
        let mapped = PostgresErrorMapping.map(error, phase: .connect)
        for waiter in doomed where waiter.fail(mapped) {
            waiter.cancelPoolRequest()
        }
    }
}

/// One caller waiting for a connection; resumed exactly once by whichever comes first: the
/// pool, the lease timeout, a failed connection attempt, or task cancellation.
final class LeaseWaiter: Sendable {
    private enum State {
        case initial
        case waiting(CheckedContinuation<ConnectionLease<PostgresConnection>, any Error>)
        case done
    }

    private struct Inner {
        var state: State = .initial
        var timer: Scheduled<Void>?
        var canceller: (@Sendable () -> Void)?
    }

    let id: Int
    private let shared: SharedState
    private let inner = Mutex(Inner())

    init(id: Int, shared: SharedState) {
        self.id = id
        self.shared = shared
    }

    /// Stores the continuation; `false` (after resuming it with an error) when the caller was
    /// cancelled before.
    func start(_ continuation: CheckedContinuation<ConnectionLease<PostgresConnection>, any Error>) -> Bool {
        let started = inner.withLock { inner -> Bool in
            guard case .initial = inner.state else { return false }
            inner.state = .waiting(continuation)
            return true
        }
        if !started {
            continuation.resume(throwing: PostgresErrorMapping.error(.timeout, "the operation was cancelled while waiting for a connection"))
        }
        return started
    }

    func setTimer(_ timer: Scheduled<Void>) {
        let keep = inner.withLock { inner -> Bool in
            guard case .waiting = inner.state else { return false }
            inner.timer = timer
            return true
        }
        if !keep { timer.cancel() }
    }

    func setCanceller(_ canceller: @escaping @Sendable () -> Void) {
        inner.withLock { $0.canceller = canceller }
    }

    var isWaiting: Bool {
        inner.withLock { inner in
            if case .waiting = inner.state { return true }
            return false
        }
    }

    func cancelPoolRequest() {
        inner.withLock { $0.canceller }?()
    }

    /// The pool's answer.
    func complete(_ result: Result<ConnectionLease<PostgresConnection>, ConnectionPoolError>) {
        let (continuation, timer) = finish()
        guard let continuation else {
            // The caller gave up already: hand a late connection straight back.
            if case .success(let lease) = result { lease.release() }
            return
        }
        timer?.cancel()
        switch result {
        case .success(let lease):
            continuation.resume(returning: lease)
        case .failure(let error):
            continuation.resume(throwing: PostgresErrorMapping.poolError(error, lastConnectError: shared.connectFailure()))
        }
    }

    /// Fails the caller unless it was resumed already; `true` when this call resumed it.
    @discardableResult
    func fail(_ error: SessionStoreError) -> Bool {
        let (continuation, timer) = finish()
        guard let continuation else {
            // Cancelled before it started waiting: `start` will see `.done`.
            inner.withLock { if case .initial = $0.state { $0.state = .done } }
            return false
        }
        timer?.cancel()
        continuation.resume(throwing: error)
        return true
    }

    private func finish() -> (CheckedContinuation<ConnectionLease<PostgresConnection>, any Error>?, Scheduled<Void>?) {
        let result = inner.withLock { inner -> (CheckedContinuation<ConnectionLease<PostgresConnection>, any Error>?, Scheduled<Void>?) in
            guard case .waiting(let continuation) = inner.state else { return (nil, nil) }
            inner.state = .done
            let timer = inner.timer
            inner.timer = nil
            return (continuation, timer)
        }
        if result.0 != nil { shared.unregister(id) }
        return result
    }
}

/// A lease request as the pool sees it.
struct LeaseRequest: ConnectionRequestProtocol {
    typealias Connection = PostgresConnection

    let id: Int
    let waiter: LeaseWaiter

    func complete(with result: Result<ConnectionLease<PostgresConnection>, ConnectionPoolError>) {
        waiter.complete(result)
    }
}

/// A one-time signal that one task waits for.
final class OneShot: Sendable {
    private enum State {
        case pending(CheckedContinuation<Void, Never>?)
        case signalled
    }

    private let state = Mutex(State.pending(nil))

    /// Signals; `true` when this call was the first.
    @discardableResult
    func signal() -> Bool {
        let (first, continuation) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard case .pending(let continuation) = state else { return (false, nil) }
            state = .signalled
            return (true, continuation)
        }
        continuation?.resume()
        return first
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                guard case .pending = state else { return true }
                state = .pending(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

/// Whether the query deadline passed (and closed the connection).
final class QueryDeadline: Sendable {
    private let state = Atomic<Bool>(false)

    func fire() { state.store(true, ordering: .relaxed) }

    var fired: Bool { state.load(ordering: .relaxed) }
}

/// `SELECT 1` on idle connections.
struct KeepAlive: ConnectionKeepAliveBehavior {
    typealias Connection = PostgresConnection

    let keepAliveFrequency: Duration?
    let logger: Logger

    func runKeepAlive(for connection: PostgresConnection) async throws {
        _ = try await connection.query("SELECT 1", logger: logger).collect()
    }
}

/// Connection lifecycle events: counts open connections, records failed attempts, logs at debug.
struct Observer: ConnectionPoolObservabilityDelegate {
    typealias ConnectionID = PostgresConnection.ID

    let shared: SharedState
    let logger: Logger

    func startedConnecting(id: ConnectionID) {
        logger.debug("postgres connecting", metadata: [PostgresSessionStore.LoggingKeys.connectionID: "\(id)"])
    }

    func connectFailed(id: ConnectionID, error: any Error) {
        logger.debug(
            "postgres connection attempt failed",
            metadata: [
                PostgresSessionStore.LoggingKeys.connectionID: "\(id)",
                SessionLoggingKeys.errorCode: "\(PostgresErrorMapping.map(error, phase: .connect).code)",
            ]
        )
        shared.connectFailed(error)
    }

    func connectSucceeded(id: ConnectionID, streamCapacity: UInt16) {
        logger.debug("postgres connected", metadata: [PostgresSessionStore.LoggingKeys.connectionID: "\(id)"])
        shared.connectSucceeded()
    }

    func connectionClosed(id: ConnectionID, error: (any Error)?) {
        logger.debug("postgres connection closed", metadata: [PostgresSessionStore.LoggingKeys.connectionID: "\(id)"])
        shared.connectionClosed()
    }

    func connectionUtilizationChanged(id: ConnectionID, streamsUsed: UInt16, streamCapacity: UInt16) {}

    func keepAliveTriggered(id: ConnectionID) {}

    func keepAliveSucceeded(id: ConnectionID) {}

    func keepAliveFailed(id: ConnectionID, error: any Error) {
        logger.debug("postgres keep-alive failed", metadata: [PostgresSessionStore.LoggingKeys.connectionID: "\(id)"])
    }

    func connectionClosing(id: ConnectionID) {}

    func requestQueueDepthChanged(_ newDepth: Int) {}
}
