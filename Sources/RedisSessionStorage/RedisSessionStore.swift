import Logging
import NIOCore
import ServiceLifecycle
import SessionStorage
import _RedisWire

/// Sessions in Redis (standalone or Sentinel), byte-compatible with lua-resty-session's
/// `resty.session.redis`.
///
/// Layout (see `shared/spec/STORAGE.md`): a record is a string `SET k v EX ttl` under
/// `[prefix:]name:key[:suffix]`; an (audience, subject) index is a sorted set under
/// `[prefix:]name:audience:subject[:suffix]` whose members are session keys scored by their
/// expiry (Unix seconds).
///
/// Fixes over the original: a set with metadata or rotation and a delete with metadata run
/// atomically in one `MULTI`/`EXEC` round trip; every reply is checked; the index never
/// expires before its latest member (`EXPIRE idx ttl NX` then `GT`); a rotation never
/// lengthens the old record (`EXPIRE old staleTTL LT`), and with `remember` under
/// ``RememberRotationPolicy/removeAtOnce`` the old record is `UNLINK`ed. Needs Redis ≥ 7.0.
///
/// The store is a `Service`: run it (its connection pool) in a `ServiceGroup` or task group.
public struct RedisSessionStore: SessionStore, Service {
    /// The options the store was made with.
    public let configuration: Configuration
    /// The wire client (exposed for tools and tests; its API has no stability promise).
    public let client: RedisClient
    private let naming: SessionKeyNaming
    private let instrumentation: SessionStoreInstrumentation

    /// Creates a store; nothing connects until ``run()`` runs and an operation comes.
    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "session.redis")) {
        self.configuration = configuration
        self.naming = SessionKeyNaming(prefix: configuration.prefix, suffix: configuration.suffix)
        self.instrumentation = SessionStoreInstrumentation(backend: "redis", logger: logger)
        self.client = RedisClient(configuration: configuration.clientConfiguration, logger: logger)
    }

    /// Runs the connection pool until cancelled or shut down gracefully.
    public func run() async throws {
        try await client.run()
    }

    // MARK: SessionStore

    nonisolated(nonsending) public func set(_ request: SessionSetRequest) async throws {
        try request.validate()
        try await instrumentation.observe(.set) {
            if let maximum = configuration.maximumValueSize, request.value.utf8.count > maximum {
                throw SessionStoreError(.valueTooLarge, message: "the value exceeds \(maximum) bytes", backend: "redis")
            }
            let commands = RedisSessionCommands.set(request, naming: naming, policy: configuration.rememberRotation)
            if commands.count == 1 {
                try await run { try Self.expectOK(await client.send(commands[0])) }
            } else {
                try await run { try Self.checkAll(await client.transaction(commands)) }
            }
        }
    }

    nonisolated(nonsending) public func get(name: String, key: String, currentTime: Int) async throws -> String? {
        try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
        return try await instrumentation.observe(.get) {
            let reply = try await run { try await client.send(.get(naming.recordKey(name: name, key: key))) }
            if reply.isNull { return nil }
            guard let value = reply.string else {
                throw SessionStoreError(.protocolError, message: "GET sent a \(reply)", backend: "redis")
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
            if commands.count == 1 {
                try await run { _ = try await client.send(commands[0]) }
            } else {
                try await run { try Self.checkAll(await client.transaction(commands)) }
            }
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
                throw SessionStoreError(.protocolError, message: "ZRANGE sent a \(reply)", backend: "redis")
            }
            var result: [String: Int] = [:]
            result.reserveCapacity(pairs.count)
            for (member, score) in pairs {
                guard let key = member.string, let expiry = score.double, expiry.isFinite else {
                    throw SessionStoreError(.protocolError, message: "ZRANGE sent a malformed member or score", backend: "redis")
                }
                if expiry > Double(currentTime) {
                    result[key] = Int(expiry)
                }
            }
            return result
        }
    }

    // MARK: replies and errors

    private static func expectOK(_ reply: RESPValue) throws {
        guard reply.isOK else {
            throw SessionStoreError(.protocolError, message: "expected OK, got \(reply)", backend: "redis")
        }
    }

    /// Every reply of a transaction must be a success: an error reply inside `EXEC` is an error.
    private static func checkAll(_ replies: [RESPValue]) throws {
        for reply in replies {
            if case .error(let error) = reply {
                throw Self.map(RedisClientError(.serverError, message: "a command of the transaction failed", serverError: error))
            }
        }
    }

    private func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RedisClientError {
            throw Self.map(error)
        }
    }

    /// Maps the wire client's errors to the storage contract's codes.
    package static func map(_ error: RedisClientError) -> SessionStoreError {
        let code: SessionStoreError.Code
        var message = error.message
        switch error.code {
        case .connectionFailed: code = .connectionFailed
        case .connectionClosed: code = .connectionClosed
        case .timeout: code = .timeout
        case .authenticationFailed: code = .authenticationFailed
        case .tls: code = .tls
        case .protocolError: code = .protocolError
        case .poolExhausted: code = .poolExhausted
        case .shutdown: code = .shutdown
        case .sentinel: code = .unavailable
        default:
            let serverMessage = error.serverError?.message ?? ""
            switch error.serverErrorPrefix {
            case "LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "BUSY":
                code = .unavailable
            case _ where serverMessage.contains("invalid bulk length") || serverMessage.contains("Protocol error"):
                code = .valueTooLarge
                message = "the server refused the value (proto-max-bulk-len)"
            default:
                code = .serverError
            }
        }
        return SessionStoreError(
            code, message: message, backend: "redis", serverMessage: error.serverError?.message, underlying: error
        )
    }
}
