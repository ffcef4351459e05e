import Logging
import ServiceLifecycle

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reclaims the expired entries of a ``MemoryZone`` every `interval`, as a ServiceLifecycle
/// `Service`. Reads already skip (and drop) expired entries; the sweep frees the memory of
/// entries nobody reads again.
///
/// The clock that paces the sweeps and the wall clock that says what "now" is are injected,
/// so tests drive the sweeper with a manual clock instead of sleeping.
public struct MemoryZoneSweeper<C: Clock>: Service where C.Duration == Duration {
    /// The zone swept.
    public let zone: MemoryZone
    /// Time between sweeps.
    public let interval: Duration
    private let clock: C
    private let now: @Sendable () -> Int
    private let logger: Logger

    /// Creates a sweeper.
    /// - Parameters:
    ///   - now: the current Unix time in seconds (defaults to the system's wall clock).
    public init(
        zone: MemoryZone,
        interval: Duration = .seconds(60),
        clock: C,
        now: @escaping @Sendable () -> Int = { Int(Date().timeIntervalSince1970) },
        logger: Logger = Logger(label: "session.memory.sweeper")
    ) {
        self.zone = zone
        self.interval = interval
        self.clock = clock
        self.now = now
        self.logger = logger
    }

    /// Sweeps every `interval` until cancelled or gracefully shut down.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await clock.sleep(for: interval)
                } catch {
                    return
                }
                let removed = zone.sweep(now: now())
                logger.debug("memory zone swept", metadata: ["zone": .string(zone.name), "removed": .stringConvertible(removed)])
            }
        }
    }
}

extension MemoryZoneSweeper where C == ContinuousClock {
    /// Creates a sweeper on the continuous clock.
    public init(
        zone: MemoryZone,
        interval: Duration = .seconds(60),
        now: @escaping @Sendable () -> Int = { Int(Date().timeIntervalSince1970) },
        logger: Logger = Logger(label: "session.memory.sweeper")
    ) {
        self.init(zone: zone, interval: interval, clock: ContinuousClock(), now: now, logger: logger)
    }
}
