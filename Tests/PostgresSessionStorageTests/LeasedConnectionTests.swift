import NIOCore
import NIOPosix
import PostgresNIO
import _PoolLease
@testable import PostgresSessionStorage
import SessionStorage
import SessionStorageConformance
import Testing

@Suite("PostgreSQL statements on a closing connection")
struct PostgresLeasedConnectionTests {
    /// A connection of the test's own.
    func openConnection(id: Int) async throws -> StoreConnection {
        StoreConnection(
            try await PostgresConnection.connect(
                on: PostgresClient.defaultEventLoopGroup.any(),
                configuration: try PG.plainConfiguration(),
                id: id,
                logger: PG.logger
            ))
    }

    /// A connection of the test's own, closed and fully torn down (its close future completed).
    func closedConnection() async throws -> StoreConnection {
        let connection = try await openConnection(id: 7)
        try await connection.postgres.close()
        try await connection.postgres.closeFuture.get()
        return connection
    }

    @Test("a statement written after the connection closed fails with connectionClosed at once, not at the deadline")
    func statementAfterClose() async throws {
        let connection = try await closedConnection()
        let leased = LeasedConnection(connection: connection, deadline: .now() + .seconds(30), logger: PG.logger)
        let start = ContinuousClock.now
        let error = try await PG.storeError { _ = try await leased.query("SELECT 1") }
        #expect(error.code == .connectionClosed)
        var binds = StatementBinds(capacity: 1)
        binds.append(1)
        let prepared = try await PG.storeError { _ = try await leased.execute(prepared: "SELECT $1::bigint", binds) }
        #expect(prepared.code == .connectionClosed)
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("a statement past its deadline fails with timeout and closes the connection", arguments: [false, true])
    func deadline(prepared: Bool) async throws {
        let connection = try await openConnection(id: 8)
        let leased = LeasedConnection(connection: connection, deadline: .now() + .milliseconds(500), logger: PG.logger)
        let start = ContinuousClock.now
        let error = try await PG.storeError {
            if prepared {
                var binds = StatementBinds(capacity: 1)
                binds.append(30)
                _ = try await leased.execute(prepared: "SELECT pg_sleep($1::bigint)", binds)
            } else {
                _ = try await leased.query("SELECT pg_sleep(30)")
            }
        }
        #expect(error.code == .timeout)
        #expect(ContinuousClock.now - start < .seconds(5))
        try await connection.postgres.closeFuture.get()
        #expect(connection.postgres.isClosed)
    }

    @Test("one timer per connection: a later statement's deadline, earlier or later than the armed one, is kept")
    func deadlinesOfLaterStatements() async throws {
        let connection = try await openConnection(id: 11)
        // A quick statement arms the connection's timer for its deadline (1 s) ...
        let first = LeasedConnection(connection: connection, deadline: .now() + .seconds(1), logger: PG.logger)
        _ = try await first.query("SELECT 1")
        // ... a later statement with a deadline after it is not expired when that timer fires.
        let second = LeasedConnection(connection: connection, deadline: .now() + .milliseconds(2500), logger: PG.logger)
        let start = ContinuousClock.now
        let error = try await PG.storeError { _ = try await second.query("SELECT pg_sleep(30)") }
        let elapsed = ContinuousClock.now - start
        #expect(error.code == .timeout)
        #expect(elapsed >= .seconds(2) && elapsed < .seconds(6), "\(elapsed)")
        try await connection.postgres.closeFuture.get()

        // A statement with a deadline before the armed one re-arms the timer earlier.
        let other = try await openConnection(id: 12)
        let slow = LeasedConnection(connection: other, deadline: .now() + .seconds(60), logger: PG.logger)
        _ = try await slow.query("SELECT 1")
        let fast = LeasedConnection(connection: other, deadline: .now() + .milliseconds(500), logger: PG.logger)
        let again = ContinuousClock.now
        let timeout = try await PG.storeError { _ = try await fast.query("SELECT pg_sleep(30)") }
        #expect(timeout.code == .timeout)
        #expect(ContinuousClock.now - again < .seconds(5))
        try await other.postgres.closeFuture.get()
    }

    /// The rows of a prepared statement, as (text, text) pairs.
    func pairs(_ leased: LeasedConnection, _ sql: String, _ binds: StatementBinds) async throws -> [String] {
        try await leased.execute(prepared: sql, binds).map { row in
            let (number, text) = try row.decode((String, String?).self)
            return "\(number):\(text ?? "nil")"
        }
    }

    /// Runs `body` on a connection of the test's own, closed (and awaited) afterwards.
    func withOpenConnection(id: Int, _ body: (StoreConnection, LeasedConnection) async throws -> Void) async throws {
        let connection = try await openConnection(id: id)
        let leased = LeasedConnection(connection: connection, deadline: .now() + .seconds(30), logger: PG.logger)
        do {
            try await body(connection, leased)
        } catch {
            try? await connection.postgres.close()
            throw error
        }
        try await connection.postgres.close()
    }

    func prepared(_ connection: StoreConnection) async throws -> Int {
        try await connection.postgres.eventLoop.submit { connection.preparedCount }.get()
    }

    @Test("a statement is prepared once per connection; one the server dropped (DEALLOCATE ALL) is prepared again")
    func deallocated() async throws {
        try await withOpenConnection(id: 9) { connection, leased in
            let sql = "SELECT ($1::bigint + 1)::text, $2::text"
            var binds = StatementBinds(capacity: 2)
            binds.append(41)
            binds.append("a'b\"c;--")
            #expect(try await pairs(leased, sql, binds) == ["42:a'b\"c;--"])
            #expect(try await pairs(leased, sql, binds) == ["42:a'b\"c;--"])
            #expect(try await prepared(connection) == 1)
            try await leased.execute("DEALLOCATE ALL")
            // The cached statement is gone on the server: SQLSTATE 26000, then prepared again.
            #expect(try await pairs(leased, sql, binds) == ["42:a'b\"c;--"])
            #expect(try await prepared(connection) == 1)
        }
    }

    @Test("a statement whose result type changed (ALTER TABLE) is prepared again")
    func changedResultType() async throws {
        try await withOpenConnection(id: 10) { _, leased in
            try await leased.execute("CREATE TEMP TABLE t (n bigint, s text)")
            try await leased.execute("INSERT INTO t VALUES (1, 'x')")
            let sql = "SELECT * FROM t WHERE n >= $1::bigint"
            var binds = StatementBinds(capacity: 1)
            binds.append(0)
            #expect(try await leased.execute(prepared: sql, binds).count == 1)
            try await leased.execute("ALTER TABLE t ADD COLUMN extra int")
            let rows = try await leased.execute(prepared: sql, binds)
            #expect(rows.count == 1)
            #expect(rows.first.map { Array($0).count } == 3)
        }
    }

    @Test("a store whose connection the server terminated re-prepares on its new connection")
    func reconnect() async throws {
        var configuration = try PG.tcp()
        configuration.poolSize = 1
        configuration.application = PG.unique("reprepare")
        let application = configuration.application
        try await PG.withStore(configuration) { store in
            let key = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: key, value: "v1", ttl: 600, currentTime: 1000)
            #expect(try await store.get(name: "session", key: key, currentTime: 1000) == "v1")
            let terminated = try await PG.withConnection(superuser: true) { connection in
                var count = 0
                let query: PostgresQuery = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = \(application)"
                for try await ok in try await connection.query(query, logger: PG.logger).decode(Bool.self) where ok {
                    count += 1
                }
                return count
            }
            #expect(terminated == 1)
            // The first statement may meet the dying connection (connectionClosed); the store
            // then serves every operation from a new connection, its statements prepared anew.
            var failures: [SessionStoreError.Code] = []
            var value: String?
            for _ in 0..<3 {
                do {
                    value = try await store.get(name: "session", key: key, currentTime: 1000)
                    break
                } catch let error as SessionStoreError {
                    failures.append(error.code)
                }
            }
            #expect(value == "v1")
            #expect(failures.allSatisfy { $0 == .connectionClosed } && failures.count <= 1, "\(failures)")
            try await store.set(name: "session", key: key, value: "v2", ttl: 600, currentTime: 1000)
            #expect(try await store.get(name: "session", key: key, currentTime: 1000) == "v2")
        }
    }

    @Test("new connections go to the event loop with the fewest open connections of the pool")
    func placement() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        let placement = EventLoopPlacement(group)
        let taken = (0..<6).map { _ in placement.take() }
        #expect(placement.load == [2, 2, 2])
        #expect(Set(taken.map { ObjectIdentifier($0.eventLoop) }).count == 3)
        #expect(taken.map(\.slot) == [0, 1, 2, 0, 1, 2])
        #expect(taken[0].eventLoop === taken[3].eventLoop)
        // Connections closed on two loops: the next ones fill those first.
        placement.release(taken[1].slot)
        placement.release(taken[1].slot)
        placement.release(taken[2].slot)
        #expect(placement.load == [2, 0, 1])
        #expect([placement.take().slot, placement.take().slot, placement.take().slot].sorted() == [1, 1, 2])
        #expect(placement.load == [2, 2, 2])
        try await group.shutdownGracefully()
    }
}
