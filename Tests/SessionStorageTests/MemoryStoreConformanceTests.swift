import SessionStorage
import SessionStorageConformance
import Testing

@Suite("Memory store conformance")
struct MemoryStoreConformanceTests {
    static let zone = MemoryZone(name: "conformance", capacity: 64 << 20)
    static let store = MemorySessionStore(
        configuration: .init(prefix: "sessions", suffix: "sfx"), zone: zone)

    static var suite: SessionStoreConformance {
        SessionStoreConformance(
            store: store,
            options: .init(
                expiry: .currentTimeParameter,
                naming: store.naming,
                rawRecord: { key in zone.get(key, now: 0) },
                rawKeyExists: { key in zone.expiry(of: key, now: 0) != nil }
            )
        )
    }

    @Test(arguments: SessionStoreConformance.Case.allCases)
    func conformance(_ testCase: SessionStoreConformance.Case) async throws {
        try await Self.suite.run(testCase)
    }

    @Test("200 concurrent tasks, 20 times in a row")
    func concurrencyRepeated() async throws {
        for _ in 0..<20 {
            try await Self.suite.run(.concurrentSetRotateDelete)
        }
    }

    @Test("no prefix or suffix")
    func plainNaming() async throws {
        let zone = MemoryZone(name: "plain", capacity: 8 << 20)
        let store = MemorySessionStore(zone: zone)
        try await SessionStoreConformance(
            store: store,
            options: .init(expiry: .currentTimeParameter, naming: store.naming, rawRecord: { zone.get($0, now: 0) })
        ).run(.keyNaming)
        try await store.set(name: "session", key: "K", value: "v", ttl: 10, currentTime: 100)
        #expect(zone.get("session:K", now: 100) == "v")
    }
}
