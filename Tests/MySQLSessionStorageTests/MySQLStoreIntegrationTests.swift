import Foundation
import NIOSSL
import SessionStorage
import SessionStorageConformance
import Testing
import _MySQLWire

@testable import MySQLSessionStorage

/// Every test of this target that needs the server, serialized (the restart test stops the server).
@Suite("MySQL store against MariaDB", .serialized)
struct MySQLServerTests {
    static let options = MySQLConformanceTests.options


    func rowCount(_ table: String) async throws -> Int {
        let connection = try await MySQLTestServer.connect()
        defer { connection.close() }
        let result = try await connection.query("SELECT COUNT(*) FROM `\(table)`")
        return try #require(result.rows.first?[0].int)
    }

    // MARK: transports

    @Test(arguments: SessionStoreConformance.Case.allCases)
    func conformanceOverVerifiedTLSWithAUserRequiringSSL(_ testCase: SessionStoreConformance.Case) async throws {
        var configuration = try MySQLTestServer.configuration()
        configuration.username = try MySQLTestServer.env("MYSQL_TLS_USER")
        configuration.password = try MySQLTestServer.env("MYSQL_TLS_PASSWORD")
        configuration.ssl = true
        configuration.sslVerify = true
        configuration.sslCAFile = try MySQLTestServer.env("TLS_CA_FILE")
        try await MySQLTestServer.withStore(configuration) { store in
            let cipher = try await store.client.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            #expect(cipher.rows.first?[1].string?.isEmpty == false, "the connection is not encrypted")
            try await SessionStoreConformance(store: store, options: Self.options).run(testCase)
        }
    }

    @Test(arguments: SessionStoreConformance.Case.allCases)
    func conformanceOverTheUnixSocket(_ testCase: SessionStoreConformance.Case) async throws {
        var configuration = try MySQLTestServer.configuration()
        configuration.socket = try MySQLTestServer.env("MYSQL_SOCKET")
        try await MySQLTestServer.withStore(configuration) { store in
            try await SessionStoreConformance(store: store, options: Self.options).run(testCase)
        }
    }

    @Test func tlsWithAnUnknownCAFails() async throws {
        var configuration = try MySQLTestServer.configuration()
        configuration.ssl = true
        configuration.sslCAFile = try MySQLTestServer.env("TLS_UNKNOWN_CA_FILE")
        let store = try MySQLSessionStore(configuration: configuration)
        try await withRunning(store) {
            await expectCode(.tls) { _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1) }
        }
    }

    @Test func userRequiringSSLIsRefusedWithoutTLS() async throws {
        var configuration = try MySQLTestServer.configuration()
        configuration.username = try MySQLTestServer.env("MYSQL_TLS_USER")
        configuration.password = try MySQLTestServer.env("MYSQL_TLS_PASSWORD")
        let store = try MySQLSessionStore(configuration: configuration)
        try await withRunning(store) {
            await expectCode(.authenticationFailed) {
                _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1)
            }
        }
    }

    @Test func wrongPasswordIsATypedErrorWithoutThePassword() async throws {
        var configuration = try MySQLTestServer.configuration()
        configuration.password = "wrong-Secret-42"
        let store = try MySQLSessionStore(configuration: configuration)
        try await withRunning(store) {
            do {
                _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1)
                Issue.record("a wrong password was accepted")
            } catch let error as SessionStoreError {
                #expect(error.code == .authenticationFailed)
                #expect(!error.description.contains("wrong-Secret-42"))
                #expect(!error.debugDescription.contains("wrong-Secret-42"))
                #expect((error.underlying as? MySQLError)?.errorCode == 1045)
            }
        }
    }

    // MARK: input checks

    @Test func nonASCIIOrOverlongIndexValuesAreRefusedBeforeSending() async throws {
        try await MySQLTestServer.withStore(try MySQLTestServer.configuration()) { store in
            let t = Int(Date().timeIntervalSince1970)
            let long = String(repeating: "a", count: 256)
            let cases: [(String, String, String)] = [
                ("session", "applicación", "alice"), ("session", "app", "名前"), ("sessión", "app", "alice"),
                ("session", long, "alice"), ("session", "app", long), (long, "app", "alice"),
            ]
            for (name, audience, subject) in cases {
                let metadata = try SessionMetadata(audience: audience, subject: subject)
                await expectCode(.invalidArgument) {
                    try await store.set(name: name, key: SessionStoreConformance.randomKey(), value: "v", ttl: 60, currentTime: t, metadata: metadata)
                }
                if name == "session" {  // readMetadata does not use the name
                    await expectCode(.invalidArgument) {
                        _ = try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: t)
                    }
                }
            }
            await expectCode(.invalidArgument) {
                try await store.set(name: "session", key: String(repeating: "k", count: 44), value: "v", ttl: 60, currentTime: t)
            }
            await expectCode(.invalidArgument) {
                try await store.set(name: "session", key: "ключ", value: "v", ttl: 60, currentTime: t)
            }
            #expect(try await rowCount(store.configuration.tableName) == 0)
            #expect(try await rowCount(store.configuration.tableNameMeta) == 0)
        }
    }

    @Test func injectionStringsRoundTripVerbatimAndTablesStayIntact() async throws {
        let configuration = try MySQLTestServer.configuration()
        try await MySQLTestServer.withStore(configuration) { store in
            let t = Int(Date().timeIntervalSince1970)
            let nasty = [
                "'; DROP TABLE \(configuration.tableName); --", "\" OR \"1\"=\"1", "\\'; DELETE FROM \(configuration.tableNameMeta); #",
                "x' OR '1'='1", "`; TRUNCATE `\(configuration.tableName)`", "%_\\%\\_",
            ]
            for (index, text) in nasty.enumerated() {
                let key = SessionStoreConformance.randomKey()
                let metadata = try SessionMetadata(audience: text, subject: text + "\(index)")
                try await store.set(name: text, key: key, value: text, ttl: 60, currentTime: t, metadata: metadata)
                #expect(try await store.get(name: text, key: key, currentTime: t) == text)
                #expect(try await store.readMetadata(name: text, audience: text, subject: text + "\(index)", currentTime: t) == [key: t + 60])
            }
            #expect(try await rowCount(configuration.tableName) == nasty.count)
            #expect(try await rowCount(configuration.tableNameMeta) == nasty.count)
            // A LIKE wildcard in a subject matches only itself.
            #expect(try await store.readMetadata(name: "x", audience: "%", subject: "%", currentTime: t).isEmpty)
        }
    }

    @Test func valueOverMaxPacketSizeIsRefusedAndNothingIsWritten() async throws {
        let configuration = try MySQLTestServer.configuration(maxPacketSize: 64 * 1024)
        try await MySQLTestServer.withStore(configuration) { store in
            let t = Int(Date().timeIntervalSince1970)
            let key = SessionStoreConformance.randomKey()
            let metadata = try SessionMetadata(audience: "app", subject: "alice")
            await expectCode(.valueTooLarge) {
                try await store.set(name: "session", key: key, value: String(repeating: "v", count: 64 * 1024), ttl: 60, currentTime: t, metadata: metadata)
            }
            await expectCode(.valueTooLarge) {
                try await store.set(name: "session", key: key, value: String(repeating: "v", count: 64 * 1024), ttl: 60, currentTime: t)
            }
            #expect(try await store.get(name: "session", key: key, currentTime: t) == nil)
            #expect(try await rowCount(configuration.tableName) == 0)
            #expect(try await rowCount(configuration.tableNameMeta) == 0)
            // Just under the limit fits.
            try await store.set(name: "session", key: key, value: String(repeating: "v", count: 64 * 1024 - 200), ttl: 60, currentTime: t)
            #expect(try await store.get(name: "session", key: key, currentTime: t)?.count == 64 * 1024 - 200)
        }
    }

    // MARK: time zones

    @Test func serverTimeZoneDoesNotChangeResults() async throws {
        let socket = try MySQLTestServer.env("MYSQL_SOCKET")
        let superuser = ProcessInfo.processInfo.environment["MYSQL_SUPERUSER"] ?? "root"
        let admin = try await MySQLConnection.connect(
            configuration: .init(
                endpoint: .unixSocket(path: socket), username: superuser,
                password: ProcessInfo.processInfo.environment["MYSQL_SUPERUSER_PASSWORD"] ?? ""))
        defer { admin.close() }
        let configuration = try MySQLTestServer.configuration()
        let t = 1_795_310_638
        let key = SessionStoreConformance.randomKey()
        let metadata = try SessionMetadata(audience: "app1", subject: "alice")
        var readings: [[String]] = []
        // MariaDB accepts offsets -12:59…+13:00 (MySQL 8 up to +14:00).
        for zone in ["+00:00", "+13:00", "-12:00"] {
            try await admin.query("SET GLOBAL time_zone = '\(zone)'")
            do {
                let reading = try await MySQLTestServer.withStore(configuration, drop: false) { store in
                    // A new connection without the pin sees the server's zone…
                    let raw = try await MySQLConnection.connect(
                        configuration: .init(
                            endpoint: .tcp(host: try MySQLTestServer.env("MYSQL_HOST"), port: Int(try MySQLTestServer.env("MYSQL_PORT"))!),
                            username: configuration.username, password: configuration.password, database: configuration.database))
                    let zoneRow = try await raw.query("SELECT @@session.time_zone")
                    raw.close()
                    #expect(zoneRow.rows.first?[0].string == zone)
                    // …the store's connections do not.
                    try await store.set(name: "session", key: key, value: "v-\(zone)", ttl: 60, currentTime: t, metadata: metadata)
                    let index = try await store.readMetadata(name: "session", audience: "app1", subject: "alice", currentTime: t)
                    let live = try await store.get(name: "session", key: key, currentTime: t + 60)
                    let expired = try await store.get(name: "session", key: key, currentTime: t + 61)
                    let dump = try await store.client.query("SELECT DATE_FORMAT(exp, '%Y-%m-%d %H:%i:%s') FROM `\(configuration.tableName)`")
                    return [
                        "\(index)", live == nil ? "nil" : "live", expired == nil ? "nil" : "live", dump.rows.first?[0].string ?? "",
                    ]
                }
                readings.append(reading)
            } catch {
                try await admin.query("SET GLOBAL time_zone = 'SYSTEM'")
                throw error
            }
        }
        try await admin.query("SET GLOBAL time_zone = 'SYSTEM'")
        let store = try MySQLSessionStore(configuration: configuration)
        try await withRunning(store) { try await MySQLTestServer.dropTables(store) }
        #expect(readings.count == 3)
        #expect(Set(readings.map { $0.joined(separator: "|") }).count == 1, "results differ by server time zone: \(readings)")
        // The DATETIME holds UTC, as lua-resty-session wrote on a UTC server: t + 60 = 01:24:58 UTC.
        #expect(readings.first?[3] == "2026-11-22 01:24:58")
        #expect(readings.first?[0] == "\([key: t + 60])")
    }

    // MARK: interop with lua-resty-session's rows

    @Test func readsRowsWrittenByLuaRestySessionAndWritesTheSameShape() async throws {
        let vector = try StorageVector("mysql-patched-mariadb.json")
        let t = vector.currentTime
        let dump = try #require(vector.json["server_dump"] as? [String: Any])
        let sessions = try #require(dump["sessions"] as? [[String: Any]]).map { row in
            ["sid": "\(row["sid"]!)", "name": "\(row["name"]!)", "data": "\(row["data"]!)", "exp": "\(row["exp"]!)", "exp_unix": "\(row["exp_unix"]!)"]
        }
        let meta = try #require(dump["sessions_meta"] as? [[String: Any]]).map { row in
            ["aud": "\(row["aud"]!)", "sub": "\(row["sub"]!)", "sid": "\(row["sid"]!)"]
        }
        let configuration = try MySQLTestServer.configuration()
        try await MySQLTestServer.withStore(configuration) { store in
            // 1. The original's rows, inserted as it wrote them (its statement shapes, with FROM_UNIXTIME).
            try await store.client.withConnection { connection in
                for row in sessions {
                    try await connection.execute(
                        "INSERT INTO `\(configuration.tableName)` (sid, name, data, exp) VALUES (?, ?, ?, FROM_UNIXTIME(?))",
                        binds: [
                            .string(row["sid"]!), .string(row["name"]!), .string(row["data"]!),
                            .int(Int64(row["exp_unix"]!)!),
                        ])
                }
                for row in meta {
                    try await connection.execute(
                        "INSERT INTO `\(configuration.tableNameMeta)` (aud, sub, sid) VALUES (?, ?, ?)",
                        binds: [.string(row["aud"]!), .string(row["sub"]!), .string(row["sid"]!)])
                }
                // The DATETIME text equals the original's dump (UTC).
                let exps = try await connection.query("SELECT sid, DATE_FORMAT(exp, '%Y-%m-%d %H:%i:%s') FROM `\(configuration.tableName)` ORDER BY sid")
                let expected = sessions.sorted { ($0["sid"]!) < ($1["sid"]!) }.map { $0["exp"]! }
                #expect(exps.rows.map { $0[1].string ?? "" } == expected)
            }
            for row in sessions {
                let value = try await store.get(name: "session", key: row["sid"]!, currentTime: t)
                #expect(value == row["data"] )
            }
            var expectedIndex: [String: Int] = [:]
            for row in meta where row["aud"] == "app1" && row["sub"] == "alice" {
                let sid = row["sid"]!
                expectedIndex[sid] = sessions.first { $0["sid"] == sid }?["exp_unix"].flatMap { Int($0) }
            }
            #expect(try await store.readMetadata(name: "session", audience: "app1", subject: "alice", currentTime: t) == expectedIndex)
            // Past the old key's stale expiry only the new key is listed.
            let later = try await store.readMetadata(name: "session", audience: "app1", subject: "alice", currentTime: t + 11)
            #expect(later.count == 1)
        }

        // 2. The vector's writes through this store produce the same rows (minus the rotated-out
        //    key's index rows, which every backend here drops at once).
        try await MySQLTestServer.withStore(try MySQLTestServer.configuration()) { store in
            for call in vector.calls where call.method == "set" {
                let args = call.args
                let metadata = args.count > 7 ? try SessionMetadata(audiences: ["app1", "app2"], subjects: ["alice", "bob"]) : nil
                try await store.set(
                    name: args[0].string!, key: args[1].string!, value: args[2].string!, ttl: args[3].integer!, currentTime: t,
                    oldKey: args.count > 5 ? args[5].string : nil, staleTTL: args.count > 6 ? args[6].integer ?? 10 : 10, metadata: metadata)
            }
            let ours = try await store.client.query(
                "SELECT sid, name, data, DATE_FORMAT(exp, '%Y-%m-%d %H:%i:%s'), UNIX_TIMESTAMP(exp) FROM `\(store.configuration.tableName)` ORDER BY sid")
            let expectedRows = sessions.sorted { ($0["sid"]!) < ($1["sid"]!) }.map {
                ["\($0["sid"]!)", "\($0["name"]!)", "\($0["data"]!)", "\($0["exp"]!)", "\($0["exp_unix"]!)"]
            }
            #expect(ours.rows.map { $0.values.map { $0.string ?? "NULL" } } == expectedRows)
            let ourMeta = try await store.client.query(
                "SELECT aud, sub, sid FROM `\(store.configuration.tableNameMeta)` ORDER BY aud, sub, sid")
            let rotatedOut = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
            let expectedMeta = meta.filter { $0["sid"] != rotatedOut }.map { ["\($0["aud"]!)", "\($0["sub"]!)", "\($0["sid"]!)"] }
            #expect(ourMeta.rows.map { $0.values.map { $0.string ?? "NULL" } } == expectedMeta)
        }
    }

    // MARK: expiry sweeps

    @Test func deleteExpiredRemovesOnlyExpiredRowsInBatches() async throws {
        try await MySQLTestServer.withStore(try MySQLTestServer.configuration()) { store in
            let t = 1_700_000_000
            let metadata = try SessionMetadata(audience: "app", subject: "alice")
            for i in 0..<25 {
                try await store.set(name: "session", key: SessionStoreConformance.randomKey(), value: "v", ttl: 10 + i, currentTime: t, metadata: metadata)
            }
            let live = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: live, value: "live", ttl: 1000, currentTime: t, metadata: metadata)
            // Rows with exp < t + 30 (ttl 10…29): 20 of them, removed 7 at a time.
            let removed = try await store.deleteExpired(currentTime: t + 30, batchSize: 7)
            #expect(removed == 20)
            #expect(try await rowCount(store.configuration.tableName) == 6)
            #expect(try await rowCount(store.configuration.tableNameMeta) == 6)  // cascade
            let bounded = try await store.deleteExpired(currentTime: t + 100, batchSize: 2, maximumBatches: 1)
            #expect(bounded == 2)
            #expect(try await store.get(name: "session", key: live, currentTime: t + 100) == "live")
        }
    }

    @Test func sweeperRunsOnTheInjectedClock() async throws {
        try await MySQLTestServer.withStore(try MySQLTestServer.configuration()) { store in
            let t = 1_700_000_000
            for _ in 0..<3 {
                try await store.set(name: "session", key: SessionStoreConformance.randomKey(), value: "v", ttl: 10, currentTime: t)
            }
            let clock = ManualClock()
            let sweeper = MySQLSessionSweeper(store: store, interval: .seconds(60), jitter: .seconds(5), batchSize: 2, clock: clock, now: { t + 20 })
            let task = Task { try await sweeper.run() }
            await clock.waitForSleepers(1)
            #expect(try await rowCount(store.configuration.tableName) == 3)
            clock.advance(by: .seconds(65))
            var remaining = 3
            for _ in 0..<200 {
                remaining = try await rowCount(store.configuration.tableName)
                if remaining == 0 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            task.cancel()
            #expect(remaining == 0)
        }
    }

    // MARK: pool

    @Test func backlogFullFailsAtOnce() async throws {
        var configuration = try MySQLTestServer.configuration()
        configuration.poolSize = 1
        configuration.backlog = 0
        let store = try MySQLSessionStore(configuration: configuration)
        try await withRunning(store) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                let holding = AsyncStream<Void>.makeStream()
                group.addTask {
                    try await store.client.withConnection { connection in
                        holding.continuation.yield()
                        _ = try await connection.query("SELECT SLEEP(1)")
                    }
                }
                var iterator = holding.stream.makeAsyncIterator()
                await iterator.next()
                let start = ContinuousClock.now
                await expectCode(.poolExhausted) { _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1) }
                #expect(ContinuousClock.now - start < .milliseconds(500))
                try await group.waitForAll()
            }
        }
    }

    // MARK: restart

    @Test func serverRestartDuringLoadGivesClearErrorsThenRecovers() async throws {
        let script = ProcessInfo.processInfo.environment["SERVICES_SH"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/services.sh").path
        #expect(FileManager.default.isExecutableFile(atPath: script), "no \(script): start servers with scripts/services.sh")
        var configuration = try MySQLTestServer.configuration()
        configuration.readTimeout = .seconds(3)
        configuration.connectTimeout = .seconds(2)
        try await MySQLTestServer.withStore(configuration) { store in
            let t = Int(Date().timeIntervalSince1970)
            let key = SessionStoreConformance.randomKey()
            try await store.set(name: "session", key: key, value: "before", ttl: 600, currentTime: t)
            try shell(script, "kill", "mysql")
            var codes: Set<String> = []
            for _ in 0..<5 {
                let start = ContinuousClock.now
                do {
                    _ = try await store.get(name: "session", key: key, currentTime: t)
                    Issue.record("a read succeeded while the server was down")
                } catch let error as SessionStoreError {
                    codes.insert(error.code.description)
                    #expect(!error.description.contains(key))
                }
                #expect(ContinuousClock.now - start < .seconds(6), "an operation hung while the server was down")
            }
            #expect(codes.isSubset(of: ["connectionFailed", "connectionClosed", "timeout"]), "unexpected codes \(codes)")
            try shell(script, "restart", "mysql")
            var recovered: String?
            for _ in 0..<60 {
                recovered = try? await store.get(name: "session", key: key, currentTime: t)
                if recovered != nil { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(recovered == "before", "the store did not recover after the restart")
            try await store.set(name: "session", key: key, value: "after", ttl: 600, currentTime: t)
            #expect(try await store.get(name: "session", key: key, currentTime: t) == "after")
        }
    }
}

/// Runs a command and waits for it (posix_spawn + waitpid: Foundation's `Process` can miss the
/// exit of a script that starts a daemon).
func shell(_ arguments: String...) throws {
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    let spawned = posix_spawn(&pid, arguments[0], nil, nil, argv, environ)
    try #require(spawned == 0, "could not run \(arguments[0])")
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    try #require(status == 0, "\(arguments.joined(separator: " ")) failed")
}

func withRunning(_ store: MySQLSessionStore, _ body: @Sendable () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await store.run() }
        defer { group.cancelAll() }
        try await body()
    }
}

func expectCode(
    _ code: SessionStoreError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("expected \(code), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as SessionStoreError {
        #expect(error.code == code, "\(String(reflecting: error))", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected SessionStoreError(\(code)), got \(error)", sourceLocation: sourceLocation)
    }
}
