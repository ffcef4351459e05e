import Logging
import RedisSessionStorage
import ServiceLifecycle
import SessionStorage
import _RedisWire

/// Sessions in a Redis Cluster, byte-compatible with lua-resty-session's
/// `resty.session.redis.cluster`.
///
/// The layout is the standalone store's (`shared/spec/STORAGE.md`): a record `SET k v EX ttl`
/// under `[prefix:]name:key[:suffix]`, an (audience, subject) index as a sorted set under
/// `[prefix:]name:audience:subject[:suffix]` scored by expiry. Keys carry no hash tag (as in
/// the original), so a record, the old record of a rotation and each index live in different
/// slots: an operation's commands are grouped per slot, the groups sent concurrently to their
/// masters, and each group of several commands (an index update) runs atomically in
/// `MULTI`/`EXEC` on its node. The operation as a whole is not atomic across slots.
///
/// The same fixes as the standalone store: every reply is checked, the index never expires
/// before its latest member, a rotation never lengthens the old record. Needs Redis ≥ 7.0.
///
/// The store is a `Service`: run it (its node pools and map refreshes) in a `ServiceGroup`
/// or task group.
public struct RedisClusterSessionStore: SessionStore, Service {
    static let backend = "redis-cluster"

    /// The options the store was made with.
    public let configuration: Configuration
    /// The cluster client (exposed for tools and tests; its API has no stability promise).
    public let client: RedisClusterClient
    private let naming: SessionKeyNaming
    private let instrumentation: SessionStoreInstrumentation

    /// Creates a store; nothing connects until an operation comes, and ``run()`` must run.
    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "session.redis-cluster")) {
        self.configuration = configuration
        self.naming = SessionKeyNaming(prefix: configuration.prefix, suffix: configuration.suffix)
        self.instrumentation = SessionStoreInstrumentation(backend: Self.backend, logger: logger)
        self.client = RedisClusterClient(configuration: configuration.clientConfiguration, logger: logger)
    }

    /// Runs the node pools and map refreshes until cancelled or shut down gracefully.
    public func run() async throws {
        try await client.run()
    }

    // MARK: SessionStore

    nonisolated(nonsending) public func set(_ request: SessionSetRequest) async throws {
        try request.validate()
        try await instrumentation.observe(.set) {
            if let maximum = configuration.maximumValueSize, request.value.utf8.count > maximum {
                throw SessionStoreError(.valueTooLarge, message: "the value exceeds \(maximum) bytes", backend: Self.backend)
            }
            let commands = RedisSessionCommands.set(request, naming: naming, policy: configuration.rememberRotation)
            try await runGroups(commands)
        }
    }

    nonisolated(nonsending) public func get(name: String, key: String, currentTime: Int) async throws -> String? {
        try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
        return try await instrumentation.observe(.get) {
            let reply = try await run { try await client.send(.get(naming.recordKey(name: name, key: key))) }
            if reply.isNull { return nil }
            guard let value = reply.string else {
                throw SessionStoreError(.protocolError, message: "GET sent a \(reply)", backend: Self.backend)
            }
            return value
        }
    }

    nonisolated(nonsending) public func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws {
        try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
        try await instrumentation.observe(.delete) {
            let commands = RedisSessionCommands.delete(
                name: name, key: key, currentTime: currentTime, metadata: metadata, naming: naming
            )
            try await runGroups(commands)
        }
    }

    nonisolated(nonsending) public func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int] {
        try SessionStoreValidation.index(name: name, audience: audience, subject: subject, currentTime: currentTime)
        return try await instrumentation.observe(.readMetadata) {
            let index = naming.indexKey(name: name, audience: audience, subject: subject)
            let reply = try await run {
                try await client.send(RedisSessionCommands.readIndex(index, currentTime: currentTime))
            }
            guard let pairs = reply.pairs else {
                throw SessionStoreError(.protocolError, message: "ZRANGE sent a \(reply)", backend: Self.backend)
            }
            var result: [String: Int] = [:]
            result.reserveCapacity(pairs.count)
            for (member, score) in pairs {
                guard let key = member.string, let expiry = score.double, expiry.isFinite else {
                    throw SessionStoreError(.protocolError, message: "ZRANGE sent a malformed member or score", backend: Self.backend)
                }
                if expiry > Double(currentTime) {
                    result[key] = Int(expiry)
                }
            }
            return result
        }
    }

    // MARK: groups per slot

    /// Splits `commands` into groups of one slot each (keeping their order), and runs the
    /// groups concurrently: a lone command as such, several in `MULTI`/`EXEC`. Every reply is
    /// checked; a `SET` must answer `OK`.
    private func runGroups(_ commands: [RedisCommand]) async throws {
        let client = self.client
        if commands.count == 1 {
            // A plain set or a delete without metadata: the client routes it (one slot lookup),
            // no grouping.
            try await run { try await Self.runGroup(commands, on: client) }
            return
        }
        var groups: [[RedisCommand]] = []
        var slots: [RedisHashSlot?] = []
        for command in commands {
            let slot = try await run { try command.hashSlot() }
            if let index = slots.firstIndex(of: slot) {
                groups[index].append(command)
            } else {
                slots.append(slot)
                groups.append([command])
            }
        }
        try await run {
            // the common case (a plain set, a delete without metadata) needs no child task
            if groups.count == 1 {
                try await Self.runGroup(groups[0], on: client)
                return
            }
            try await withThrowingTaskGroup(of: Void.self) { taskGroup in
                for group in groups {
                    taskGroup.addTask { try await Self.runGroup(group, on: client) }
                }
                try await taskGroup.waitForAll()
            }
        }
    }

    private static func runGroup(_ group: [RedisCommand], on client: RedisClusterClient) async throws {
        if group.count == 1 {
            try check(await client.send(group[0]), of: group[0])
        } else {
            for (command, reply) in zip(group, try await client.transaction(group)) {
                try check(reply, of: command)
            }
        }
    }

    private static func check(_ reply: RESPValue, of command: RedisCommand) throws {
        if case .error(let error) = reply {
            throw RedisClientError(.serverError, message: "a command of the transaction failed", serverError: error)
        }
        if command.name == "SET", !reply.isOK {
            throw SessionStoreError(.protocolError, message: "expected OK, got \(reply)", backend: backend)
        }
    }

    // MARK: errors

    private func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RedisClientError {
            throw Self.map(error)
        } catch let error as RedisClusterError {
            throw Self.map(error)
        }
    }

    /// Maps the wire client's errors to the storage contract's codes.
    static func map(_ error: RedisClientError) -> SessionStoreError {
        var mapped = RedisSessionStore.map(error)
        mapped.backend = backend
        return mapped
    }

    /// Maps the cluster client's errors to the storage contract's codes.
    static func map(_ error: RedisClusterError) -> SessionStoreError {
        let code: SessionStoreError.Code
        switch error.code {
        case .tooManyRedirections: code = .redirectionsExhausted
        case .noReachableNode: code = .connectionFailed
        case .crossSlot: code = .protocolError
        default: code = .unavailable
        }
        var message = error.message
        if !error.nodesTried.isEmpty {
            message += " (nodes tried: \(error.nodesTried.map(\.description).joined(separator: ", ")))"
        }
        return SessionStoreError(
            code, message: message, backend: backend, serverMessage: error.serverError?.message, underlying: error
        )
    }
}
