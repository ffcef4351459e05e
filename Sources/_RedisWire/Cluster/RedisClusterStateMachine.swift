/// The routing state of a cluster client, as a pure value: the slot map and whether a refresh
/// of it runs. Events in, actions out; time is passed in, so tests drive it without a clock.
///
/// Refreshes are single-flight (one at a time) and rate-limited: a `MOVED` storm during a
/// resharding asks for one refresh per ``minimumRefreshInterval``, while each `MOVED` still
/// updates its own slot at once.
public struct RedisClusterStateMachine<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    /// Whether a refresh runs.
    public enum RefreshState: Sendable, Hashable {
        /// None runs; the last one ended at this time (`nil`: never).
        case idle(lastEnded: Instant?)
        /// One runs since this time.
        case refreshing(since: Instant)
    }

    /// Where to send a command of a slot.
    public enum Route: Sendable, Hashable {
        /// To this master.
        case node(RedisAddress)
        /// No map, or no node serves the slot: refresh the map first.
        case refreshFirst
    }

    /// Whether the caller must start a refresh.
    public enum RefreshAction: Sendable, Hashable {
        /// Start one (and report its end with ``refreshSucceeded(_:now:)`` or ``refreshFailed(now:)``).
        case startRefresh
        /// One runs already, or the last one ended less than ``minimumRefreshInterval`` ago.
        case none
    }

    /// The current map, if any was read.
    public private(set) var topology: RedisClusterTopology?
    /// Whether a refresh runs.
    public private(set) var refreshState: RefreshState
    /// The least time between the end of a refresh and the start of the next one, unless forced.
    public let minimumRefreshInterval: Duration

    /// Creates a state machine without a map.
    public init(minimumRefreshInterval: Duration = .milliseconds(100)) {
        self.topology = nil
        self.refreshState = .idle(lastEnded: nil)
        self.minimumRefreshInterval = minimumRefreshInterval
    }

    /// Where a command of `slot` goes.
    public func route(_ slot: RedisHashSlot) -> Route {
        guard let address = topology?.master(for: slot) else { return .refreshFirst }
        return .node(address)
    }

    /// Asks for a refresh; `force` ignores the rate limit (not the single flight).
    public mutating func requestRefresh(now: Instant, force: Bool = false) -> RefreshAction {
        switch refreshState {
        case .refreshing:
            return .none
        case .idle(let lastEnded):
            if !force, let lastEnded, lastEnded.duration(to: now) < minimumRefreshInterval, topology != nil {
                return .none
            }
            refreshState = .refreshing(since: now)
            return .startRefresh
        }
    }

    /// A node answered `MOVED slot address`: the slot moves in the map at once, and a refresh
    /// of the whole map is asked for (other slots probably moved too).
    public mutating func moved(_ slot: RedisHashSlot, to address: RedisAddress, now: Instant) -> RefreshAction {
        if topology == nil { topology = RedisClusterTopology(shards: []) }
        topology!.assign(slot, to: address)
        return requestRefresh(now: now)
    }

    /// A refresh read `topology`.
    public mutating func refreshSucceeded(_ topology: RedisClusterTopology, now: Instant) {
        self.topology = topology
        refreshState = .idle(lastEnded: now)
    }

    /// A refresh failed; the old map stays.
    public mutating func refreshFailed(now: Instant) {
        refreshState = .idle(lastEnded: now)
    }
}
