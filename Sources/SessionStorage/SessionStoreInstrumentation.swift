import Logging
import Metrics

/// The four operations of the storage contract, as named in logs and metrics.
public enum SessionStoreOperation: String, Sendable, Hashable, CaseIterable {
    case set
    case get
    case delete
    case readMetadata = "read_metadata"

    var index: Int {
        switch self {
        case .set: 0
        case .get: 1
        case .delete: 2
        case .readMetadata: 3
        }
    }
}

/// The metadata keys this project's storages put on log lines.
public enum SessionLoggingKeys {
    /// The backend, e.g. `redis`.
    public static let backend = "session_store_backend"
    /// The operation, e.g. `set`.
    public static let operation = "session_store_operation"
    /// The error code of a failed operation.
    public static let errorCode = "session_store_error_code"
}

/// Logging and metrics for one storage instance, shared by every backend so that each gets
/// them by construction: wrap each operation in ``observe(_:_:)``.
///
/// Metrics (swift-metrics), each with the dimensions `backend` and `operation`:
/// - `session_store_operations_total` (counter): operations started;
/// - `session_store_errors_total` (counter, plus dimension `code`): operations that threw;
/// - `session_store_operation_duration` (timer, nanoseconds).
///
/// Logs: the operation name at `debug`, failures at `debug` with their code. Never a key, a
/// value, a subject or a secret.
public struct SessionStoreInstrumentation: Sendable {
    /// The backend's name, used as the `backend` dimension and log metadata.
    public let backend: String
    /// The logger operations log to.
    public let logger: Logger
    private let counters: [Counter]
    private let timers: [Metrics.Timer]
    private let factory: any MetricsFactory
    /// False when metrics go nowhere (no `MetricsSystem` bootstrapped): then nothing is timed.
    @usableFromInline
    let measures: Bool
    /// Whether the logger logs at `debug`, read once when the store is created: the log level
    /// is not consulted per operation.
    @usableFromInline
    let logsDebug: Bool

    /// Creates the metrics of a backend.
    /// - Parameter metricsFactory: where metrics go; the process-wide `MetricsSystem` by default.
    public init(backend: String, logger: Logger, metricsFactory: (any MetricsFactory)? = nil) {
        let factory = metricsFactory ?? MetricsSystem.factory
        self.factory = factory
        self.backend = backend
        var logger = logger
        logger[metadataKey: SessionLoggingKeys.backend] = .string(backend)
        self.logger = logger
        self.measures = !(factory is NOOPMetricsHandler)
        self.logsDebug = logger.logLevel <= .debug
        self.counters = SessionStoreOperation.allCases.map { operation in
            Counter(
                label: "session_store_operations_total",
                dimensions: [("backend", backend), ("operation", operation.rawValue)], factory: factory)
        }
        self.timers = SessionStoreOperation.allCases.map { operation in
            Metrics.Timer(
                label: "session_store_operation_duration",
                dimensions: [("backend", backend), ("operation", operation.rawValue)], factory: factory)
        }
    }

    /// Runs one operation, counting and timing it, and maps unknown errors to
    /// ``SessionStoreError`` so callers always see the typed error.
    @inlinable
    public func observe<T: Sendable>(
        _ operation: SessionStoreOperation,
        _ body: () async throws -> T
    ) async throws -> T {
        let start = measures ? ContinuousClock.now : nil
        if measures || logsDebug { self.started(operation) }
        do {
            let result = try await body()
            if let start { self.finished(operation, start: start) }
            return result
        } catch {
            throw self.failed(operation, start: start, error: error)
        }
    }

    /// ``observe(_:_:)`` for an operation whose body never suspends (the in-process memory
    /// store): the same counting, timing and error mapping without an async closure frame.
    @inlinable
    public func observeSync<T>(
        _ operation: SessionStoreOperation,
        _ body: () throws -> T
    ) throws -> T {
        // Without metrics (the common case of a store not observed) no optional clock instant
        // is handled at all: `ContinuousClock.Instant` is resilient, and its `Optional` costs
        // value-witness calls on every operation.
        guard measures else {
            if logsDebug { self.started(operation) }
            do {
                return try body()
            } catch {
                throw self.failed(operation, start: nil, error: error)
            }
        }
        let start = ContinuousClock.now
        self.started(operation)
        do {
            let result = try body()
            self.finished(operation, start: start)
            return result
        } catch {
            throw self.failed(operation, start: start, error: error)
        }
    }

    @usableFromInline
    func started(_ operation: SessionStoreOperation) {
        if measures { counters[operation.index].increment() }
        guard logsDebug else { return }
        logger.debug("session store operation", metadata: [SessionLoggingKeys.operation: .string(operation.rawValue)])
    }

    @usableFromInline
    func finished(_ operation: SessionStoreOperation, start: ContinuousClock.Instant) {
        timers[operation.index].recordNanoseconds(Self.nanoseconds(ContinuousClock.now - start))
    }

    @usableFromInline
    func failed(_ operation: SessionStoreOperation, start: ContinuousClock.Instant?, error: any Error) -> SessionStoreError {
        if let start { finished(operation, start: start) }
        var typed: SessionStoreError
        if let error = error as? SessionStoreError {
            typed = error
        } else if error is CancellationError {
            typed = SessionStoreError(.timeout, message: "the operation was cancelled", underlying: error)
        } else {
            typed = SessionStoreError(.serverError, message: "the operation failed", underlying: error)
        }
        if typed.backend == nil { typed.backend = backend }
        Counter(
            label: "session_store_errors_total",
            dimensions: [("backend", backend), ("operation", operation.rawValue), ("code", typed.code.description)],
            factory: factory
        ).increment()
        logger.debug(
            "session store operation failed",
            metadata: [
                SessionLoggingKeys.operation: .string(operation.rawValue),
                SessionLoggingKeys.errorCode: .string(typed.code.description),
            ]
        )
        return typed
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
