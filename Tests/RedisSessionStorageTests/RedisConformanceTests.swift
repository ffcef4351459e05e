import RedisSessionStorage
import SessionStorage
import SessionStorageConformance
import Testing
import _RedisWire

/// The project's conformance suite on the real Redis: plain TCP, ACL user, verified TLS, unix socket.
@Suite("Redis store conformance")
struct RedisConformanceTests {
    static let cases: [(Target, SessionStoreConformance.Case)] = Target.allCases.flatMap { target in
        SessionStoreConformance.Case.allCases.map { (target, $0) }
    }

    @Test(arguments: cases)
    func conformance(_ target: Target, _ testCase: SessionStoreConformance.Case) async throws {
        let prefix = uniquePrefix("conf")
        let raw = try await target.rawConnection()
        defer { raw.close() }
        let configuration = try target.configuration(prefix: prefix, suffix: "sfx")
        try await withStore(configuration) { store in
            let suite = SessionStoreConformance(
                store: store,
                options: .init(
                    expiry: .serverClock,
                    naming: SessionKeyNaming(prefix: prefix, suffix: "sfx"),
                    rawRecord: { key in try await raw.send(.get(key)).string },
                    rawKeyExists: { key in try await raw.send(RedisCommand("EXISTS", [.init(key)], keyIndices: [0])).int == 1 }
                )
            )
            try await suite.run(testCase)
        }
        try await cleanUp(raw, prefix: prefix)
    }

    @Test("no prefix or suffix")
    func plainNaming() async throws {
        let raw = try await Target.plain.rawConnection()
        defer { raw.close() }
        var configuration = try Target.plain.configuration(prefix: "")
        configuration.prefix = nil
        // Keys without a prefix: a database of this test's own keeps them apart.
        configuration.database = 5
        try await raw.send(.select(5))
        try await withStore(configuration) { store in
            let suite = SessionStoreConformance(
                store: store,
                options: .init(
                    expiry: .serverClock,
                    naming: SessionKeyNaming(),
                    rawRecord: { key in try await raw.send(.get(key)).string },
                    rawKeyExists: { key in try await raw.send(RedisCommand("EXISTS", [.init(key)], keyIndices: [0])).int == 1 }
                )
            )
            for testCase in [SessionStoreConformance.Case.keyNaming, .metadataSeveralPairs, .roundTripValues] {
                try await suite.run(testCase)
            }
        }
    }
}
