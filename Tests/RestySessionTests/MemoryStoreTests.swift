import Logging
import SessionStorage
import Synchronization
import Testing

@testable import RestySession

@Suite("On the project's memory store")
struct MemoryStoreTests {
    private func memoryStore(logger: Logger = Logger(label: "test")) -> MemorySessionStore {
        MemorySessionStore(zone: MemoryZone(name: "core-\(UInt64.random(in: 0...UInt64.max))", capacity: 1 << 20), logger: logger)
    }

    @Test func vectorCaseCOpensFromTheMemoryStore() async throws {
        let vector = try #require(CookieVector.all.first { $0.case == "c" })
        let store = memoryStore()
        let dump = try #require(vector.storage_dump_redis?.first)
        try await store.set(
            name: "session",
            key: try #require(vector.lua_save_report.storage_key),
            value: dump.get,
            ttl: dump.ttl,
            currentTime: vector.lua_save_report.save_time
        )
        let clock = ManualClock(vector.lua_save_report.save_time + 1)
        var configuration = SessionManager.Configuration(secret: vector.options.secret)
        configuration.storeMetadata = false
        let manager = try SessionManager(configuration: configuration, storage: store, clock: clock.sessionClock)
        let session = try await manager.open(SessionRequest(cookieHeader: vector.reopen.request_cookie_header))
        #expect(session.state == .open)
        #expect(session.data == vector.expectedData)
    }

    @Test func lifecycleWithIndexAndRevocation() async throws {
        let clock = ManualClock(testStart)
        let store = memoryStore()
        let manager = try SessionManager(
            configuration: {
                var configuration = SessionManager.Configuration(secret: testSecret)
                configuration.storeMetadata = true
                configuration.hashSubject = true
                configuration.hashStorageKey = true
                configuration.subject = "kim@example.com"
                configuration.remember = true
                configuration.rememberSafety = .none
                return configuration
            }(),
            storage: store,
            clock: clock.sessionClock
        )
        let (first, firstJar) = try await saveNew(manager, ["device": "laptop"])
        clock.advance(1)
        let (_, secondJar) = try await saveNew(manager, ["device": "phone"])
        clock.advance(1)
        let list = try await manager.sessions(audience: "default", subject: "kim@example.com")
        #expect(list.sessions.count == 2)
        #expect(list.remembered.count == 2)
        #expect(list.sessions[first.storageKey!] == testStart + 3600)

        // Rotation: the old key leaves the index at once, the old record stays for staleTTL.
        var reopened = try await manager.open(SessionRequest(jar: firstJar))
        try await reopened.save()
        let rotated = try await manager.sessions(audience: "default", subject: "kim@example.com")
        #expect(rotated.sessions.count == 2)
        #expect(rotated.sessions[first.storageKey!] == nil)
        #expect(rotated.sessions[reopened.storageKey!] != nil)
        #expect(try await manager.open(SessionRequest(jar: firstJar)).state == .open)

        // Sign out everywhere else.
        let revoked = try await reopened.revokeOtherSessions()
        #expect(revoked == 2)  // the phone's session and remember records
        #expect(try await manager.open(SessionRequest(jar: secondJar)).state == .new)
        let current = reopened.browserCookies(after: firstJar)
        #expect(try await manager.open(SessionRequest(jar: current))["device"] == "laptop")

        // Destroy: nothing left.
        let destroyed = try await manager.destroy(SessionRequest(jar: current))
        #expect(destroyed.state == .closed)
        let empty = try await manager.sessions(audience: "default", subject: "kim@example.com")
        #expect(empty.sessions.isEmpty)
        #expect(empty.remembered.isEmpty)
    }

    @Test func logsCarryNoSecretsIdsCookiesOrValues() async throws {
        let lines = LogCapture()
        var logger = Logger(label: "capture") { _ in lines }
        logger.logLevel = .trace
        let clock = ManualClock(testStart)
        let store = memoryStore(logger: logger)
        let secret = "s3cr3t-never-logged"
        var configuration = SessionManager.Configuration(secret: secret)
        configuration.remember = true
        configuration.rememberSafety = .none
        configuration.subject = "subject-never-logged"
        configuration.storeMetadata = true
        let manager = try SessionManager(configuration: configuration, storage: store, clock: clock.sessionClock, logger: logger)
        let (session, jar) = try await saveNew(manager, ["value": "value-never-logged"])
        var tampered = jar
        tampered["session"] = String(jar["session"]!.dropLast(2)) + "AA"
        _ = try await manager.open(SessionRequest(jar: tampered))
        _ = try await manager.open(SessionRequest(jar: [:]))
        store.zone.removeAll()
        _ = try await manager.open(SessionRequest(jar: jar))
        let failing = try SessionManager(configuration: configuration, storage: FailingStore(), clock: clock.sessionClock, logger: logger)
        var saving = failing.new(SessionRequest())
        do { try await saving.save() } catch { lines.append("\(error)") }

        let text = lines.all.joined(separator: "\n")
        #expect(!lines.all.isEmpty)
        var forbidden = [secret, "subject-never-logged", "value-never-logged", session.id!, session.storageKey!]
        forbidden += jar.values.map { String($0.prefix(40)) }
        forbidden.append(Base64URL.encode(Array("subject-never-logged".utf8)))
        for needle in forbidden {
            #expect(!text.contains(needle), "a log line contains a secret, id, cookie or value")
        }
    }
}

/// A store whose every operation fails.
struct FailingStore: SessionStore {
    func set(_ request: SessionSetRequest) async throws {
        throw SessionStoreError(.connectionFailed, message: "down", backend: "failing", serverMessage: request.value)
    }
    func get(name: String, key: String, currentTime: Int) async throws -> String? {
        throw SessionStoreError(.connectionFailed, message: "down", backend: "failing")
    }
    func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws {
        throw SessionStoreError(.connectionFailed, message: "down", backend: "failing")
    }
    func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int] {
        throw SessionStoreError(.connectionFailed, message: "down", backend: "failing")
    }
}

/// Collects every log line with its metadata.
final class LogCapture: LogHandler, Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    func log(event: LogEvent) {
        append("\(event.level) \(event.message) \(event.metadata ?? [:])")
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }

    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }
}
