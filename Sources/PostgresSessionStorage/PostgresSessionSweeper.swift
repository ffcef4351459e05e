#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import SessionStorage

/// Removes expired session rows in the background, in bounded batches, instead of the
/// original's unbounded `DELETE … WHERE exp < now` on 0.1% of requests.
///
/// Every ``Configuration/interval`` plus a random jitter (so that several application
/// instances sharing one database do not sweep at the same moment), it deletes batches of at
/// most ``Configuration/batchSize`` rows until a batch deletes fewer than that. Errors are
/// logged and the next sweep runs as scheduled. Runs as a ServiceLifecycle `Service`; the
/// clock is injected so tests drive it with a manual clock.
public struct PostgresSessionSweeper<C: Clock>: Service where C.Duration == Duration {
    /// When and how much to sweep.
    public struct Configuration: Sendable {
        /// The pause between two sweeps, before jitter.
        public var interval: Duration = .seconds(60)
        /// The largest random extra pause added to each interval.
        public var jitter: Duration = .seconds(15)
        /// The most rows one `DELETE` removes.
        public var batchSize: Int = 1000

        /// Creates a configuration.
        public init(interval: Duration = .seconds(60), jitter: Duration = .seconds(15), batchSize: Int = 1000) {
            self.interval = interval
            self.jitter = jitter
            self.batchSize = batchSize
        }
    }

    /// What one sweep did.
    public struct Report: Sendable, Hashable {
        /// Rows deleted by each batch, in order.
        public var batches: [Int]
        /// Rows deleted in all.
        public var deleted: Int { batches.reduce(0, +) }
    }

    private let store: PostgresSessionStore
    private let configuration: Configuration
    private let clock: C
    private let currentTime: @Sendable () -> Int
    private let onSweep: @Sendable (Report) -> Void
    private let logger: Logger

    /// Creates a sweeper for `store`.
    ///
    /// - Parameters:
    ///   - currentTime: now in Unix seconds; rows with `exp` before it are expired.
    ///   - onSweep: called after every successful sweep (for metrics or tests).
    public init(
        store: PostgresSessionStore,
        configuration: Configuration = .init(),
        clock: C,
        currentTime: @escaping @Sendable () -> Int = { Int(Date().timeIntervalSince1970) },
        logger: Logger = Logger(label: "swift-resty-session.postgres.sweeper"),
        onSweep: @escaping @Sendable (Report) -> Void = { _ in }
    ) {
        self.store = store
        self.configuration = configuration
        self.clock = clock
        self.currentTime = currentTime
        self.logger = logger
        self.onSweep = onSweep
    }

    /// Sweeps every interval (plus jitter) until cancelled or a graceful shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await clock.sleep(for: nextPause())
                } catch {
                    return  // cancelled
                }
                do {
                    let report = try await sweep()
                    logger.debug("expired sessions swept", metadata: ["deleted": "\(report.deleted)", "batches": "\(report.batches.count)"])
                    onSweep(report)
                } catch {
                    let code = (error as? SessionStoreError)?.code.description ?? "unknown"
                    logger.warning("sweeping expired sessions failed", metadata: [SessionLoggingKeys.errorCode: .string(code)])
                }
            }
        }
    }

    /// Deletes expired rows now, batch after batch, until a batch deletes fewer than
    /// ``Configuration/batchSize`` rows.
    public func sweep() async throws -> Report {
        let now = currentTime()
        var batches: [Int] = []
        while true {
            try Task.checkCancellation()
            let deleted = try await store.deleteExpired(currentTime: now, batchSize: configuration.batchSize)
            batches.append(deleted)
            if deleted < configuration.batchSize { break }
        }
        return Report(batches: batches)
    }

    private func nextPause() -> Duration {
        let jitter = configuration.jitter
        guard jitter > .zero else { return configuration.interval }
        let (seconds, attoseconds) = jitter.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        return configuration.interval + .nanoseconds(Int64.random(in: 0...nanoseconds))
    }
}

extension PostgresSessionSweeper where C == ContinuousClock {
    /// Creates a sweeper on the continuous clock and the wall-clock time.
    public init(store: PostgresSessionStore, configuration: Configuration = .init(), logger: Logger = Logger(label: "swift-resty-session.postgres.sweeper")) {
        self.init(store: store, configuration: configuration, clock: ContinuousClock(), logger: logger)
    }
}
