import Foundation
import NIOCore
import NIOPosix
import SessionStorage
import Testing

@testable import MySQLSessionStorage
@testable import _MySQLWire

@Suite("MySQL store: key and text checks")
struct MySQLStoreTextCheckTests {
    @Test func isASCIIAcceptsOnlyBytesBelow0x80() {
        #expect(MySQLSessionStore.isASCII(""))
        #expect(MySQLSessionStore.isASCII(String(repeating: "a", count: 43)))
        #expect(MySQLSessionStore.isASCII("0000000000000000000000000000000000000000001"))
        #expect(!MySQLSessionStore.isASCII("é"))
        #expect(!MySQLSessionStore.isASCII(String(repeating: "a", count: 42) + "é"))
        #expect(!MySQLSessionStore.isASCII("\u{80}"))
        #expect(MySQLSessionStore.isASCII("\u{7F}"))
        // A substring's copy and a string built from a view take the same path.
        let long = "prefix-é-" + String(repeating: "z", count: 100)
        #expect(!MySQLSessionStore.isASCII(String(long.dropLast(50))))
        #expect(MySQLSessionStore.isASCII(String(long.dropFirst(9))))
    }
}

extension MySQLServerTests {
    @Test func storeRunsItsConnectionsOnTheGivenEventLoopGroup() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let configuration = try MySQLTestServer.configuration()
        let store = try MySQLSessionStore(configuration: configuration, eventLoopGroup: group)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await store.run() }
            defer { tasks.cancelAll() }
            try await store.migrate()
            let now = Int(Date().timeIntervalSince1970)
            let key = String(repeating: "k", count: 43)
            let value = String(repeating: "v", count: 1024)
            try await store.set(SessionSetRequest(name: "session", key: key, value: value, ttl: 60, currentTime: now))
            #expect(try await store.get(name: "session", key: key, currentTime: now) == value)
            // Several connections at once: every one of them is on the group's only loop.
            let loops = try await withThrowingTaskGroup(of: Bool.self) { leases in
                for _ in 0..<4 {
                    leases.addTask {
                        try await store.client.withConnection { connection in
                            try await connection.query("SELECT SLEEP(0.05)")
                            return connection.channel.eventLoop === loop
                        }
                    }
                }
                return try await leases.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(loops == [true, true, true, true])
            try await MySQLTestServer.dropTables(store)
        }
        try await group.shutdownGracefully()
    }
}
