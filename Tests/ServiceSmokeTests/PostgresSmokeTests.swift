import NIOSSL
import PostgresNIO
import Testing

/// Both PostgreSQL servers `scripts/services.sh` starts accept the test role.
@Suite("PostgreSQL servers are up", .timeLimit(.minutes(1)))
struct PostgresSmokeTests {
    private let logger = Logger(label: "service-smoke.postgres")

    private func configuration(port portVariable: String, tls: PostgresConnection.Configuration.TLS) throws
        -> PostgresConnection.Configuration
    {
        PostgresConnection.Configuration(
            host: try ServiceEnvironment.string("PG_HOST"),
            port: try ServiceEnvironment.port(portVariable),
            username: try ServiceEnvironment.string("PG_USER"),
            password: try ServiceEnvironment.string("PG_PASSWORD"),
            database: try ServiceEnvironment.string("PG_DATABASE"),
            tls: tls
        )
    }

    private func verifiedTLS(caFile: String) throws -> PostgresConnection.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(caFile)
        tls.certificateVerification = .fullVerification
        return .require(try NIOSSLContext(configuration: tls))
    }

    /// Runs `SELECT 1` and returns it with whether the session uses TLS.
    private func selectOne(_ configuration: PostgresConnection.Configuration) async throws -> (one: Int, ssl: Bool) {
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            var result: (Int, Bool)?
            let rows = try await connection.query(
                "SELECT 1, coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                logger: logger
            )
            for try await row in rows.decode((Int, Bool).self) { result = row }
            try await connection.close()
            let (one, ssl) = try #require(result)
            return (one, ssl)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    @Test func tlsServerAnswersOverVerifiedTLS() async throws {
        let tls = try verifiedTLS(caFile: try ServiceEnvironment.string("TLS_CA_FILE"))
        let answer = try await selectOne(try configuration(port: "PG_PORT", tls: tls))
        #expect(answer.one == 1)
        #expect(answer.ssl)
    }

    @Test func tlsServerIsRejectedByAClientTrustingAnotherCA() async throws {
        let tls = try verifiedTLS(caFile: try ServiceEnvironment.string("TLS_UNKNOWN_CA_FILE"))
        let configuration = try configuration(port: "PG_PORT", tls: tls)
        await #expect(throws: (any Error).self) { try await selectOne(configuration) }
    }

    @Test func plainServerAnswersWithoutTLS() async throws {
        let answer = try await selectOne(try configuration(port: "PG_NOTLS_PORT", tls: .disable))
        #expect(answer.one == 1)
        #expect(!answer.ssl)
    }

    @Test func plainServerFailsAClientRequiringTLS() async throws {
        let tls = try verifiedTLS(caFile: try ServiceEnvironment.string("TLS_CA_FILE"))
        let configuration = try configuration(port: "PG_NOTLS_PORT", tls: tls)
        await #expect(throws: (any Error).self) { try await selectOne(configuration) }
    }

    @Test func unixSocketAnswers() async throws {
        let directory = try ServiceEnvironment.string("PG_SOCKET_DIR")
        let port = try ServiceEnvironment.port("PG_PORT")
        let answer = try await selectOne(
            PostgresConnection.Configuration(
                unixSocketPath: "\(directory)/.s.PGSQL.\(port)",
                username: try ServiceEnvironment.string("PG_USER"),
                password: try ServiceEnvironment.string("PG_PASSWORD"),
                database: try ServiceEnvironment.string("PG_DATABASE")
            )
        )
        #expect(answer.one == 1)
        #expect(!answer.ssl)
    }
}
