import Logging
import MetricsTestKit
import SessionStorage
import Testing

@Suite("Instrumentation")
struct InstrumentationTests {
    @Test func operationsErrorsAndLatencyAreReported() async throws {
        let metrics = TestMetrics()
        let store = MemorySessionStore(
            zone: MemoryZone(name: "metrics", capacity: 1 << 20), metricsFactory: metrics)
        try await store.set(name: "session", key: "K", value: "secret-value", ttl: 60, currentTime: 1)
        _ = try await store.get(name: "session", key: "K", currentTime: 1)
        _ = try await store.get(name: "session", key: "K", currentTime: 1)
        await #expect(throws: SessionStoreError.self) {
            try await store.set(name: "session", key: "", value: "v", ttl: 60, currentTime: 1)
        }
        let gets = try metrics.expectCounter("session_store_operations_total", [("backend", "memory"), ("operation", "get")])
        #expect(gets.totalValue == 2)
        let sets = try metrics.expectCounter("session_store_operations_total", [("backend", "memory"), ("operation", "set")])
        #expect(sets.totalValue == 2)
        let errors = try metrics.expectCounter(
            "session_store_errors_total", [("backend", "memory"), ("operation", "set"), ("code", "invalidArgument")])
        #expect(errors.totalValue == 1)
        let timer = try metrics.expectTimer("session_store_operation_duration", [("backend", "memory"), ("operation", "get")])
        #expect(timer.values.count == 2)
    }

    @Test func errorsCarryTheBackendAndLogsHoldNoValues() async throws {
        let recorder = LogRecorder()
        var logger = Logger(label: "test") { _ in recorder }
        logger.logLevel = .trace
        let store = MemorySessionStore(zone: MemoryZone(name: "logs", capacity: 1 << 20), logger: logger)
        try await store.set(name: "session", key: "SESSIONID123", value: "top-secret", ttl: 60, currentTime: 1)
        do {
            try await store.set(name: "session", key: "SESSIONID123", value: "top-secret", ttl: -1, currentTime: 1)
            Issue.record("a negative ttl was accepted")
        } catch let error as SessionStoreError {
            #expect(error.backend == "memory")
            #expect(error.code == .invalidArgument)
        }
        let lines = recorder.lines
        #expect(lines.contains { $0.contains("set") })
        #expect(!lines.contains { $0.contains("top-secret") || $0.contains("SESSIONID123") })
    }
}

final class LogRecorder: LogHandler, @unchecked Sendable {
    // @unchecked: `storage` is guarded by `lock`.
    private let lock = NSLockLike()
    private var storage: [String] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var lines: [String] { lock.withLock { storage } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        lock.withLock { storage.append("\(event.message) \(merged)") }
    }
}
