import Foundation
import Logging
import NIOSSL
import SessionStorage
import SessionStorageConformance
import Testing
import _MySQLWire

@testable import MySQLSessionStorage

/// The server of the tests, from the variables `scripts/services.sh` exports.
enum MySQLTestServer {
    static func env(_ name: String) throws -> String {
        try #require(ProcessInfo.processInfo.environment[name], "\(name) is not set: start servers with scripts/services.sh")
    }

    static func uniqueTable() -> String {
        "sess_" + String(UInt64.random(in: .min ... .max), radix: 36)
    }

    /// A store configuration for the TCP server with a password and fresh tables.
    static func configuration(
        schema: MySQLSessionStore.Schema = .ascii, maxPacketSize: Int = 1 << 20, table: String = uniqueTable()
    ) throws -> MySQLSessionStore.Configuration {
        MySQLSessionStore.Configuration(
            host: try env("MYSQL_HOST"), port: Int(try env("MYSQL_PORT"))!, username: try env("MYSQL_USER"),
            password: try env("MYSQL_PASSWORD"), database: try env("MYSQL_DATABASE"), tableName: table, tableNameMeta: table + "_meta",
            maxPacketSize: maxPacketSize, connectTimeout: .seconds(3), poolSize: 8, schema: schema)
    }

    /// Runs `body` with a migrated store whose pool runs; drops the tables afterwards.
    static func withStore<T: Sendable>(
        _ configuration: MySQLSessionStore.Configuration, drop: Bool = true,
        _ body: @Sendable (MySQLSessionStore) async throws -> T
    ) async throws -> T {
        let store = try MySQLSessionStore(configuration: configuration)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.migrate()
            do {
                let result = try await body(store)
                if drop { try? await dropTables(store) }
                return result
            } catch {
                if drop { try? await dropTables(store) }
                throw error
            }
        }
    }

    static func dropTables(_ store: MySQLSessionStore) async throws {
        try await store.client.withConnection { connection in
            try await connection.query("DROP TABLE IF EXISTS `\(store.configuration.tableNameMeta)`")
            try await connection.query("DROP TABLE IF EXISTS `\(store.configuration.tableName)`")
        }
    }

    /// A direct connection (no pool) for checks that bypass the store.
    static func connect(charset: MySQLCharset = .ascii) async throws -> MySQLConnection {
        try await MySQLConnection.connect(
            configuration: .init(
                endpoint: .tcp(host: try env("MYSQL_HOST"), port: Int(try env("MYSQL_PORT"))!), username: try env("MYSQL_USER"),
                password: try env("MYSQL_PASSWORD"), database: try env("MYSQL_DATABASE"), charset: charset,
                maxPacketSize: 16 << 20, setupStatements: ["SET time_zone = '+00:00'"]))
    }
}
