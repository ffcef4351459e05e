import NIOCore
import PostgresNIO
@testable import PostgresSessionStorage
import SessionStorage
import Testing

@Suite("PostgreSQL statements on a closing connection")
struct PostgresLeasedConnectionTests {
    /// A connection of the test's own, closed and fully torn down (its close future completed).
    func closedConnection() async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(
            on: PostgresClient.defaultEventLoopGroup.any(),
            configuration: try PG.plainConfiguration(),
            id: 7,
            logger: PG.logger
        )
        try await connection.close()
        try await connection.closeFuture.get()
        return connection
    }

    @Test("a statement written after the connection closed fails with connectionClosed at once, not at the deadline")
    func statementAfterClose() async throws {
        let connection = try await closedConnection()
        let leased = LeasedConnection(connection: connection, deadline: .now() + .seconds(30), logger: PG.logger)
        let start = ContinuousClock.now
        let error = try await PG.storeError { _ = try await leased.query("SELECT 1") }
        #expect(error.code == .connectionClosed)
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("a statement past its deadline fails with timeout and closes the connection")
    func deadline() async throws {
        let connection = try await PostgresConnection.connect(
            on: PostgresClient.defaultEventLoopGroup.any(),
            configuration: try PG.plainConfiguration(),
            id: 8,
            logger: PG.logger
        )
        let leased = LeasedConnection(connection: connection, deadline: .now() + .milliseconds(500), logger: PG.logger)
        let start = ContinuousClock.now
        let error = try await PG.storeError { _ = try await leased.query("SELECT pg_sleep(30)") }
        #expect(error.code == .timeout)
        #expect(ContinuousClock.now - start < .seconds(5))
        try await connection.closeFuture.get()
        #expect(connection.isClosed)
    }
}
