import Foundation
import Logging
import PostgresNIO
import PostgresSessionStorage
import SessionStorage
import Synchronization
import Testing

/// The test servers' addresses (CONVENTIONS.md variable names) and helpers shared by the suites.
enum PG {
    static func env(_ name: String) throws -> String {
        try #require(
            ProcessInfo.processInfo.environment[name],
            "\(name) is not set: start servers with scripts/services.sh and export its variables"
        )
    }

    /// A name no other run uses, so parallel runs never share tables or databases.
    static func unique(_ prefix: String) -> String {
        prefix + "_" + String(UInt64.random(in: 0 ... .max), radix: 36)
    }

    /// This run's tables (one pair for the whole run; every test uses random keys).
    static let table = unique("sess")
    static var tableMeta: String { table + "_meta" }

    static var logger: Logger {
        var logger = Logger(label: "postgres-tests")
        logger.logLevel = .critical
        return logger
    }

    /// Password authentication over TCP, without TLS, on the ssl=on server.
    static func tcp() throws -> PostgresSessionStore.Configuration {
        var configuration = PostgresSessionStore.Configuration(
            host: try env("PG_HOST"),
            port: Int(try env("PG_PORT"))!,
            username: try env("PG_USER"),
            password: try env("PG_PASSWORD"),
            database: try env("PG_DATABASE")
        )
        configuration.tableName = table
        configuration.tableNameMeta = tableMeta
        // Generous: the concurrency case queues 200 callers on 4 connections of a busy machine.
        // Many tests run at once against one server (max_connections 600 in scripts/services.sh):
        // about 90 stores of the conformance cases must fit.
        configuration.poolSize = 4
        configuration.connectTimeout = .seconds(30)
        return configuration
    }

    /// TLS required and verified against TLS_CA_FILE.
    static func tls() throws -> PostgresSessionStore.Configuration {
        var configuration = try tcp()
        configuration.tls = .require(verify: true, caFile: try env("TLS_CA_FILE"))
        return configuration
    }

    /// The unix-domain socket of the ssl=on server.
    static func socket() throws -> PostgresSessionStore.Configuration {
        var configuration = try tcp()
        configuration.socket = try env("PG_SOCKET_DIR") + "/.s.PGSQL." + (try env("PG_PORT"))
        return configuration
    }

    /// Runs `body` with a running store (its `run()` in a child task), then stops it: the run
    /// task is cancelled and awaited, so nothing of the store outlives the test. The store must
    /// close every connection and return within 10 seconds.
    static func withStore<R: Sendable>(
        _ configuration: PostgresSessionStore.Configuration,
        migrate: Bool = true,
        _ body: @Sendable (PostgresSessionStore) async throws -> R
    ) async throws -> R {
        let store = try PostgresSessionStore(configuration: configuration, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            let result: Result<R, any Error>
            do {
                if migrate { try await Migrations.shared.ensure(configuration) }
                result = .success(try await body(store))
            } catch {
                result = .failure(error)
            }
            group.cancelAll()
            let start = ContinuousClock.now
            try await group.waitForAll()
            let shutdown = ContinuousClock.now - start
            #expect(shutdown < .seconds(10), "the store took \(shutdown) to shut down")
            return try result.get()
        }
    }

    /// A raw connection for checks behind the store's back: as `PG_USER` over TCP, or as the
    /// superuser over the unix socket (trust authentication).
    static func withConnection<R: Sendable>(
        superuser: Bool = false,
        database: String? = nil,
        port: Int? = nil,
        _ body: (PostgresConnection) async throws -> R
    ) async throws -> R {
        var configuration: PostgresConnection.Configuration
        let port = if let port { port } else { Int(try env("PG_PORT"))! }
        if superuser {
            configuration = PostgresConnection.Configuration(
                unixSocketPath: try env("PG_SOCKET_DIR") + "/.s.PGSQL.\(port)",
                username: try env("PG_SUPERUSER"),
                password: nil,
                database: database ?? "postgres"
            )
        } else {
            configuration = PostgresConnection.Configuration(
                host: try env("PG_HOST"),
                port: port,
                username: try env("PG_USER"),
                password: try env("PG_PASSWORD"),
                database: try database ?? env("PG_DATABASE"),
                tls: .disable
            )
        }
        // Generous: the helpers must not fail where a loaded machine is slow to connect.
        configuration.options.connectTimeout = .seconds(60)
        let connection = try await PostgresConnection.connect(
            on: PostgresClient.defaultEventLoopGroup.any(),
            configuration: configuration,
            id: 0,
            logger: logger
        )
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// `PG_USER` over TCP without TLS, with a generous connect timeout.
    static func plainConfiguration() throws -> PostgresConnection.Configuration {
        var configuration = PostgresConnection.Configuration(
            host: try env("PG_HOST"), port: Int(try env("PG_PORT"))!, username: try env("PG_USER"),
            password: try env("PG_PASSWORD"), database: try env("PG_DATABASE"), tls: .disable)
        configuration.options.connectTimeout = .seconds(60)
        return configuration
    }

    /// One row of a sessions table as the interop vectors dump it.
    struct Row: Hashable, Sendable, CustomStringConvertible {
        var sid: String
        var name: String?
        var data: String?
        var exp: Int

        var description: String { "(\(sid.prefix(8))…, \(name ?? "nil"), \(data?.count ?? -1) bytes, \(exp))" }
    }

    struct MetaRow: Hashable, Sendable {
        var aud: String
        var sub: String
        var sid: String
    }

    static func rows(table: String, database: String? = nil) async throws -> Set<Row> {
        try await withConnection(database: database) { connection in
            var result = Set<Row>()
            let sql = "SELECT sid, name, data, extract(epoch FROM exp)::bigint FROM \(table)"
            for try await (sid, name, data, exp) in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                .decode((String, String?, String?, Int64).self)
            {
                result.insert(Row(sid: sid, name: name, data: data, exp: Int(exp)))
            }
            return result
        }
    }

    static func metaRows(table: String, database: String? = nil) async throws -> Set<MetaRow> {
        try await withConnection(database: database) { connection in
            var result = Set<MetaRow>()
            let sql = "SELECT aud, sub, sid FROM \(table)"
            for try await (aud, sub, sid) in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                .decode((String, String, String).self)
            {
                result.insert(MetaRow(aud: aud, sub: sub, sid: sid))
            }
            return result
        }
    }

    /// Runs `body` and returns the `SessionStoreError` it threw (failing when it threw nothing
    /// or another error).
    static func storeError(_ body: () async throws -> Void) async throws -> SessionStoreError {
        do {
            try await body()
        } catch let error as SessionStoreError {
            return error
        }
        Issue.record("expected a SessionStoreError, nothing was thrown")
        throw CancellationError()
    }
}

extension PostgresSessionStore.Configuration {
    /// Tables are created once per (database, table) pair.
    var migrationKey: String { "\(port)/\(database ?? "")/\(tableName)/\(tableNameMeta)" }
}

/// Each pair of tables is created once per run, by a store of its own with generous timeouts
/// (not by the first test's store, whose timeouts may be a test's deliberately short ones).
actor Migrations {
    static let shared = Migrations()
    private var done: [String: Task<Void, any Error>] = [:]

    func ensure(_ configuration: PostgresSessionStore.Configuration) async throws {
        let key = configuration.migrationKey
        if let task = done[key] { return try await task.value }
        var settings = configuration
        settings.connectTimeout = .seconds(60)
        settings.sendTimeout = .seconds(30)
        settings.readTimeout = .seconds(30)
        settings.poolSize = 1
        settings.backlog = nil
        let task = Task { [settings] in
            try await PG.withStore(settings, migrate: false) { store in try await store.migrate() }
        }
        done[key] = task
        do {
            try await task.value
        } catch {
            done[key] = nil
            throw error
        }
    }
}

/// A clock that moves only when told to, for the sweeper.
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [UInt64: Sleeper] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .nanoseconds(1) }

    var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { state -> Bool in
                    if deadline <= state.now || Task.isCancelled { return true }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }

    /// Moves time forward and wakes every sleeper whose deadline passed.
    func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { state.sleepers[id] = nil }
            return Array(due.values)
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits (yielding) until someone sleeps on the clock.
    func waitForSleeper() async {
        while sleeperCount == 0 { await Task.yield() }
    }
}
