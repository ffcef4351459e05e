import Logging
import ServiceLifecycle
import SessionStorage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Deletes expired rows of a ``MySQLSessionStore`` every `interval` (plus a random jitter, so
/// several instances do not sweep in step), in bounded batches, as a ServiceLifecycle `Service`.
///
/// Replaces the original's unbounded `DELETE … WHERE exp < now` on 0.1% of requests. The clock
/// that paces the sweeps and the wall clock that says what "now" is are injected.
public struct MySQLSessionSweeper<C: Clock>: Service where C.Duration == Duration {
    /// The store swept.
    public let store: MySQLSessionStore
    /// Time between sweeps.
    public let interval: Duration
    /// Up to this much is added to every interval, at random.
    public let jitter: Duration
    /// Rows per DELETE.
    public let batchSize: Int
    private let clock: C
    private let now: @Sendable () -> Int
    private let logger: Logger

    /// Creates a sweeper.
    public init(
        store: MySQLSessionStore,
        interval: Duration = .seconds(60),
        jitter: Duration = .seconds(10),
        batchSize: Int = 1000,
        clock: C,
        now: @escaping @Sendable () -> Int = { Int(Date().timeIntervalSince1970) },
        logger: Logger = Logger(label: "session.mysql.sweeper")
    ) {
        self.store = store
        self.interval = interval
        self.jitter = jitter
        self.batchSize = batchSize
        self.clock = clock
        self.now = now
        self.logger = logger
    }

    /// Sweeps until cancelled or gracefully shut down; a failed sweep is logged and retried at the next interval.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let jitterNanoseconds = Int64(jitter.components.seconds) * 1_000_000_000 + jitter.components.attoseconds / 1_000_000_000
                let extra = jitterNanoseconds > 0 ? Duration.nanoseconds(Int64.random(in: 0...jitterNanoseconds)) : .zero
                do {
                    try await clock.sleep(for: interval + extra)
                } catch {
                    return
                }
                do {
                    let removed = try await store.deleteExpired(currentTime: now(), batchSize: batchSize)
                    logger.debug("mysql sessions swept", metadata: ["removed": .stringConvertible(removed)])
                } catch {
                    logger.debug("mysql session sweep failed", metadata: ["error": .string(String(describing: error))])
                }
            }
        }
    }
}
