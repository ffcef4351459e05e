import _MemcachedWire
import MemcachedSessionStorage
import SessionStorage
import SessionStorageConformance
import Testing

@Suite("Memcached store: the storage contract over TCP, unix socket and TLS")
struct MemcachedConformanceTests {
    @Test(arguments: Transport.allCases, SessionStoreConformance.Case.allCases)
    func conformance(_ transport: Transport, _ testCase: SessionStoreConformance.Case) async throws {
        let configuration = try Env.configuration(transport, prefix: "p", suffix: "s")
        try await withStore(configuration) { store in
            let client = store.client
            let suite = SessionStoreConformance(
                store: store,
                options: .init(
                    expiry: .serverClock,
                    naming: SessionKeyNaming(prefix: "p", suffix: "s"),
                    rawRecord: { rawKey in
                        try await client.get(MemcachedKeyEscaping.escape(rawKey))?.string
                    },
                    rawKeyExists: { rawKey in
                        try await client.get(MemcachedKeyEscaping.escape(rawKey)) != nil
                    }
                )
            )
            try await suite.run(testCase)
        }
    }

    @Test func tlsWithAnUnknownCAFails() async throws {
        var configuration = try Env.configuration(.tls)
        configuration.caFile = try Env.value("TLS_UNKNOWN_CA_FILE")
        configuration.connectTimeout = .seconds(2)
        try await withStore(configuration) { store in
            let error = await #expect(throws: SessionStoreError.self) {
                _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 0)
            }
            #expect(error?.code == .tls)
        }
    }

    @Test func tlsToAPlainPortFails() async throws {
        var configuration = try Env.configuration(.tls)
        configuration.port = try #require(Int(try Env.value("MEMCACHED_PORT")))
        configuration.connectTimeout = .seconds(2)
        try await withStore(configuration) { store in
            await #expect(throws: SessionStoreError.self) {
                _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 0)
            }
        }
    }
}
