import SessionStorage
import SessionStorageConformance
import Testing
import _MySQLWire

@testable import MySQLSessionStorage

/// The shared conformance suite against real MariaDB over TCP with a password.
/// Nested in the serialized server suite, so the restart test never runs beside it.
extension MySQLServerTests {
@Suite("MySQL store conformance (TCP, ascii and utf8mb4 schemas)")
struct MySQLConformanceTests {
    // The 1 MiB max_packet_size bounds the value; leave room for the statement.
    static let options = SessionStoreConformance.Options(
        expiry: .currentTimeParameter, unicodeInIndex: false, largestValue: (1 << 20) - 1024, concurrentTasks: 100)

    @Test(arguments: SessionStoreConformance.Case.allCases)
    func conformance(_ testCase: SessionStoreConformance.Case) async throws {
        try await MySQLTestServer.withStore(try MySQLTestServer.configuration()) { store in
            try await SessionStoreConformance(store: store, options: Self.options).run(testCase)
        }
    }

    @Test(arguments: SessionStoreConformance.Case.allCases)
    func conformanceUTF8MB4(_ testCase: SessionStoreConformance.Case) async throws {
        var utf8Options = Self.options
        utf8Options.unicodeInIndex = true
        let options = utf8Options
        try await MySQLTestServer.withStore(try MySQLTestServer.configuration(schema: .utf8mb4)) { store in
            try await SessionStoreConformance(store: store, options: options).run(testCase)
        }
    }
}
}
