import PostgresNIO
import PostgresSessionStorage
import SessionStorage
import SessionStorageConformance
import Synchronization
import Testing

/// Holds a row lock from a separate connection so that a store operation on that row blocks
/// (and keeps its pooled connection busy) until ``release()``.
final class RowLock: Sendable {
    private let connection: PostgresConnection

    private init(connection: PostgresConnection) {
        self.connection = connection
    }

    static func lock(table: String, sid: String) async throws -> RowLock {
        let connection = try await PostgresConnection.connect(
            on: PostgresClient.defaultEventLoopGroup.any(),
            configuration: try PG.plainConfiguration(),
            id: 1,
            logger: PG.logger
        )
        _ = try await connection.query("BEGIN", logger: PG.logger).collect()
        var binds = PostgresBindings()
        binds.append(sid)
        _ = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT 1 FROM \(table) WHERE sid = $1 FOR UPDATE", binds: binds), logger: PG.logger
        ).collect()
        return RowLock(connection: connection)
    }

    private let released = Mutex(false)

    /// Commits and closes; idempotent.
    func release() async throws {
        guard released.withLock({ state in defer { state = true }; return !state }) else { return }
        _ = try await connection.query("COMMIT", logger: PG.logger).collect()
        try await connection.close()
    }

    /// Waits until a backend of `application` waits for a lock.
    static func waitUntilBlocked(application: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let blocked = try await PG.withConnection { connection in
                var count = 0
                let query: PostgresQuery = """
                    SELECT count(*)::bigint FROM pg_stat_activity WHERE application_name = \(application) AND wait_event_type = 'Lock'
                    """
                for try await value in try await connection.query(query, logger: PG.logger).decode(Int64.self) {
                    count = Int(value)
                }
                return count
            }
            if blocked > 0 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("no backend of the store blocked on the row lock")
    }
}

@Suite("PostgreSQL pool limits and timeouts")
struct PostgresPoolTests {
    /// A store whose one busy connection blocks on a row lock held elsewhere.
    func blockedStore(
        poolSize: Int,
        backlog: Int?,
        readTimeout: Duration = .seconds(30),
        _ body: @Sendable @escaping (PostgresSessionStore, _ blocked: Task<Void, any Error>, _ lock: RowLock) async throws -> Void
    ) async throws {
        var configuration = try PG.tcp()
        configuration.poolSize = poolSize
        configuration.backlog = backlog
        configuration.readTimeout = readTimeout
        configuration.sendTimeout = .milliseconds(100)
        configuration.application = PG.unique("pooltest")
        let application = configuration.application
        try await PG.withStore(configuration) { store in
            let key = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: key, value: "first", ttl: 600, currentTime: 1000)
            let lock = try await RowLock.lock(table: PG.table, sid: key)
            let blocked = Task {
                try await store.set(name: "session", key: key, value: "second", ttl: 600, currentTime: 1000)
            }
            do {
                try await RowLock.waitUntilBlocked(application: application)
                try await body(store, blocked, lock)
            } catch {
                try? await lock.release()
                _ = await blocked.result
                throw error
            }
            try await lock.release()
            _ = await blocked.result
        }
    }

    @Test("pool full with backlog 0: poolExhausted at once")
    func backlogZero() async throws {
        try await blockedStore(poolSize: 1, backlog: 0) { store, blocked, lock in
            let start = ContinuousClock.now
            let error = try await PG.storeError {
                _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1000)
            }
            #expect(error.code == .poolExhausted)
            #expect(ContinuousClock.now - start < .seconds(1))
            try await lock.release()
            try await blocked.value
            // With the connection free again, operations succeed.
            #expect(try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1000) == nil)
        }
    }

    @Test("pool full with backlog 1: of two more callers one waits and succeeds, the other fails at once")
    func backlogOne() async throws {
        try await blockedStore(poolSize: 1, backlog: 1) { store, blocked, lock in
            let results = AsyncStream.makeStream(of: (Int, Result<String?, SessionStoreError>).self)
            for index in 0..<2 {
                Task {
                    do {
                        let value = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1000)
                        results.continuation.yield((index, .success(value)))
                    } catch let error as SessionStoreError {
                        results.continuation.yield((index, .failure(error)))
                    }
                }
            }
            var iterator = results.stream.makeAsyncIterator()
            let first = await iterator.next()
            guard case .failure(let error)? = first?.1 else {
                Issue.record("the first caller to finish should have been refused, got \(String(describing: first))")
                return
            }
            #expect(error.code == .poolExhausted)
            try await lock.release()
            try await blocked.value
            let second = await iterator.next()
            guard case .success(let value)? = second?.1 else {
                Issue.record("the waiting caller should have succeeded, got \(String(describing: second))")
                return
            }
            #expect(value == nil)
        }
    }

    @Test("a statement past send + read timeout fails with timeout; the store recovers")
    func readTimeout() async throws {
        // 5.1 s per statement: short enough for a test, long enough for the other statements
        // on a machine whose event loops are busy with the parallel suites' SCRAM handshakes.
        try await blockedStore(poolSize: 2, backlog: nil, readTimeout: .seconds(5)) { store, blocked, lock in
            let start = ContinuousClock.now
            let error = try await PG.storeError { try await blocked.value }
            let elapsed = ContinuousClock.now - start
            #expect(error.code == .timeout)
            #expect(elapsed < .seconds(5 + 5))
            // Other rows are still served, on another connection.
            let other = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: other, value: "v", ttl: 60, currentTime: 1000)
            #expect(try await store.get(name: "session", key: other, currentTime: 1000) == "v")
        }
    }
}
