import NIOCore
import Synchronization

/// Which event loop a new connection runs on: the one with the fewest of the pool's open
/// connections. (`EventLoopGroup.next()` alone can pile them all on one loop: other calls of
/// `next()`/`any()` between two connection attempts, e.g. the lease timers, shift its
/// round-robin, and one event loop then carries every connection's I/O.)
public final class EventLoopPlacement: Sendable {
    private let eventLoops: [any EventLoop]
    private let counts: Mutex<[Int]>

    /// Placement over the event loops of `group`.
    public init(_ group: any EventLoopGroup) {
        let eventLoops = Array(group.makeIterator())
        self.eventLoops = eventLoops.isEmpty ? [group.next()] : eventLoops
        self.counts = Mutex(Array(repeating: 0, count: self.eventLoops.count))
    }

    /// The least used event loop, counted as used until ``release(_:)`` of `slot`.
    public func take() -> (slot: Int, eventLoop: any EventLoop) {
        let slot = counts.withLock { counts in
            var best = 0
            for index in counts.indices where counts[index] < counts[best] {
                best = index
            }
            counts[best] += 1
            return best
        }
        return (slot, eventLoops[slot])
    }

    /// Stops counting a connection placed in `slot` (it closed, or its connect failed).
    public func release(_ slot: Int) {
        counts.withLock { $0[slot] -= 1 }
    }

    /// How many connections each event loop carries (for tests).
    public var load: [Int] { counts.withLock { $0 } }
}
