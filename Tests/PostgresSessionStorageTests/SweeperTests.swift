import PostgresNIO
import PostgresSessionStorage
import SessionStorage
import SessionStorageConformance
import Testing

@Suite("PostgreSQL expired-row cleanup")
struct PostgresSweeperTests {
    /// A fresh pair of tables, so counts are exact.
    func freshTables() throws -> PostgresSessionStore.Configuration {
        var configuration = try PG.tcp()
        configuration.tableName = PG.unique("sweep")
        configuration.tableNameMeta = configuration.tableName + "_meta"
        return configuration
    }

    @Test("deleteExpired deletes at most batchSize rows, only expired ones, metadata by cascade")
    func deleteExpiredBatches() async throws {
        let configuration = try freshTables()
        try await PG.withStore(configuration) { store in
            let t = 1_700_000_000
            let metadata = try SessionMetadata(audience: "app", subject: "alice")
            for index in 0..<7 {
                try await store.set(
                    name: "session", key: SessionStoreConformance.randomKey(), value: "x", ttl: 10 + index, currentTime: t,
                    metadata: metadata)
            }
            let live = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: live, value: "y", ttl: 1000, currentTime: t, metadata: metadata)
            // exp < currentTime: at t + 13, the rows expiring at t+10, t+11, t+12 are expired.
            #expect(try await store.deleteExpired(currentTime: t + 13, batchSize: 2) == 2)
            #expect(try await store.deleteExpired(currentTime: t + 13, batchSize: 2) == 1)
            #expect(try await store.deleteExpired(currentTime: t + 13, batchSize: 2) == 0)
            #expect(try await PG.rows(table: configuration.tableName).count == 5)
            #expect(try await PG.metaRows(table: configuration.tableNameMeta).count == 5)
            #expect(try await store.deleteExpired(currentTime: t + 100, batchSize: 100) == 4)
            #expect(try await PG.rows(table: configuration.tableName).map(\.sid) == [live])
            #expect(try await PG.metaRows(table: configuration.tableNameMeta).map(\.sid) == [live])
        }
    }

    @Test("the sweeper runs on its clock and deletes in batches until a batch is short")
    func sweeperWithManualClock() async throws {
        let configuration = try freshTables()
        try await PG.withStore(configuration) { store in
            let t = 1_700_000_000
            for _ in 0..<25 {
                try await store.set(name: "session", key: SessionStoreConformance.randomKey(), value: "x", ttl: 10, currentTime: t)
            }
            let live = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: live, value: "y", ttl: 1000, currentTime: t)

            let clock = ManualClock()
            let reports = AsyncStream.makeStream(of: PostgresSessionSweeper<ManualClock>.Report.self)
            let sweeper = PostgresSessionSweeper(
                store: store,
                configuration: .init(interval: .seconds(60), jitter: .seconds(5), batchSize: 10),
                clock: clock,
                currentTime: { t + 100 },
                logger: PG.logger,
                onSweep: { reports.continuation.yield($0) }
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await sweeper.run() }
                var iterator = reports.stream.makeAsyncIterator()

                await clock.waitForSleeper()
                // Before the interval nothing happens.
                clock.advance(by: .seconds(59))
                #expect(clock.sleeperCount == 1)
                let untouched = try await PG.rows(table: configuration.tableName)
                #expect(untouched.count == 26)

                // interval + the largest jitter wakes it whatever the jitter drawn.
                clock.advance(by: .seconds(6))
                let first = await iterator.next()
                #expect(first?.batches == [10, 10, 5])
                let left = try await PG.rows(table: configuration.tableName)
                #expect(left.map(\.sid) == [live])

                await clock.waitForSleeper()
                clock.advance(by: .seconds(65))
                let second = await iterator.next()
                #expect(second?.batches == [0])
                group.cancelAll()
            }
        }
    }
}
