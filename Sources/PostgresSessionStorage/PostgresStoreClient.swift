import _ConnectionPoolModule
import _PoolLease
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import SessionStorage
import Synchronization

/// The store's connection pool: postgres-nio's `_ConnectionPoolModule` pool of
/// `PostgresConnection`s (wrapped in ``StoreConnection``, which caches the prepared statements
/// of each connection), with the limits of the storage contract on top:
///
/// - admission: past `poolSize + backlog` operations in flight an operation fails at once with
///   `poolExhausted`;
/// - the wait for a pooled connection is bounded by the connect timeout (a timer on an event
///   loop that cancels the pool request: no child task, no sleeping task). A connection
///   attempt that fails for a reason waiting will not cure (a wrong password is
///   `authenticationFailed`, a TLS failure `tls`, a stopped server `connectionFailed`) ends the
///   wait of every caller at once with that error, unless leases keep succeeding (the pool is
///   only busy); a wait that times out after failed attempts reports the last attempt's error;
///   once attempts have failed for the connect timeout the pool's circuit breaker fails new
///   callers at once (with that error) while it keeps retrying in the background;
/// - the query phase is bounded by the send + read timeouts; when they pass the connection is
///   closed (its state is unknown) and the operation fails with `timeout`. Every statement goes
///   through ``LeasedConnection``, which also ends when the connection closes.
///
/// Nothing outlives an operation: the caller's own task leases (from the leases kept between
/// operations, or resumed by the pool), runs the statements (resumed by the connection's event
/// loop) and hands the connection back. A caller that runs on one of the group's event loops
/// (NIO's event loops as Swift concurrency's global executor) gets a kept connection of its own
/// event loop when there is one, and its statements are then written without a thread hop.
final class PostgresStoreClient: Sendable {
    typealias Pool = ConnectionPool<
        StoreConnection, Int, ConnectionIDGenerator, PoolLeaseRequest<StoreConnection>, Int,
        NoOpKeepAliveBehavior<StoreConnection>, NoOpConnectionPoolMetrics<Int>, ContinuousClock
    >

    private let pool: Pool
    private let waiters: PoolLeaseWaiters<StoreConnection>
    /// Leases kept between operations (see `PoolLeaseCache`): most operations never touch the
    /// pool.
    private let cache = PoolLeaseCache<StoreConnection>(maximumIdle: .seconds(1)) { $0.postgres.isClosed }
    private let connectFailures: ConnectFailures
    private let inFlight = Atomic<Int>(0)
    private let leases: RecentLeases
    /// `poolSize + backlog`, or `nil` for an unbounded backlog.
    private let admissionLimit: Int?
    private let leaseTimeout: TimeAmount
    private let queryTimeout: TimeAmount
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger

    init(
        connection configuration: PostgresConnection.Configuration,
        poolSize: Int,
        backlog: Int?,
        idleTimeout: Duration,
        leaseTimeout: Duration,
        queryTimeout: Duration,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) {
        self.admissionLimit = backlog.map { poolSize + max(0, $0) }
        self.leaseTimeout = TimeAmount(leaseTimeout)
        self.queryTimeout = TimeAmount(queryTimeout)
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        let waiters = PoolLeaseWaiters<StoreConnection>()
        let connectFailures = ConnectFailures()
        let leases = RecentLeases()
        let placement = EventLoopPlacement(eventLoopGroup)
        self.waiters = waiters
        self.connectFailures = connectFailures
        self.leases = leases

        var poolConfiguration = ConnectionPoolConfiguration()
        poolConfiguration.minimumConnectionCount = 0
        poolConfiguration.maximumConnectionSoftLimit = poolSize
        poolConfiguration.maximumConnectionHardLimit = poolSize
        poolConfiguration.idleTimeout = idleTimeout
        poolConfiguration.circuitBreakerTripAfter = leaseTimeout
        self.pool = Pool(
            configuration: poolConfiguration,
            idGenerator: ConnectionIDGenerator(),
            requestType: PoolLeaseRequest<StoreConnection>.self,
            keepAliveBehavior: NoOpKeepAliveBehavior(connectionType: StoreConnection.self),
            observabilityDelegate: NoOpConnectionPoolMetrics(connectionIDType: Int.self),
            clock: ContinuousClock()
        ) { id, pool in
            let (slot, eventLoop) = placement.take()
            do {
                let connection = try await PostgresConnection.connect(
                    on: eventLoop, configuration: configuration, id: id, logger: logger)
                connection.closeFuture.whenComplete { _ in placement.release(slot) }
                return ConnectionAndMetadata(connection: StoreConnection(connection), maximalStreamsOnConnection: 1)
            } catch {
                placement.release(slot)
                let mapped = PostgresErrorMapping.map(error, phase: .connect)
                connectFailures.record(mapped)
                // Waiting will not cure it, and no lease succeeds lately (the pool is not merely
                // busy): every waiting caller fails now, with this error.
                if Self.isDefinite(mapped), !leases.recent() {
                    waiters.abandonAll { pool.cancelLeaseConnection($0) }
                }
                throw error
            }
        }
    }

    /// Runs the pool until the task is cancelled or a graceful shutdown is requested. Returns
    /// once every connection is closed.
    func run() async {
        let cache = self.cache
        // Leases kept unused for a second go back to the pool, whose idle timeout then applies.
        let sweeper = eventLoopGroup.any().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            cache.releaseIdle()
        }
        await cancelWhenGracefulShutdown {
            await withTaskCancellationHandler {
                await self.pool.run()
            } onCancel: {
                // The pool shuts down once every lease is back.
                cache.close()
            }
        }
        sweeper.cancel()
        cache.close()
    }

    /// Errors that waiting for the pool will not cure: waiting callers fail at once with them.
    static func isDefinite(_ error: SessionStoreError) -> Bool {
        [.authenticationFailed, .tls, .connectionFailed].contains(error.code)
    }

    /// Leases a connection (waiting at most the lease timeout), runs `body` on it within the
    /// query deadline, and returns it to the pool.
    func withConnection<Result: Sendable>(
        _ body: (LeasedConnection) async throws -> Result
    ) async throws -> Result {
        if let admissionLimit {
            let now = inFlight.wrappingAdd(1, ordering: .relaxed).newValue
            if now > admissionLimit {
                inFlight.wrappingSubtract(1, ordering: .relaxed)
                throw PostgresErrorMapping.error(.poolExhausted, "every pooled connection is busy and the backlog is full")
            }
        }
        defer {
            if admissionLimit != nil { inFlight.wrappingSubtract(1, ordering: .relaxed) }
        }

        let lease: ConnectionLease<StoreConnection>
        if let kept = cache.takePreferringCurrentEventLoop({ $0.postgres.eventLoop }) {
            lease = kept
        } else {
            defer { cache.doneWaiting() }
            lease = try await self.lease()
        }
        leases.record()
        let connection = lease.connection
        do {
            let result = try await body(LeasedConnection(connection: connection, deadline: .now() + queryTimeout, logger: logger))
            cache.put(lease)
            return result
        } catch {
            // A statement failed on a closed or closing connection (the server may have said why
            // before the socket closed): close it and hand it back only once the pool has seen
            // the close (its close future), or the next caller could lease the dead connection.
            let code = (error as? SessionStoreError)?.code
            if connection.postgres.isClosed || code == .connectionClosed || code == .timeout {
                let _: EventLoopFuture<Void> = connection.postgres.close()
                try? await connection.postgres.closeFuture.get()
            }
            cache.put(lease)
            throw error
        }
    }

    private func lease() async throws -> ConnectionLease<StoreConnection> {
        let pool = self.pool
        let failuresBefore = connectFailures.count
        let outcome = await waiters.lease(
            timeout: leaseTimeout,
            on: eventLoopGroup.any(),
            request: { pool.leaseConnection($0) },
            cancel: { pool.cancelLeaseConnection($0) }
        )
        switch (outcome.result, outcome.cancellation) {
        case (.success(let lease), _):
            return lease
        case (.failure, .abandoned?):
            throw connectFailures.last
                ?? PostgresErrorMapping.error(.connectionFailed, "no connection to PostgreSQL could be made")
        case (.failure, .timedOut?):
            if connectFailures.count != failuresBefore, let last = connectFailures.last {
                throw last
            }
            throw PostgresErrorMapping.error(
                .timeout, "no pooled connection became available within the connect timeout (is run() running?)")
        case (.failure, .taskCancelled?):
            throw PostgresErrorMapping.error(.timeout, "the operation was cancelled", underlying: CancellationError())
        case (.failure(let error), nil):
            throw PostgresErrorMapping.poolError(error, lastConnectError: connectFailures.last)
        }
    }
}

/// A pooled PostgreSQL connection, the statements prepared on it and the statement in flight.
///
/// Its mutable state is only read and written on the connection's event loop (every statement
/// of ``LeasedConnection`` is started there), hence `@unchecked Sendable`.
///
/// A statement's result reaches its caller with as little work per statement as postgres-nio's
/// public API allows: the rows are collected here (one statement at a time per connection) by
/// the row callback of `PreparedQuery.execute(_:_:)`, and the statement's one completion
/// callback resumes the caller, retries a stale statement or maps the error; the deadline is
/// one timer per connection that resumes the same continuation. No future is chained on top of
/// postgres-nio's own.
final class StoreConnection: PooledConnection, @unchecked Sendable {
    /// A statement to run.
    enum Statement: Sendable {
        /// SQL prepared once per connection (a named statement), with its parameters.
        case prepared(String, [PostgresData])
        /// A one-off statement (unnamed; migrations).
        case query(PostgresQuery, Logger)
    }

    /// The statement in flight: its number, deadline and caller.
    private struct Pending {
        var id: UInt64
        var deadline: NIODeadline
        var continuation: UnsafeContinuation<[PostgresRow], any Error>
    }

    /// The postgres-nio connection.
    let postgres: PostgresConnection
    /// SQL text → the statement prepared for it on this connection. Event loop only.
    private var statements: [String: PreparedQuery] = [:]
    /// The statement in flight (one at a time: the lease holder's). Event loop only.
    private var pending: Pending?
    /// The rows the statement in flight returned so far. Event loop only.
    private var rows: [PostgresRow] = []
    private var statementCount: UInt64 = 0
    /// One timer per connection, not per statement: when it fires it expires the statement in
    /// flight if its deadline passed, or re-arms for that statement's deadline. Event loop only.
    private var watchdog: Scheduled<Void>?
    private var watchdogAt = NIODeadline.distantFuture

    init(_ postgres: PostgresConnection) {
        self.postgres = postgres
        postgres.closeFuture.whenComplete { _ in
            self.watchdog?.cancel()
            self.watchdog = nil
        }
    }

    var id: Int { postgres.id }

    func onClose(_ closure: @escaping @Sendable ((any Error)?) -> Void) {
        postgres.closeFuture.whenComplete { _ in closure(nil) }
    }

    func close() {
        let _: EventLoopFuture<Void> = postgres.close()
    }

    /// How many statements are prepared on this connection (event loop only; for tests).
    var preparedCount: Int {
        postgres.eventLoop.preconditionInEventLoop()
        return statements.count
    }

    /// Runs `statement` and resumes `continuation` with its rows, or with an error when it
    /// fails or `deadline` passes first (which also closes the connection, as its state is then
    /// unknown). Must be called on the connection's event loop.
    ///
    /// The statement is written only after checking here that the connection is open:
    /// postgres-nio 1.33.2 writes a request with no write promise, so on a channel that has
    /// already closed the write is dropped and the request's own promise never completes. On
    /// its own event loop a write goes through the pipeline at once, and while the channel is
    /// active its handlers are all in place, so the request reaches postgres-nio's handler,
    /// which answers it even if the connection closes next.
    func start(_ statement: Statement, deadline: NIODeadline, continuation: UnsafeContinuation<[PostgresRow], any Error>) {
        postgres.eventLoop.preconditionInEventLoop()
        guard !postgres.isClosed else {
            continuation.resume(throwing: PostgresErrorMapping.error(
                .connectionClosed, "the connection closed before the statement was sent"))
            return
        }
        statementCount &+= 1
        pending = Pending(id: statementCount, deadline: deadline, continuation: continuation)
        if watchdog == nil || watchdogAt > deadline {
            watchdog?.cancel()
            armWatchdog(at: deadline)
        }
        send(statement, id: statementCount, retry: true)
    }

    /// Writes `statement` (preparing it first on this connection's first use of its SQL).
    ///
    /// A statement the server no longer knows (`DEALLOCATE`, a pooler's `DISCARD ALL`: SQLSTATE
    /// 26000) or whose plan no longer fits (a changed table: 0A000 "cached plan must not change
    /// result type") is prepared again and run once more (`retry`); nothing ran the first
    /// time, as the server refuses it before executing.
    private func send(_ statement: Statement, id: UInt64, retry: Bool) {
        rows.removeAll(keepingCapacity: true)
        let done: EventLoopFuture<Void>
        switch statement {
        case .prepared(let sql, let binds):
            if let prepared = statements[sql] {
                done = prepared.execute(binds) { self.rows.append($0) }
            } else {
                done = postgres.prepare(query: sql).flatMap { prepared in
                    self.statements[sql] = prepared
                    return prepared.execute(binds) { self.rows.append($0) }
                }
            }
        case .query(let query, let logger):
            done = postgres.query(query, logger: logger) { self.rows.append($0) }.map { _ in }
        }
        done.whenComplete { result in
            self.finished(statement, id: id, retry: retry, result)
        }
    }

    private func finished(_ statement: Statement, id: UInt64, retry: Bool, _ result: Result<Void, any Error>) {
        // The deadline ended this statement already.
        guard let pending, pending.id == id else { return }
        switch result {
        case .success:
            self.pending = nil
            let rows = self.rows
            self.rows = []
            pending.continuation.resume(returning: rows)
        case .failure(let error):
            if retry, case .prepared(let sql, _) = statement, Self.isStale(error), !postgres.isClosed {
                statements[sql] = nil
                send(statement, id: id, retry: false)
                return
            }
            self.pending = nil
            self.rows = []
            pending.continuation.resume(throwing: PostgresErrorMapping.map(error, phase: .query, closed: postgres.isClosed))
        }
    }

    private func armWatchdog(at deadline: NIODeadline) {
        watchdogAt = deadline
        watchdog = postgres.eventLoop.scheduleTask(deadline: deadline) {
            self.watchdog = nil
            self.watchdogAt = .distantFuture
            guard let pending = self.pending else { return }
            guard pending.deadline <= .now() else {
                self.armWatchdog(at: pending.deadline)
                return
            }
            self.pending = nil
            // Fail only once the channel is closed, so the pool has dropped the connection
            // before the lease is handed back.
            let _: EventLoopFuture<Void> = self.postgres.close()
            self.postgres.closeFuture.whenComplete { _ in
                pending.continuation.resume(throwing: PostgresErrorMapping.error(
                    .timeout, "the statement did not complete within the send and read timeouts; the connection was closed"))
            }
        }
    }

    /// Whether the server refused a prepared statement it no longer has or can no longer run.
    static func isStale(_ error: any Error) -> Bool {
        guard case .server(let message) = error as? PostgresError else { return false }
        switch message.fields[.sqlState] {
        case "26000": return true
        case "0A000": return message.fields[.message]?.contains("cached plan") == true
        default: return false
        }
    }
}

/// A statement's parameters, in the wire form of the prepared statement API.
struct StatementBinds: Sendable {
    private(set) var values: [PostgresData] = []

    init(capacity: Int) {
        values.reserveCapacity(capacity)
    }

    /// Appends a value in its binary form.
    mutating func append<Value: PostgresNonThrowingEncodable>(_ value: Value) {
        var buffer = ByteBuffer()
        value.encode(into: &buffer, context: .default)
        values.append(PostgresData(type: Value.psqlType, formatCode: Value.psqlFormat, value: buffer))
    }
}

/// A connection leased for one operation, whose statements all finish by `deadline`.
///
/// Every statement returns on the first of: its result, the deadline (which also closes the
/// connection). Statements are started on the connection's event loop (see
/// ``StoreConnection/start(_:deadline:continuation:)``), at once when the caller already runs
/// there.
struct LeasedConnection: Sendable {
    let connection: StoreConnection
    let deadline: NIODeadline
    let logger: Logger

    init(connection: StoreConnection, deadline: NIODeadline, logger: Logger) {
        self.connection = connection
        self.deadline = deadline
        self.logger = logger
    }

    /// The postgres-nio connection.
    var postgres: PostgresConnection { connection.postgres }

    /// Runs `sql` as a prepared statement of this connection with `binds`; returns its rows.
    func execute(prepared sql: String, _ binds: StatementBinds) async throws -> [PostgresRow] {
        try await run(.prepared(sql, binds.values))
    }

    /// Runs `query` unprepared (one-off statements: migrations) and returns its rows.
    @discardableResult
    func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await run(.query(query, logger))
    }

    /// Runs `query` unprepared and ignores its rows.
    func execute(_ query: PostgresQuery) async throws {
        try await self.query(query)
    }

    private func run(_ statement: StoreConnection.Statement) async throws -> [PostgresRow] {
        let connection = self.connection
        let deadline = self.deadline
        return try await withUnsafeThrowingContinuation { continuation in
            let eventLoop = connection.postgres.eventLoop
            if eventLoop.inEventLoop {
                connection.start(statement, deadline: deadline, continuation: continuation)
            } else {
                eventLoop.execute {
                    connection.start(statement, deadline: deadline, continuation: continuation)
                }
            }
        }
    }
}


/// When a lease last succeeded: while leases keep succeeding, a failed connection attempt
/// says the server is refusing more connections, not that it is down, and waiting callers
/// keep waiting for a busy connection.
final class RecentLeases: Sendable {
    private let last = Atomic<Int64>(Int64.min / 2)
    private static let window: Int64 = 1_000_000_000

    func record() {
        last.store(Self.now(), ordering: .relaxed)
    }

    func recent() -> Bool {
        Self.now() - last.load(ordering: .relaxed) < Self.window
    }

    private static func now() -> Int64 {
        Int64(NIODeadline.now().uptimeNanoseconds)
    }
}

/// The error of the last failed connection attempt and how many attempts failed.
final class ConnectFailures: Sendable {
    private let state = Mutex<(count: Int, last: SessionStoreError?)>((0, nil))

    func record(_ error: SessionStoreError) {
        state.withLock { $0 = ($0.count + 1, error) }
    }

    var count: Int { state.withLock { $0.count } }
    var last: SessionStoreError? { state.withLock { $0.last } }
}
