import Foundation
import SessionStorage
import Synchronization
import Testing

@testable import RestySession
import SessionStorageConformance

// MARK: clock and randomness

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let time: Mutex<Int>

    init(_ start: Int) { time = Mutex(start) }

    var now: Int { time.withLock { $0 } }

    func set(_ value: Int) { time.withLock { $0 = value } }

    func advance(_ seconds: Int) { time.withLock { $0 += seconds } }

    var sessionClock: SessionClock { SessionClock { self.now } }
}

/// Random bytes that replay queued values first (to reproduce a vector's session id), then
/// come from a deterministic generator so failures are reproducible.
final class ReplayRandom: Sendable {
    private struct State {
        var queue: [[UInt8]]
        var generator: SplitMix64
    }

    private let state: Mutex<State>

    init(queue: [[UInt8]] = [], seed: UInt64 = 0x5EED) {
        state = Mutex(State(queue: queue, generator: SplitMix64(seed: seed)))
    }

    func enqueue(_ bytes: [UInt8]) { state.withLock { $0.queue.append(bytes) } }

    var sessionRandom: SessionRandom {
        SessionRandom { count in
            self.state.withLock { state in
                if let first = state.queue.first, first.count == count {
                    state.queue.removeFirst()
                    return first
                }
                return (0..<count).map { _ in UInt8(truncatingIfNeeded: state.generator.next()) }
            }
        }
    }
}

// MARK: a test-only store

/// A minimal in-memory ``SessionStore`` for the core's tests (the project's memory store is
/// tested on its own): records with an expiry, the per-(audience, subject) index, the
/// rotation rule of the contract, and a log of every `set`.
actor TestStore: SessionStore {
    struct Record: Sendable {
        var value: String
        var expiry: Int
    }

    private(set) var records: [String: Record] = [:]
    private(set) var indexes: [String: [String: Int]] = [:]
    private(set) var setRequests: [SessionSetRequest] = []
    private(set) var deletes: [(name: String, key: String, metadata: SessionMetadata?)] = []
    var failNextOperation = false

    func set(_ request: SessionSetRequest) async throws {
        try request.validate()
        try failIfAsked()
        setRequests.append(request)
        records[request.name + ":" + request.key] = Record(value: request.value, expiry: request.expiry)
        switch request.oldKeyPolicy(.removeAtOnce) {
        case .none:
            break
        case .remove:
            records[request.name + ":" + request.oldKey!] = nil
        case .keepStale(let until):
            if var old = records[request.name + ":" + request.oldKey!] {
                old.expiry = min(old.expiry, until)
                records[request.name + ":" + request.oldKey!] = old
            }
        }
        if let metadata = request.metadata {
            for pair in metadata.pairs {
                let index = indexName(request.name, pair.audience, pair.subject)
                indexes[index, default: [:]][request.key] = request.expiry
                if let oldKey = request.oldKey { indexes[index]?[oldKey] = nil }
            }
        }
    }

    func get(name: String, key: String, currentTime: Int) async throws -> String? {
        try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
        try failIfAsked()
        guard let record = records[name + ":" + key], record.expiry > currentTime else { return nil }
        return record.value
    }

    func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws {
        try SessionStoreValidation.lookup(name: name, key: key, currentTime: currentTime)
        try failIfAsked()
        deletes.append((name, key, metadata))
        records[name + ":" + key] = nil
        for pair in metadata?.pairs ?? [] {
            indexes[indexName(name, pair.audience, pair.subject)]?[key] = nil
        }
    }

    func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int] {
        try SessionStoreValidation.index(name: name, audience: audience, subject: subject, currentTime: currentTime)
        try failIfAsked()
        return (indexes[indexName(name, audience, subject)] ?? [:]).filter { $0.value > currentTime }
    }

    func put(name: String, key: String, value: String, expiry: Int) {
        records[name + ":" + key] = Record(value: value, expiry: expiry)
    }

    func record(name: String, key: String) -> Record? { records[name + ":" + key] }

    func index(name: String, audience: String, subject: String) -> [String: Int] {
        indexes[indexName(name, audience, subject)] ?? [:]
    }

    func failNext() { failNextOperation = true }

    private func failIfAsked() throws {
        if failNextOperation {
            failNextOperation = false
            throw SessionStoreError(.connectionFailed, message: "test failure", backend: "test")
        }
    }

    private func indexName(_ name: String, _ audience: String, _ subject: String) -> String {
        name + ":" + audience + ":" + subject
    }
}

// MARK: cookies

extension Session {
    /// The `Cookie` header a browser would send after receiving this session's `Set-Cookie`
    /// values on top of `previous` (expired cookies removed).
    func browserCookies(after previous: [String: String] = [:]) -> [String: String] {
        var jar = previous
        for header in setCookieHeaders {
            let pair = header.split(separator: ";", maxSplits: 1)[0]
            let equals = pair.firstIndex(of: "=")!
            let name = String(pair[..<equals])
            let value = String(pair[pair.index(after: equals)...])
            if header.contains("Max-Age=0") { jar[name] = nil } else { jar[name] = value }
        }
        return jar
    }
}

extension SessionRequest {
    init(jar: [String: String], remoteAddress: String? = nil, scheme: String? = nil, userAgent: String? = nil) {
        let header = jar.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        self.init(cookieHeader: header.isEmpty ? nil : header, remoteAddress: remoteAddress, scheme: scheme, userAgent: userAgent)
    }
}

// MARK: files

enum TestPaths {
    /// `<repo>/../shared`, else `/work/shared` (a worktree has no `../shared`).
    static var shared: URL {
        let repoRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // RestySessionTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // repo
        let beside = repoRoot.deletingLastPathComponent().appendingPathComponent("shared")
        if FileManager.default.fileExists(atPath: beside.appendingPathComponent("vectors/cookies").path) {
            return beside
        }
        return URL(fileURLWithPath: "/work/shared")
    }

    static var cookieVectors: URL { shared.appendingPathComponent("vectors/cookies") }
}

extension Array where Element == UInt8 {
    init(hex: String) {
        var bytes: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            bytes.append(UInt8(Self.nibble(high) << 4 | Self.nibble(low)))
        }
        self = bytes
    }

    private static func nibble(_ char: UInt8) -> Int {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(char - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(char - UInt8(ascii: "a") + 10)
        default: Int(char - UInt8(ascii: "A") + 10)
        }
    }

    var hex: String { map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }
}

// MARK: managers

let testSecret = "correct horse battery staple"
let testStart = 1_795_310_979

func makeManager(
    store: TestStore? = nil,
    clock: ManualClock,
    random: ReplayRandom = ReplayRandom(seed: .random(in: 0...UInt64.max)),
    _ configure: (inout SessionManager.Configuration) -> Void = { _ in }
) throws -> SessionManager {
    var configuration = SessionManager.Configuration(secret: testSecret)
    configuration.rememberSafety = .low
    configure(&configuration)
    return try SessionManager(
        configuration: configuration,
        storage: store,
        clock: clock.sessionClock,
        random: random.sessionRandom
    )
}

/// Saves a session with `data` and returns the browser's cookie jar afterwards.
func saveNew(_ manager: SessionManager, _ data: [String: SessionValue], subject: String? = nil) async throws -> (Session, [String: String]) {
    var session = manager.new(SessionRequest())
    session.data = data
    if let subject { session.subject = subject }
    try await session.save()
    return (session, session.browserCookies())
}
