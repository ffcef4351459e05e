import _ConnectionPoolModule
import Logging
import NIOCore
import PostgresNIO
import SessionStorage
import Synchronization

/// postgres-nio's `PostgresClient` (its connection pool and idle timeout; keep-alive pings off, see
/// `PostgresSessionStore.clientConfiguration`), with the limits of the storage contract on top:
///
/// - admission: past `poolSize + backlog` operations in flight an operation fails at once with
///   `poolExhausted`;
/// - the wait for a pooled connection is bounded by the connect timeout. `PostgresClient` keeps
///   a caller queued while its connection attempts fail until its circuit breaker trips (60 s),
///   and never says why; so a caller that has waited a third of the connect timeout (2 s at
///   most) while no lease succeeded lately, or whose wait times out, or who meets the open
///   breaker, has the store connect once itself (one attempt shared by every caller that needs
///   it, remembered for a second) and fails with that attempt's error when waiting will not cure
///   it: a wrong password is `authenticationFailed`, a TLS failure `tls`, a stopped server
///   `connectionFailed`;
/// - the query phase is bounded by the send + read timeouts; when they pass the connection is
///   closed (its state is unknown) and the operation fails with `timeout`. Every statement goes
///   through ``LeasedConnection/query(_:)``, which also ends when the connection closes.
///
/// Every operation is structured: its lease and its deadline are two child tasks of the caller,
/// so nothing outlives the call. (One upstream window remains: `ConnectionPool.leaseConnection()`
/// in postgres-nio 1.33.2 checks for cancellation before it queues its request, so a lease
/// cancelled in between stays queued until a connection frees up, the circuit breaker trips or
/// the pool shuts down. The call then returns late, never not at all.)
final class PostgresStoreClient: Sendable {
    private let client: PostgresClient
    private let diagnosis: ConnectDiagnosis
    private let inFlight = Atomic<Int>(0)
    private let leases = RecentLeases()
    /// `poolSize + backlog`, or `nil` for an unbounded backlog.
    private let admissionLimit: Int?
    private let leaseTimeout: Duration
    private let queryTimeout: TimeAmount
    private let logger: Logger

    init(
        client configuration: PostgresClient.Configuration,
        probe probeConfiguration: PostgresConnection.Configuration,
        poolSize: Int,
        backlog: Int?,
        leaseTimeout: Duration,
        queryTimeout: Duration,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) {
        self.client = PostgresClient(configuration: configuration, eventLoopGroup: eventLoopGroup, backgroundLogger: logger)
        self.diagnosis = ConnectDiagnosis(configuration: probeConfiguration, eventLoopGroup: eventLoopGroup, logger: logger)
        self.admissionLimit = backlog.map { poolSize + max(0, $0) }
        self.leaseTimeout = leaseTimeout
        self.queryTimeout = TimeAmount(queryTimeout)
        self.logger = logger
    }

    /// Runs the client's pool until the task is cancelled or a graceful shutdown is requested.
    /// Returns once every connection is closed.
    func run() async {
        await client.run()
    }

    /// Leases a connection (waiting at most the lease timeout), runs `body` on it within the
    /// query deadline, and returns it to the pool.
    func withConnection<Result: Sendable>(
        _ body: @escaping @Sendable (LeasedConnection) async throws -> Result
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

        let phase = LeasePhase()
        let client = self.client
        let queryTimeout = self.queryTimeout
        let logger = self.logger
        let leaseTimeout = self.leaseTimeout
        let diagnosis = self.diagnosis
        let leases = self.leases
        // A caller that has waited this long while no lease succeeded lately asks why at once,
        // rather than waiting out the whole connect timeout for a wrong password or a server
        // that is down.
        let diagnoseAfter = min(.seconds(2), leaseTimeout / 3)
        let outcome = await withTaskGroup(of: Step<Result>.self) { group -> Swift.Result<Result, any Error>? in
            group.addTask {
                do {
                    let value = try await client.withConnection { connection in
                        // The lease deadline passed first: the caller is gone, hand it back.
                        guard phase.leased() else { throw CancellationError() }
                        leases.record()
                        return try await Self.run(body, on: connection, deadline: .now() + queryTimeout, logger: logger)
                    }
                    return .finished(.success(value))
                } catch {
                    return .finished(.failure(error))
                }
            }
            group.addTask {
                do {
                    try await Task.sleep(for: diagnoseAfter)
                    return .diagnoseNow
                } catch {
                    return .timerCancelled
                }
            }
            while let step = await group.next() {
                switch step {
                case .finished(let result):
                    group.cancelAll()
                    return result
                case .diagnoseNow:
                    group.addTask {
                        do {
                            try await Task.sleep(for: leaseTimeout - diagnoseAfter)
                            return .leaseDeadline
                        } catch {
                            return .timerCancelled
                        }
                    }
                    // Leases succeed (the pool is only busy): no need to ask.
                    guard !leases.recent() else { continue }
                    group.addTask { .diagnosed(await diagnosis.connectFailure()) }
                case .diagnosed(let failure):
                    // A connection attempt fails for a reason that waiting will not cure.
                    if let failure, ConnectDiagnosis.isDefinite(failure), phase.abandon() {
                        group.cancelAll()
                        return .failure(failure)
                    }
                case .leaseDeadline:
                    // Still waiting for a connection: give up (cancelling the lease request).
                    // Already leased: the query deadline bounds the rest.
                    if phase.abandon() {
                        group.cancelAll()
                        return nil
                    }
                case .timerCancelled:
                    continue
                }
            }
            return nil
        }

        switch outcome {
        case .success(let value):
            return value
        case .failure(let error):
            if case .connectionCreationCircuitBreakerTripped = error as? ConnectionPoolError {
                throw await diagnosis.error(reason: "connection attempts keep failing")
            }
            throw PostgresErrorMapping.map(error, phase: .query)
        case nil:
            throw await diagnosis.error(reason: "no pooled connection became available within the connect timeout")
        }
    }

    /// Runs `body` on a leased connection. When it fails on a closed connection, waits until the
    /// pool has seen the close (its close future) before the lease is handed back, or the next
    /// caller could lease the dead connection.
    private static func run<Result>(
        _ body: (LeasedConnection) async throws -> Result,
        on connection: PostgresConnection,
        deadline: NIODeadline,
        logger: Logger
    ) async throws -> Result {
        do {
            return try await body(LeasedConnection(connection: connection, deadline: deadline, logger: logger))
        } catch {
            if connection.isClosed {
                try? await connection.closeFuture.get()
            }
            throw error
        }
    }

    private enum Step<Value: Sendable>: Sendable {
        case finished(Swift.Result<Value, any Error>)
        case diagnoseNow
        case diagnosed(SessionStoreError?)
        case leaseDeadline
        case timerCancelled
    }
}

/// A connection leased for one operation, whose statements all finish by `deadline`.
///
/// Every statement goes through ``query(_:)``, which returns on the first of: the statement's
/// result or the deadline (which also closes the connection, as its state is then unknown).
/// postgres-nio 1.33.2's `PostgresConnection.query` writes its request with no write promise:
/// on a connection whose channel has already closed (the server went away between the lease
/// and the write), the write is dropped by the channel and the query's own promise is never
/// completed, so awaiting it alone never returns. ``query(_:)`` therefore writes only from the
/// connection's event loop, after checking there that the channel is still active.
struct LeasedConnection: Sendable {
    let connection: PostgresConnection
    let deadline: NIODeadline
    let logger: Logger

    /// Runs `query` and collects its rows.
    func query(_ query: PostgresQuery) async throws -> PostgresQueryResult {
        let eventLoop = connection.eventLoop
        let outcome = eventLoop.makePromise(of: PostgresQueryResult.self)
        let settled = Settled()
        let connection = self.connection
        let timer = eventLoop.scheduleTask(deadline: deadline) {
            guard settled.settle() else { return }
            // Fail only once the channel is closed, so the pool has dropped the connection
            // before the lease is handed back.
            let _: EventLoopFuture<Void> = connection.close()
            connection.closeFuture.whenComplete { _ in
                outcome.fail(PostgresErrorMapping.error(
                    .timeout, "the statement did not complete within the send and read timeouts; the connection was closed"))
            }
        }
        // The statement is written from the connection's event loop, after checking there that
        // the channel is still active: on its own event loop a write goes through the pipeline
        // at once, and while the channel is active its handlers are all in place, so the
        // statement reaches postgres-nio's handler, which answers it even if the connection
        // closes next. (A write issued from another thread could arrive after the close and
        // be dropped, with the statement's promise never completed.)
        let logger = self.logger
        eventLoop.flatSubmit { () -> EventLoopFuture<PostgresQueryResult> in
            guard !connection.isClosed else {
                return eventLoop.makeFailedFuture(
                    PostgresErrorMapping.error(.connectionClosed, "the connection closed before the statement was sent"))
            }
            return connection.query(query, logger: logger)
        }.whenComplete { result in
            guard settled.settle() else { return }
            timer.cancel()
            switch result {
            case .success(let rows): outcome.succeed(rows)
            case .failure(let error): outcome.fail(PostgresErrorMapping.map(error, phase: .query))
            }
        }
        return try await outcome.futureResult.get()
    }

    /// Runs `query` and ignores its rows.
    func execute(_ query: PostgresQuery) async throws {
        _ = try await self.query(query)
    }
}

/// Whether one of several racing callbacks has completed a promise already.
final class Settled: Sendable {
    private let state = Atomic<Bool>(false)

    /// `true` for the first caller only.
    func settle() -> Bool {
        state.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
}

/// When a lease last succeeded: while leases keep succeeding, a caller that waits is waiting for
/// a busy pool, not for a failing server.
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

/// Who got there first: the pool with a connection, or the lease deadline.
final class LeasePhase: Sendable {
    private static let waiting = 0
    private static let holding = 1
    private static let abandoned = 2
    private let state = Atomic<Int>(LeasePhase.waiting)

    /// The pool handed over a connection; `false` when the deadline passed before.
    func leased() -> Bool {
        state.compareExchange(expected: Self.waiting, desired: Self.holding, ordering: .acquiringAndReleasing).exchanged
    }

    /// The deadline passed; `false` when a connection was handed over before.
    func abandon() -> Bool {
        state.compareExchange(expected: Self.waiting, desired: Self.abandoned, ordering: .acquiringAndReleasing).exchanged
    }
}

/// Why no connection could be had: one direct connection attempt with the store's settings,
/// shared by every caller that asks while it runs and remembered for a second, so an outage
/// costs one attempt per second rather than one per waiting caller.
final class ConnectDiagnosis: Sendable {
    private enum State {
        case idle
        case probing([CheckedContinuation<SessionStoreError?, Never>])
        case known(SessionStoreError?, at: ContinuousClock.Instant)
    }

    private let state = Mutex(State.idle)
    private let configuration: PostgresConnection.Configuration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private static let memory: Duration = .seconds(1)

    init(configuration: PostgresConnection.Configuration, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    /// The error of a connection attempt, or `timeout` with `reason` when the attempt succeeds
    /// (the server is fine; the pool was busy, or not running).
    func error(reason: String) async -> SessionStoreError {
        let failure = await attempt()
        if let failure { return failure }
        return PostgresErrorMapping.error(.timeout, reason + " (is run() running?)")
    }

    /// The error of a connection attempt (shared, remembered for a second), `nil` when it
    /// succeeds.
    func connectFailure() async -> SessionStoreError? {
        await attempt()
    }

    /// Errors that waiting for the pool will not cure: the caller fails at once with them.
    static func isDefinite(_ error: SessionStoreError) -> Bool {
        [.authenticationFailed, .tls, .connectionFailed].contains(error.code)
    }

    private func attempt() async -> SessionStoreError? {
        enum Next {
            case use(SessionStoreError?)
            case probe
            case wait
        }
        let now = ContinuousClock.now
        let first = state.withLock { state -> Next in
            switch state {
            case .known(let error, let at) where at.duration(to: now) < Self.memory:
                return .use(error)
            case .probing:
                return .wait
            case .idle, .known:
                state = .probing([])
                return .probe
            }
        }
        switch first {
        case .use(let error):
            return error
        case .wait:
            return await withCheckedContinuation { (continuation: CheckedContinuation<SessionStoreError?, Never>) in
                let known = state.withLock { state -> SessionStoreError?? in
                    switch state {
                    case .probing(var waiters):
                        waiters.append(continuation)
                        state = .probing(waiters)
                        return .none
                    case .known(let error, _):
                        return .some(error)
                    case .idle:
                        return .some(nil)
                    }
                }
                if let known { continuation.resume(returning: known) }
            }
        case .probe:
            var error = await probe()
            // The attempt runs in the task of the caller that started it: when that caller is
            // cancelled (its lease came through), the attempt is cut short and says nothing
            // about the server. It is then neither remembered nor passed on.
            let cancelled = Task.isCancelled
            if cancelled { error = nil }
            let waiters = state.withLock { state -> [CheckedContinuation<SessionStoreError?, Never>] in
                defer { state = cancelled ? .idle : .known(error, at: ContinuousClock.now) }
                if case .probing(let waiters) = state { return waiters }
                return []
            }
            for waiter in waiters { waiter.resume(returning: error) }
            return error
        }
    }

    private func probe() async -> SessionStoreError? {
        do {
            let connection = try await PostgresConnection.connect(
                on: eventLoopGroup.any(),
                configuration: configuration,
                id: 0,
                logger: logger
            )
            try? await connection.close()
            return nil
        } catch {
            return PostgresErrorMapping.map(error, phase: .connect)
        }
    }
}
