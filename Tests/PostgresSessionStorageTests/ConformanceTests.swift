import PostgresNIO
import PostgresSessionStorage
import SessionStorage
import SessionStorageConformance
import Testing

/// How the store under test reaches PostgreSQL.
enum Setup: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Password (SCRAM) authentication over TCP, plaintext.
    case tcp
    /// TLS required and verified against TLS_CA_FILE.
    case tls
    /// The unix-domain socket.
    case unixSocket
    /// A database whose TimeZone is UTC+14.
    case kiritimati
    /// A database whose TimeZone is UTC-10/-9 (with daylight saving).
    case adak

    var description: String { rawValue }

    var timeZone: String? {
        switch self {
        case .kiritimati: "Pacific/Kiritimati"
        case .adak: "America/Adak"
        default: nil
        }
    }

    func configuration() async throws -> PostgresSessionStore.Configuration {
        switch self {
        case .tcp: return try PG.tcp()
        case .tls: return try PG.tls()
        case .unixSocket: return try PG.socket()
        case .kiritimati, .adak:
            var configuration = try PG.tcp()
            configuration.database = try await TimeZoneDatabases.shared.database(timeZone: timeZone!)
            return configuration
        }
    }
}

/// Databases of this run whose default TimeZone is not UTC (`ALTER DATABASE … SET timezone`),
/// created once per time zone by the superuser and owned by PG_USER.
actor TimeZoneDatabases {
    static let shared = TimeZoneDatabases()
    private var databases: [String: Task<String, any Error>] = [:]

    func database(timeZone: String) async throws -> String {
        if let task = databases[timeZone] { return try await task.value }
        let task = Task {
            let name = PG.unique("sesstz")
            let owner = try PG.env("PG_USER")
            try await PG.withConnection(superuser: true) { connection in
                // Identifiers cannot be bound; both are generated or come from the environment.
                _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name) OWNER \"\(owner)\""), logger: PG.logger).collect()
                _ = try await connection.query(
                    PostgresQuery(unsafeSQL: "ALTER DATABASE \(name) SET timezone TO '\(timeZone)'"), logger: PG.logger
                ).collect()
            }
            return name
        }
        databases[timeZone] = task
        return try await task.value
    }
}

@Suite("PostgreSQL conformance")
struct PostgresConformanceTests {
    @Test(arguments: Setup.allCases, SessionStoreConformance.Case.allCases)
    func conformance(_ setup: Setup, _ testCase: SessionStoreConformance.Case) async throws {
        let configuration = try await setup.configuration()
        try await PG.withStore(configuration) { store in
            let suite = SessionStoreConformance(
                store: store,
                options: .init(expiry: .currentTimeParameter, concurrentTasks: setup == .tcp ? 200 : 60)
            )
            try await suite.run(testCase)
        }
    }

    @Test("a database with a non-UTC TimeZone really has it", arguments: [Setup.kiritimati, .adak])
    func timeZoneIsSet(_ setup: Setup) async throws {
        let configuration = try await setup.configuration()
        let zone = try await PG.withConnection(database: configuration.database) { connection in
            var zone = ""
            for try await value in try await connection.query("SHOW timezone", logger: PG.logger).decode(String.self) {
                zone = value
            }
            return zone
        }
        #expect(zone == setup.timeZone)
    }

    @Test("TLS is used and application_name is set", arguments: [Setup.tls, .tcp])
    func tlsAndApplicationName(_ setup: Setup) async throws {
        var configuration = try await setup.configuration()
        configuration.application = PG.unique("app")
        let application = configuration.application
        let ssl = try await PG.withStore(configuration) { store in
            _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1)
            // The store keeps its connection idle in the pool: look it up from outside.
            return try await PG.withConnection(superuser: true) { connection in
                var result: [Bool] = []
                let query: PostgresQuery = """
                    SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = \(application)
                    """
                for try await ssl in try await connection.query(query, logger: PG.logger).decode(Bool.self) {
                    result.append(ssl)
                }
                return result
            }
        }
        #expect(ssl == [setup == .tls])
    }
}
