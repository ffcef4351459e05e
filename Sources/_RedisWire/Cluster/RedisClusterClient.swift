import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A Redis Cluster client: routes each command to the master of its keys' hash slot.
///
/// It reads the slot map with `CLUSTER SHARDS` (falling back to `CLUSTER SLOTS`) from the
/// configured nodes and keeps one ``RedisClient`` pool per master. Replies that redirect are
/// followed: `MOVED` moves the slot in the map at once, retries on the named node and refreshes
/// the whole map in the background (single flight, see ``RedisClusterRefreshGroup``); `ASK`
/// sends `ASKING` and the command to the named node once, leaving the map as it is;
/// `TRYAGAIN`, `CLUSTERDOWN` and `LOADING` are retried after a growing pause. At most
/// ``Configuration/maxRedirections`` of these per request. A node that cannot be reached is
/// tried again up to ``Configuration/maxConnectionAttempts`` times within
/// ``Configuration/maxConnectionTimeout``, the map being refreshed from the other nodes in
/// between (a failover promotes a replica).
///
/// A request whose connection was lost may have run: it is retried, so send idempotent
/// commands (every command of the session store is).
///
/// It is a ServiceLifecycle `Service`: ``run()`` runs the node pools and the background
/// refreshes.
public final class RedisClusterClient: Sendable, Service {
    /// Counters of what the client saw, for tests and metrics.
    public struct Statistics: Sendable, Hashable {
        /// `MOVED` replies followed.
        public var moved = 0
        /// `ASK` replies followed.
        public var ask = 0
        /// `TRYAGAIN`, `CLUSTERDOWN` and `LOADING` replies retried.
        public var retriedErrors = 0
        /// Requests retried after a node could not be reached.
        public var connectionRetries = 0
        /// Slot-map refreshes this client applied.
        public var refreshes = 0
    }

    private struct State {
        var machine: RedisClusterStateMachine<ContinuousClock.Instant> {
            // Any change of the map may move slots: the per-slot cache is rebuilt lazily.
            didSet { slotClients.removeAll() }
        }
        var clients: [RedisAddress: RedisClient] = [:]
        /// The pool of each slot's master, filled on first use (empty: not built yet), so a
        /// command's route costs one array lookup under the lock rather than a map lookup
        /// and a hash of the node's address.
        var slotClients: [RedisClient?] = []
        var statistics = Statistics()

        /// The pool of `address`, made if new (`isNew`: the caller must hand it to `run()`).
        mutating func client(
            for address: RedisAddress, make: (RedisAddress) -> RedisClient
        ) -> (client: RedisClient, isNew: Bool) {
            if let client = clients[address] { return (client, false) }
            let client = make(address)
            clients[address] = client
            return (client, true)
        }
    }

    /// The configuration the client was made with.
    public let configuration: Configuration
    private let state: NIOLockedValueBox<State>
    private let logger: Logger
    private let eventLoopGroup: any EventLoopGroup
    private let refreshGroup: RedisClusterRefreshGroup
    private let newClients: AsyncStream<RedisClient>
    private let newClientsContinuation: AsyncStream<RedisClient>.Continuation
    private let refreshRequests: AsyncStream<Void>
    private let refreshRequestsContinuation: AsyncStream<Void>.Continuation

    /// Creates a client; nothing connects until a request comes, and the node pools work only
    /// while ``run()`` runs.
    public init(
        configuration: Configuration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "redis.cluster", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.configuration = configuration
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        self.refreshGroup = configuration.refreshGroup ?? RedisClusterRefreshGroup()
        self.state = NIOLockedValueBox(State(machine: .init(minimumRefreshInterval: configuration.minimumRefreshInterval)))
        (newClients, newClientsContinuation) = AsyncStream.makeStream()
        (refreshRequests, refreshRequestsContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Runs the node pools and background refreshes until cancelled or shut down gracefully.
    public func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in self.refreshRequests {
                        do {
                            try await self.refreshTopology()
                        } catch {
                            self.logger.debug("redis cluster background refresh failed", metadata: ["error": "\(error)"])
                        }
                    }
                }
                for await client in self.newClients {
                    group.addTask { try? await client.run() }
                }
            }
        } onCancelOrGracefulShutdown: {
            self.newClientsContinuation.finish()
            self.refreshRequestsContinuation.finish()
        }
    }

    // MARK: state

    /// What the client saw so far.
    public var statistics: Statistics { state.withLockedValue { $0.statistics } }

    /// The slot map in use, if one was read.
    public var topology: RedisClusterTopology? { state.withLockedValue { $0.machine.topology } }

    /// The pool of one node (made on first use).
    public func client(for address: RedisAddress) -> RedisClient {
        let (client, isNew) = state.withLockedValue { $0.client(for: address, make: makeClient) }
        if isNew { newClientsContinuation.yield(client) }
        return client
    }

    private func makeClient(_ address: RedisAddress) -> RedisClient {
        var connection = configuration.connection
        connection.address = address
        var logger = self.logger
        logger[metadataKey: RedisLoggingKeys.address] = "\(address)"
        return RedisClient(
            configuration: .init(connection: connection, endpoint: .standalone, pool: configuration.pool),
            eventLoopGroup: eventLoopGroup, logger: logger
        )
    }

    // MARK: topology

    /// Reads the slot map now (joining a refresh that runs already) and uses it.
    ///
    /// - Throws: ``RedisClusterError`` `noReachableNode` naming every node tried when none
    ///   answered, `noTopology` when the answers held no usable map; ``RedisClientError``
    ///   `authenticationFailed` when no node gave a map and one refused the credentials.
    public func refreshTopology() async throws {
        let now = ContinuousClock.now
        _ = state.withLockedValue { $0.machine.requestRefresh(now: now, force: true) }
        do {
            let topology = try await refreshGroup.refresh { [self] in try await self.fetchTopology() }
            state.withLockedValue { state in
                state.machine.refreshSucceeded(topology, now: .now)
                state.statistics.refreshes += 1
            }
        } catch {
            state.withLockedValue { $0.machine.refreshFailed(now: .now) }
            throw error
        }
    }

    /// Asks the known nodes, then the configured ones, in turn for the map.
    private func fetchTopology() async throws -> RedisClusterTopology {
        let known = state.withLockedValue { $0.machine.topology }
        var candidates: [RedisAddress] = []
        for address in (known?.masters ?? []).shuffled() + (known?.nodes ?? []).shuffled() + configuration.nodes
        where !candidates.contains(address) {
            candidates.append(address)
        }
        var lastError: (any Error)?
        var tried: [RedisAddress] = []
        var anyAnswered = false
        var authenticationFailure: RedisClientError?
        for address in candidates {
            tried.append(address)
            var connectionConfiguration = configuration.connection
            connectionConfiguration.address = address
            do {
                let connection = try await RedisConnection.connect(
                    configuration: connectionConfiguration, eventLoop: eventLoopGroup.any(), logger: logger
                )
                defer { connection.close() }
                anyAnswered = true
                let topology: RedisClusterTopology
                do {
                    topology = try RedisClusterTopology.fromShards(
                        try await connection.send(.clusterShards()), connectedHost: address.host ?? "127.0.0.1"
                    )
                } catch let error as RedisClientError where error.code == .serverError && error.serverErrorPrefix == "ERR" {
                    topology = try RedisClusterTopology.fromSlots(
                        try await connection.send(.clusterSlots()), connectedHost: address.host ?? "127.0.0.1"
                    )
                }
                guard topology.coveredSlots > 0 else {
                    lastError = RedisClusterError(.noTopology, message: "\(address) serves no slot map")
                    continue
                }
                logger.debug(
                    "redis cluster map read",
                    metadata: [RedisLoggingKeys.address: "\(address)", "masters": "\(topology.masters.count)"]
                )
                return topology
            } catch {
                logger.debug("redis cluster map refresh failed", metadata: [RedisLoggingKeys.address: "\(address)"])
                lastError = error
                if let clientError = error as? RedisClientError, clientError.code == .authenticationFailed {
                    authenticationFailure = clientError
                }
            }
        }
        // Credentials are the cluster's, not a node's: a refusal is the answer, not "unreachable".
        if let authenticationFailure { throw authenticationFailure }
        if anyAnswered {
            throw RedisClusterError(.noTopology, message: "no node sent a usable slot map", nodesTried: tried, underlying: lastError)
        }
        throw RedisClusterError(.noReachableNode, message: "no cluster node could be reached", nodesTried: tried, underlying: lastError)
    }

    /// The pool of the master serving `slot` (any master without a slot), reading the map
    /// first if there is none.
    private func route(_ slot: RedisHashSlot?) async throws -> RedisClient {
        for attempt in 0..<2 {
            let routed = state.withLockedValue { state -> (client: RedisClient, isNew: Bool)? in
                guard let slot else {
                    guard let master = state.machine.topology?.masters.randomElement() else { return nil }
                    return state.client(for: master, make: makeClient)
                }
                if state.slotClients.isEmpty {
                    state.slotClients = Array(repeating: nil, count: RedisHashSlot.count)
                } else if let client = state.slotClients[slot.rawValue] {
                    return (client, false)
                }
                guard case .node(let address) = state.machine.route(slot) else { return nil }
                let routed = state.client(for: address, make: makeClient)
                state.slotClients[slot.rawValue] = routed.client
                return routed
            }
            if let routed {
                if routed.isNew { newClientsContinuation.yield(routed.client) }
                return routed.client
            }
            if attempt == 0 { try await refreshTopology() }
        }
        throw RedisClusterError(.noTopology, message: "no node serves \(slot.map(\.description) ?? "any slot")")
    }

    // MARK: requests

    /// Sends one command to the master of its slot (any master when it has no key) and returns
    /// the reply; an error reply throws ``RedisClientError`` `serverError`.
    ///
    /// - Throws: ``RedisClusterError`` `crossSlot`, `tooManyRedirections`, `noReachableNode`,
    ///   `noTopology`, or the node's ``RedisClientError``.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        try await execute(slot: try command.hashSlot()) { connection, asking in
            if asking {
                return try await connection.pipeline([.asking(), command])[1].checked()
            }
            return try await connection.send(command)
        }
    }

    /// Runs `commands` in `MULTI`/`EXEC` on the master of their one slot; see
    /// ``RedisConnection/transaction(_:)``.
    ///
    /// - Throws: ``RedisClusterError`` `crossSlot` when the keys hash to several slots.
    public func transaction(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        let slot = try Self.commonSlot(commands)
        return try await execute(slot: slot) { connection, asking in
            if asking {
                let replies = try await connection.pipeline([.asking(), .multi()] + commands + [.exec()])
                return try RedisConnection.execResult(Array(replies.dropFirst()), count: commands.count)
            }
            return try await connection.transaction(commands)
        }
    }

    /// Sends `commands`, grouped by slot: each group in one pipeline to its master, the
    /// groups concurrently; returns the replies in the order of `commands` (error replies as
    /// values). A command answered with a redirection is retried on its own.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        var groups: [RedisHashSlot?: [Int]] = [:]
        for (index, command) in commands.enumerated() {
            groups[try command.hashSlot(), default: []].append(index)
        }
        var results = [RESPValue](repeating: .null, count: commands.count)
        try await withThrowingTaskGroup(of: [(Int, RESPValue)].self) { group in
            for (slot, indices) in groups {
                group.addTask {
                    let groupCommands = indices.map { commands[$0] }
                    var replies = try await self.execute(slot: slot) { connection, asking in
                        if asking {
                            return Array(try await connection.pipeline([.asking()] + groupCommands).dropFirst())
                        }
                        return try await connection.pipeline(groupCommands)
                    }
                    for (position, reply) in replies.enumerated() {
                        if let error = reply.error, Redirection(error) != nil {
                            do {
                                replies[position] = try await self.send(groupCommands[position])
                            } catch let error as RedisClientError where error.code == .serverError && error.serverError != nil {
                                replies[position] = .error(error.serverError!)
                            }
                        }
                    }
                    return Array(zip(indices, replies))
                }
            }
            for try await done in group {
                for (index, reply) in done { results[index] = reply }
            }
        }
        return results
    }

    /// The one slot of `commands`' keys.
    ///
    /// - Throws: ``RedisClusterError`` `crossSlot` when they hash to several slots.
    public static func commonSlot(_ commands: [RedisCommand]) throws -> RedisHashSlot? {
        var slot: RedisHashSlot?
        for command in commands {
            guard let commandSlot = try command.hashSlot() else { continue }
            if let slot, slot != commandSlot {
                throw RedisClusterError(.crossSlot, message: "the commands' keys hash to different slots")
            }
            slot = commandSlot
        }
        return slot
    }

    /// What an error reply asks the client to do.
    enum Redirection {
        case moved(RedisHashSlot, RedisAddress)
        case ask(RedisAddress)
        case retryLater

        init?(_ error: RESPError) {
            switch error.prefix {
            case "MOVED", "ASK":
                guard let target = error.redirection, let slot = RedisHashSlot(rawValue: target.slot) else { return nil }
                let address = RedisAddress.tcp(host: target.host.isEmpty ? "127.0.0.1" : target.host, port: target.port)
                self = error.prefix == "MOVED" ? .moved(slot, address) : .ask(address)
            case "TRYAGAIN", "CLUSTERDOWN", "LOADING":
                self = .retryLater
            default:
                return nil
            }
        }
    }

    /// Runs `body` on a connection of the master of `slot`, following redirections and
    /// retrying unreachable nodes; `body` gets whether to send `ASKING` first.
    func execute<Result: Sendable>(
        slot: RedisHashSlot?,
        _ body: (RedisConnection, _ asking: Bool) async throws -> Result
    ) async throws -> Result {
        var redirections = 0
        var connectionAttempts = 0
        var asking: RedisAddress?
        var tried: [RedisAddress] = []
        let start = ContinuousClock.now
        while true {
            let nodeClient: RedisClient
            if let target = asking {
                nodeClient = client(for: target)
            } else {
                nodeClient = try await route(slot)
            }
            let address = nodeClient.configuration.connection.address
            let isAsking = asking != nil
            asking = nil
            do {
                return try await nodeClient.withConnection { connection in
                    try await body(connection, isAsking)
                }
            } catch let error as RedisClientError {
                if let serverError = error.serverError, let redirection = Redirection(serverError) {
                    redirections += 1
                    switch redirection {
                    case .moved(let movedSlot, let target):
                        let action = state.withLockedValue { state in
                            state.statistics.moved += 1
                            return state.machine.moved(movedSlot, to: target, now: .now)
                        }
                        if action == .startRefresh {
                            // The state machine marked it running; the run() loop does it (and ends it).
                            refreshRequestsContinuation.yield()
                        }
                    case .ask(let target):
                        state.withLockedValue { $0.statistics.ask += 1 }
                        asking = target
                    case .retryLater:
                        state.withLockedValue { $0.statistics.retriedErrors += 1 }
                    }
                    logger.trace("redis cluster redirection", metadata: ["reply": "\(serverError.prefix)"])
                    if redirections > configuration.maxRedirections {
                        throw RedisClusterError(
                            .tooManyRedirections,
                            message: "more than \(configuration.maxRedirections) redirections or retries",
                            nodesTried: tried + [address], serverError: serverError, underlying: error
                        )
                    }
                    if case .retryLater = redirection {
                        try await Task.sleep(for: backoff(redirections))
                    }
                    continue
                }
                guard [.connectionFailed, .connectionClosed, .timeout].contains(error.code) else { throw error }
                connectionAttempts += 1
                tried.append(address)
                state.withLockedValue { $0.statistics.connectionRetries += 1 }
                let elapsed = start.duration(to: .now)
                if connectionAttempts >= configuration.maxConnectionAttempts || elapsed >= configuration.maxConnectionTimeout {
                    throw RedisClusterError(
                        .noReachableNode,
                        message: "no node could be reached in \(connectionAttempts) attempts",
                        nodesTried: tried, underlying: error
                    )
                }
                logger.debug("redis cluster node unreachable, refreshing the map", metadata: [RedisLoggingKeys.address: "\(address)"])
                try? await refreshTopology()
                let pause = min(backoff(connectionAttempts), configuration.maxConnectionTimeout - elapsed)
                if pause > .zero { try await Task.sleep(for: pause) }
            }
        }
    }

    private func backoff(_ attempt: Int) -> Duration {
        min(configuration.retryBackoff * (1 << min(attempt - 1, 10)), .seconds(1))
    }
}
