import Foundation
import SessionStorage
import SessionStorageConformance
import Testing

@testable import MySQLSessionStorage
@testable import _MySQLWire

/// Statements of concurrent operations pipelined on shared connections, against the real
/// server: each caller gets its own reply, an error reply fails its statement alone, and a
/// stuck statement fails everything behind it with a timeout, after which the client recovers.
@Suite(.serialized)
struct MySQLPipeliningTests {
    static func client(readTimeout: Duration = .seconds(10)) throws -> MySQLClient {
        var configuration = MySQLConnection.Configuration(
            endpoint: .tcp(host: try MySQLTestServer.env("MYSQL_HOST"), port: Int(try MySQLTestServer.env("MYSQL_PORT"))!),
            username: try MySQLTestServer.env("MYSQL_USER"), password: try MySQLTestServer.env("MYSQL_PASSWORD"),
            database: try MySQLTestServer.env("MYSQL_DATABASE"))
        configuration.timeouts.read = readTimeout
        return MySQLClient(configuration: configuration, pool: .init(size: 4, sharedConnections: 1, pipelineDepth: 16))
    }

    static func withRunning<T: Sendable>(_ client: MySQLClient, _ body: @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    /// Over plain TCP and over verified TLS: the statements a read's replies release are held
    /// and flushed at `channelReadComplete`, which the TLS handler must pass on.
    @Test(arguments: [false, true])
    func concurrentOperationsOnASharedConnectionGetTheirOwnRows(overTLS: Bool) async throws {
        var configuration = try MySQLTestServer.configuration()
        if overTLS {
            configuration.username = try MySQLTestServer.env("MYSQL_TLS_USER")
            configuration.password = try MySQLTestServer.env("MYSQL_TLS_PASSWORD")
            configuration.ssl = true
            configuration.sslVerify = true
            configuration.sslCAFile = try MySQLTestServer.env("TLS_CA_FILE")
        }
        configuration.poolSize = 4
        configuration.sharedConnections = 1
        configuration.pipelineDepth = 16
        try await MySQLTestServer.withStore(configuration) { store in
            let t = Int(Date().timeIntervalSince1970)
            let keys = (0..<400).map { _ in SessionStoreConformance.randomKey() }
            for round in 0..<2 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, key) in keys.enumerated() {
                        group.addTask { try await store.set(name: "session", key: key, value: "value \(round) \(index)", ttl: 600, currentTime: t) }
                    }
                    try await group.waitForAll()
                }
                let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
                    for (index, key) in keys.enumerated() {
                        group.addTask {
                            try await store.get(name: "session", key: key, currentTime: t) == "value \(round) \(index)" ? 0 : 1
                        }
                    }
                    return try await group.reduce(0, +)
                }
                #expect(mismatches == 0)
            }
            for lane in [MySQLClient.Lane.reads, .writes] {
                let shared = store.client.sharedConnections(lane)
                #expect(shared.peakUsers > 1, "no statement of \(lane) was ever pipelined")
                #expect(shared.peakUsers <= 16)
                #expect(shared.entries.count <= 1)
            }
        }
    }

    @Test func anErrorReplyFailsItsStatementAloneAndTheConnectionStays() async throws {
        let client = try Self.client()
        let table = MySQLTestServer.uniqueTable()
        try await Self.withRunning(client) {
            try await client.withConnection { connection in
                try await connection.query("CREATE TABLE `\(table)` (id INT PRIMARY KEY, v INT)")
            }
            defer { Task { try? await Self.dropTable(table) } }
            let insert = "INSERT INTO `\(table)` (id, v) VALUES (?, ?)"
            try await client.execute(insert, binds: [.int(0), .int(0)])  // prepared and cached
            let connectionBefore = client.sharedConnections(.writes).entries.map(\.connectionID)
            // Ids 0..<20 twice over: every id's second insert is a duplicate (1062).
            let outcomes = try await withThrowingTaskGroup(of: Int?.self) { group in
                for index in 1..<41 {
                    group.addTask {
                        do {
                            try await client.execute(insert, binds: [.int(Int64(index % 20 + 1)), .int(Int64(index))])
                            return nil
                        } catch let error as MySQLError {
                            return Int(error.errorCode ?? 0)
                        }
                    }
                }
                return try await group.reduce(into: [Int?]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == nil }.count == 20)
            #expect(outcomes.filter { $0 == 1062 }.count == 20)
            let rows = try await client.execute("SELECT COUNT(*) FROM `\(table)`")
            #expect(rows.rows.first?.values.first?.int == 21)
            #expect(client.sharedConnections(.writes).peakUsers > 1, "no statement was ever pipelined")
            #expect(client.sharedConnections(.writes).entries.map(\.connectionID) == connectionBefore, "the error closed the shared connection")
        }
    }

    @Test func aStuckStatementTimesOutWithEverythingBehindItThenTheClientRecovers() async throws {
        let client = try Self.client(readTimeout: .milliseconds(500))
        try await Self.withRunning(client) {
            // Both statements prepared and cached on the shared connection first.
            try await client.execute("SELECT SLEEP(?)", binds: [.int(0)])
            try await client.execute("SELECT ? + 1", binds: [.int(1)])
            let start = ContinuousClock.now
            let codes = try await withThrowingTaskGroup(of: String.self) { group in
                group.addTask {
                    do {
                        try await client.execute("SELECT SLEEP(?)", binds: [.int(3)])
                        return "ok"
                    } catch let error as MySQLError {
                        return error.code.description
                    }
                }
                try await Task.sleep(for: .milliseconds(50))
                for index in 0..<5 {
                    group.addTask {
                        do {
                            try await client.execute("SELECT ? + 1", binds: [.int(Int64(index))])
                            return "ok"
                        } catch let error as MySQLError {
                            return error.code.description
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(ContinuousClock.now - start < .seconds(2), "the timeout did not end the pipeline")
            #expect(codes.first { $0 != "timeout" } == nil, "expected every statement to time out, got \(codes)")
            let result = try await client.execute("SELECT ? + 1", binds: [.int(41)])
            #expect(result.rows.first?.values.first?.int == 42)
        }
    }

    @Test func aWriteWaitingForARowLockHoldsUpNoRead() async throws {
        var configuration = try MySQLTestServer.configuration()
        configuration.poolSize = 4
        configuration.sharedConnections = 1
        try await MySQLTestServer.withStore(configuration) { store in
            let t = Int(Date().timeIntervalSince1970)
            let locked = SessionStoreConformance.randomKey()
            let other = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: locked, value: "before", ttl: 600, currentTime: t)
            try await store.set(name: "session", key: other, value: "other", ttl: 600, currentTime: t)
            _ = try await store.get(name: "session", key: other, currentTime: t)  // the read statement prepared
            // Another client holds the row's lock for a second.
            let holder = try await MySQLTestServer.connect()
            _ = try await holder.query("BEGIN")
            _ = try await holder.execute(
                "SELECT sid FROM `\(store.configuration.tableName)` WHERE sid = ? FOR UPDATE", binds: [.string(locked)])
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Waits for the lock.
                    try await store.set(name: "session", key: locked, value: "after", ttl: 600, currentTime: t)
                }
                try await Task.sleep(for: .milliseconds(100))
                let start = ContinuousClock.now
                for _ in 0..<20 {
                    #expect(try await store.get(name: "session", key: other, currentTime: t) == "other")
                }
                #expect(ContinuousClock.now - start < .milliseconds(700), "reads waited behind the locked write")
                try await Task.sleep(for: .milliseconds(900))
                _ = try await holder.query("COMMIT")
                try await group.waitForAll()
            }
            await holder.closeGracefully()
            #expect(try await store.get(name: "session", key: locked, currentTime: t) == "after")
        }
    }

    static func dropTable(_ table: String) async throws {
        let connection = try await MySQLTestServer.connect()
        _ = try await connection.query("DROP TABLE IF EXISTS `\(table)`")
        await connection.closeGracefully()
    }
}
