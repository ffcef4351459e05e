import Foundation
import SessionStorage

/// The one conformance suite of the storage contract (`shared/spec/STORAGE.md`), run unchanged
/// against the memory store and against every real server.
///
/// It is framework-neutral: a failed check throws ``ConformanceFailure``, so any test runner can
/// call it. With Swift Testing:
///
///     @Test(arguments: SessionStoreConformance.Case.allCases)
///     func conformance(_ testCase: SessionStoreConformance.Case) async throws {
///         try await SessionStoreConformance(store: store, options: .init(expiry: .serverClock)).run(testCase)
///     }
///
/// Every case works on fresh random keys, audiences and subjects, so cases may run in parallel
/// against one server.
public struct SessionStoreConformance: Sendable {
    /// How the store decides that a record expired.
    public enum Expiry: Sendable, Hashable {
        /// The store compares expiry with the `currentTime` argument (SQL, memory): the suite
        /// moves time forward by passing a later `currentTime`, without sleeping.
        case currentTimeParameter
        /// The server expires records on its own clock (Redis, memcached): the suite uses short
        /// TTLs and sleeps past them.
        case serverClock
    }

    /// What the suite needs to know about the store under test.
    public struct Options: Sendable {
        /// How records expire.
        public var expiry: Expiry
        /// The naming the store was configured with, for the exact-key-name case.
        public var naming: SessionKeyNaming?
        /// Reads the raw string value stored under an exact key name (bypassing the store), or
        /// `nil`; used with ``naming`` to check the key layout. `nil` for SQL backends.
        public var rawRecord: (@Sendable (String) async throws -> String?)?
        /// Whether a raw key name exists (any type), for the index key of the naming case.
        public var rawKeyExists: (@Sendable (String) async throws -> Bool)?
        /// Whether audiences and subjects may hold non-ASCII characters (false for the seed's
        /// `CHARACTER SET ascii` MySQL tables).
        public var unicodeInIndex: Bool
        /// The largest value round-tripped, in bytes (1 MiB by default).
        public var largestValue: Int
        /// The number of concurrent tasks of the concurrency case.
        public var concurrentTasks: Int

        /// Creates options.
        public init(
            expiry: Expiry,
            naming: SessionKeyNaming? = nil,
            rawRecord: (@Sendable (String) async throws -> String?)? = nil,
            rawKeyExists: (@Sendable (String) async throws -> Bool)? = nil,
            unicodeInIndex: Bool = true,
            largestValue: Int = 1 << 20,
            concurrentTasks: Int = 200
        ) {
            self.expiry = expiry
            self.naming = naming
            self.rawRecord = rawRecord
            self.rawKeyExists = rawKeyExists
            self.unicodeInIndex = unicodeInIndex
            self.largestValue = largestValue
            self.concurrentTasks = concurrentTasks
        }
    }

    /// The cases of the suite.
    public enum Case: String, CaseIterable, Sendable, CustomStringConvertible {
        case roundTripValues
        case verbatimValues
        case missingKey
        case overwrite
        case expiry
        case delete
        case rotationKeepsOldRecordStale
        case rotationNeverLengthensOldRecord
        case rememberRemovesOldRecord
        case metadataSeveralKeys
        case metadataExpiredEntriesAbsent
        case metadataRotatedOutKeyDropped
        case metadataDeletedKeyDropped
        case metadataSeveralPairs
        case metadataSpecialCharacters
        case keyNaming
        case badInput
        case concurrentSetRotateDelete

        public var description: String { rawValue }
    }

    /// The store under test.
    public let store: any SessionStore
    /// What the suite knows about it.
    public let options: Options

    /// Creates the suite for one store.
    public init(store: any SessionStore, options: Options) {
        self.store = store
        self.options = options
    }

    /// Runs one case.
    public func run(_ testCase: Case) async throws {
        switch testCase {
        case .roundTripValues: try await roundTripValues()
        case .verbatimValues: try await verbatimValues()
        case .missingKey: try await missingKey()
        case .overwrite: try await overwrite()
        case .expiry: try await expiry()
        case .delete: try await delete()
        case .rotationKeepsOldRecordStale: try await rotationKeepsOldRecordStale()
        case .rotationNeverLengthensOldRecord: try await rotationNeverLengthensOldRecord()
        case .rememberRemovesOldRecord: try await rememberRemovesOldRecord()
        case .metadataSeveralKeys: try await metadataSeveralKeys()
        case .metadataExpiredEntriesAbsent: try await metadataExpiredEntriesAbsent()
        case .metadataRotatedOutKeyDropped: try await metadataRotatedOutKeyDropped()
        case .metadataDeletedKeyDropped: try await metadataDeletedKeyDropped()
        case .metadataSeveralPairs: try await metadataSeveralPairs()
        case .metadataSpecialCharacters: try await metadataSpecialCharacters()
        case .keyNaming: try await keyNaming()
        case .badInput: try await badInput()
        case .concurrentSetRotateDelete: try await concurrentSetRotateDelete()
        }
    }

    /// Runs every case, one after another.
    public func runAll() async throws {
        for testCase in Case.allCases { try await run(testCase) }
    }

    // MARK: - helpers

    /// A fresh session key: 43 characters of base64url, like the session core's ids.
    public static func randomKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return Base64URL.encode((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    static func randomToken(_ prefix: String) -> String {
        prefix + "-" + String(UInt64.random(in: .min ... .max), radix: 36)
    }

    static var now: Int { Int(Date().timeIntervalSince1970) }

    let name = "session"

    /// Waits until the server clock passed `seconds` (serverClock) — or returns the later
    /// `currentTime` to pass (currentTimeParameter).
    func advance(from start: Int, by seconds: Int) async throws -> Int {
        switch options.expiry {
        case .currentTimeParameter:
            return start + seconds
        case .serverClock:
            // Redis and memcached expire on whole seconds; wait a little past the boundary.
            try await Task.sleep(for: .milliseconds(seconds * 1000 + 1100))
            return Self.now
        }
    }

    func expectCode(
        _ code: SessionStoreError.Code,
        _ what: String,
        file: String = #fileID,
        line: Int = #line,
        _ body: () async throws -> Void
    ) async throws {
        do {
            try await body()
        } catch let error as SessionStoreError {
            try check(error.code == code, "\(what): expected \(code), got \(error.code)", file: file, line: line)
            return
        } catch {
            throw ConformanceFailure("\(what): expected SessionStoreError(\(code)), got \(type(of: error))", file: file, line: line)
        }
        throw ConformanceFailure("\(what): expected SessionStoreError(\(code)), nothing was thrown", file: file, line: line)
    }

    // MARK: - cases

    func roundTripValues() async throws {
        let t = Self.now
        var values: [(String, String)] = [
            ("empty", ""),
            ("one byte", "x"),
            ("64 KiB", String(repeating: "a", count: 64 * 1024)),
            ("unicode", "héllo wörld — 世界 🌍 \u{1F469}\u{200D}\u{1F4BB}"),
            ("json array", "[\"VmFsdWUgMSBmb3IgdGVzdA\"]"),
        ]
        if options.largestValue >= 1 << 20 {
            values.append(("1 MiB", String(repeating: "0123456789abcdef", count: (1 << 20) / 16)))
        } else {
            values.append(("largest", String(repeating: "z", count: options.largestValue)))
        }
        for (label, value) in values {
            let key = Self.randomKey()
            try await store.set(name: name, key: key, value: value, ttl: 60, currentTime: t)
            let read = try await store.get(name: name, key: key, currentTime: t)
            try check(read == value, "\(label) value did not round-trip (got \(read.map { "\($0.utf8.count) bytes" } ?? "nil"))")
        }
    }

    func verbatimValues() async throws {
        let t = Self.now
        let values = [
            "line\r\nbreak", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "quote ' double \" back \\ slash",
            "'; DROP TABLE sessions; --", "percent %3A %% %", "tab\tand space ", "END\r\n", "\r\n",
        ]
        for value in values {
            let key = Self.randomKey()
            try await store.set(name: name, key: key, value: value, ttl: 60, currentTime: t)
            let read = try await store.get(name: name, key: key, currentTime: t)
            try check(read == value, "value \(value.debugDescription) did not round-trip")
        }
    }

    func missingKey() async throws {
        let read = try await store.get(name: name, key: Self.randomKey(), currentTime: Self.now)
        try check(read == nil, "an unknown key returned a value")
        let index = try await store.readMetadata(
            name: name, audience: Self.randomToken("aud"), subject: Self.randomToken("sub"), currentTime: Self.now)
        try check(index.isEmpty, "an unknown subject listed sessions")
    }

    func overwrite() async throws {
        let t = Self.now
        let key = Self.randomKey()
        try await store.set(name: name, key: key, value: "first", ttl: 60, currentTime: t)
        try await store.set(name: name, key: key, value: "second", ttl: 60, currentTime: t)
        let read = try await store.get(name: name, key: key, currentTime: t)
        try check(read == "second", "a second set did not replace the value")
    }

    func expiry() async throws {
        let t = Self.now
        let key = Self.randomKey()
        let ttl = options.expiry == .serverClock ? 1 : 60
        try await store.set(name: name, key: key, value: "v", ttl: ttl, currentTime: t)
        let before = try await store.get(name: name, key: key, currentTime: t)
        try check(before == "v", "a fresh record was not readable")
        if options.expiry == .currentTimeParameter {
            let almost = try await store.get(name: name, key: key, currentTime: t + ttl - 1)
            try check(almost == "v", "a record expired before its ttl")
        }
        let later = try await advance(from: t, by: ttl)
        let after = try await store.get(name: name, key: key, currentTime: later + 1)
        try check(after == nil, "an expired record was returned")
    }

    func delete() async throws {
        let t = Self.now
        let key = Self.randomKey()
        let other = Self.randomKey()
        try await store.set(name: name, key: key, value: "v", ttl: 60, currentTime: t)
        try await store.set(name: name, key: other, value: "w", ttl: 60, currentTime: t)
        try await store.delete(name: name, key: key, currentTime: t)
        let read = try await store.get(name: name, key: key, currentTime: t)
        try check(read == nil, "a deleted record was returned")
        let kept = try await store.get(name: name, key: other, currentTime: t)
        try check(kept == "w", "delete removed another record")
        // Deleting what is not there is not an error.
        try await store.delete(name: name, key: Self.randomKey(), currentTime: t)
    }

    func rotationKeepsOldRecordStale() async throws {
        let t = Self.now
        let old = Self.randomKey()
        let new = Self.randomKey()
        let stale = options.expiry == .serverClock ? 1 : 10
        try await store.set(name: name, key: old, value: "old", ttl: 600, currentTime: t)
        try await store.set(name: name, key: new, value: "new", ttl: 600, currentTime: t, oldKey: old, staleTTL: stale)
        let oldNow = try await store.get(name: name, key: old, currentTime: t)
        try check(oldNow == "old", "the old record was not readable right after the rotation")
        let newNow = try await store.get(name: name, key: new, currentTime: t)
        try check(newNow == "new", "the new record was not readable")
        let later = try await advance(from: t, by: stale)
        let oldLater = try await store.get(name: name, key: old, currentTime: later + 1)
        try check(oldLater == nil, "the old record outlived its stale ttl")
        let newLater = try await store.get(name: name, key: new, currentTime: later + 1)
        try check(newLater == "new", "the new record expired with the old one")
    }

    func rotationNeverLengthensOldRecord() async throws {
        let t = Self.now
        let old = Self.randomKey()
        let new = Self.randomKey()
        let ttl = options.expiry == .serverClock ? 1 : 5
        try await store.set(name: name, key: old, value: "old", ttl: ttl, currentTime: t)
        try await store.set(name: name, key: new, value: "new", ttl: 600, currentTime: t, oldKey: old, staleTTL: 300)
        let later = try await advance(from: t, by: ttl)
        let oldLater = try await store.get(name: name, key: old, currentTime: later + 1)
        try check(oldLater == nil, "the rotation lengthened the old record past its own expiry")
    }

    func rememberRemovesOldRecord() async throws {
        let t = Self.now
        let old = Self.randomKey()
        let new = Self.randomKey()
        try await store.set(name: name, key: old, value: "old", ttl: 600, currentTime: t)
        try await store.set(
            name: name, key: new, value: "new", ttl: 600, currentTime: t, oldKey: old, staleTTL: 60, remember: true)
        let oldNow = try await store.get(name: name, key: old, currentTime: t)
        try check(oldNow == nil, "a remembered session's old record was kept")
        let newNow = try await store.get(name: name, key: new, currentTime: t)
        try check(newNow == "new", "the new record was not readable")
    }

    func metadataSeveralKeys() async throws {
        let t = Self.now
        let audience = Self.randomToken("aud")
        let subject = Self.randomToken("sub")
        let metadata = try SessionMetadata(audience: audience, subject: subject)
        var expected: [String: Int] = [:]
        for ttl in [60, 120, 180] {
            let key = Self.randomKey()
            try await store.set(name: name, key: key, value: "v", ttl: ttl, currentTime: t, metadata: metadata)
            expected[key] = t + ttl
        }
        let index = try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: t)
        try check(index == expected, "readMetadata returned \(index.count) entries, expected \(expected.count) with their expiries")
    }

    func metadataExpiredEntriesAbsent() async throws {
        let t = Self.now
        let audience = Self.randomToken("aud")
        let subject = Self.randomToken("sub")
        let metadata = try SessionMetadata(audience: audience, subject: subject)
        let short = Self.randomKey()
        let long = Self.randomKey()
        try await store.set(name: name, key: short, value: "v", ttl: 30, currentTime: t, metadata: metadata)
        try await store.set(name: name, key: long, value: "v", ttl: 300, currentTime: t, metadata: metadata)
        let later = try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: t + 31)
        try check(later == [long: t + 300], "an expired entry was listed (or a live one missing)")
        let evenLater = try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: t + 301)
        try check(evenLater.isEmpty, "entries were listed after every session expired")
    }

    func metadataRotatedOutKeyDropped() async throws {
        let t = Self.now
        let audience = Self.randomToken("aud")
        let subject = Self.randomToken("sub")
        let metadata = try SessionMetadata(audience: audience, subject: subject)
        let old = Self.randomKey()
        let new = Self.randomKey()
        try await store.set(name: name, key: old, value: "v", ttl: 60, currentTime: t, metadata: metadata)
        try await store.set(
            name: name, key: new, value: "w", ttl: 90, currentTime: t, oldKey: old, staleTTL: 10, metadata: metadata)
        let index = try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: t)
        try check(index == [new: t + 90], "after a rotation the index must list the new key only")
    }

    func metadataDeletedKeyDropped() async throws {
        let t = Self.now
        let audience = Self.randomToken("aud")
        let subject = Self.randomToken("sub")
        let metadata = try SessionMetadata(audience: audience, subject: subject)
        let gone = Self.randomKey()
        let kept = Self.randomKey()
        try await store.set(name: name, key: gone, value: "v", ttl: 60, currentTime: t, metadata: metadata)
        try await store.set(name: name, key: kept, value: "v", ttl: 60, currentTime: t, metadata: metadata)
        try await store.delete(name: name, key: gone, currentTime: t, metadata: metadata)
        let index = try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: t)
        try check(index == [kept: t + 60], "a deleted key was still listed (or the other one missing)")
        let read = try await store.get(name: name, key: gone, currentTime: t)
        try check(read == nil, "delete with metadata left the record")
    }

    func metadataSeveralPairs() async throws {
        let t = Self.now
        let (a1, a2) = (Self.randomToken("app1"), Self.randomToken("app2"))
        let (s1, s2) = (Self.randomToken("alice"), Self.randomToken("bob"))
        let metadata = try SessionMetadata(audiences: [a1, a2], subjects: [s1, s2])
        let key = Self.randomKey()
        try await store.set(name: name, key: key, value: "v", ttl: 60, currentTime: t, metadata: metadata)
        let first = try await store.readMetadata(name: name, audience: a1, subject: s1, currentTime: t)
        let second = try await store.readMetadata(name: name, audience: a2, subject: s2, currentTime: t)
        let crossed = try await store.readMetadata(name: name, audience: a1, subject: s2, currentTime: t)
        try check(first == [key: t + 60], "pair 1 does not list the session")
        try check(second == [key: t + 60], "pair 2 does not list the session")
        try check(crossed.isEmpty, "pairs are zipped, never crossed: (a1, s2) must list nothing")
    }

    func metadataSpecialCharacters() async throws {
        let t = Self.now
        var pairs = [
            (Self.randomToken("my app"), Self.randomToken("alice@example.com %3A 100%")),
            (Self.randomToken("quote'\""), Self.randomToken("semi;colon:back\\slash")),
        ]
        if options.unicodeInIndex {
            pairs.append((Self.randomToken("applicación"), Self.randomToken("名前-😀")))
        }
        let metadata = try SessionMetadata(audiences: pairs.map(\.0), subjects: pairs.map(\.1))
        let key = Self.randomKey()
        let cookieName = "my session"
        try await store.set(name: cookieName, key: key, value: "v", ttl: 60, currentTime: t, metadata: metadata)
        let read = try await store.get(name: cookieName, key: key, currentTime: t)
        try check(read == "v", "a record under a name with a space did not round-trip")
        for (audience, subject) in pairs {
            let index = try await store.readMetadata(name: cookieName, audience: audience, subject: subject, currentTime: t)
            try check(index == [key: t + 60], "the index of \(audience.debugDescription) did not round-trip")
        }
    }

    func keyNaming() async throws {
        guard let naming = options.naming, let rawRecord = options.rawRecord else {
            // SQL backends have no key names (the spec: they ignore prefix and suffix).
            return
        }
        let t = Self.now
        let key = Self.randomKey()
        let audience = Self.randomToken("aud")
        let subject = Self.randomToken("sub")
        let metadata = try SessionMetadata(audience: audience, subject: subject)
        try await store.set(name: name, key: key, value: "exact", ttl: 60, currentTime: t, metadata: metadata)
        let recordKey = naming.recordKey(name: name, key: key)
        var expectedRecordKey = ""
        if let prefix = naming.prefix { expectedRecordKey += prefix + ":" }
        expectedRecordKey += "session:" + key
        if let suffix = naming.suffix { expectedRecordKey += ":" + suffix }
        try check(recordKey == expectedRecordKey, "record key naming differs from [prefix:]name:key[:suffix]")
        let raw = try await rawRecord(recordKey)
        try check(raw == "exact", "no record stored under the exact key \(recordKey.debugDescription)")
        if let rawKeyExists = options.rawKeyExists {
            let indexKey = naming.indexKey(name: name, audience: audience, subject: subject)
            let exists = try await rawKeyExists(indexKey)
            try check(exists, "no index stored under the exact key \(indexKey.debugDescription)")
        }
    }

    func badInput() async throws {
        let t = Self.now
        do {
            _ = try SessionMetadata(audiences: ["a", "b"], subjects: ["s"])
            throw ConformanceFailure("mismatched audiences and subjects were accepted")
        } catch let error as SessionStoreError {
            try check(error.code == .invalidArgument, "mismatched metadata: expected invalidArgument, got \(error.code)")
        }
        try await expectCode(.invalidArgument, "negative ttl") {
            try await store.set(name: name, key: Self.randomKey(), value: "v", ttl: -1, currentTime: t)
        }
        try await expectCode(.invalidArgument, "zero ttl") {
            try await store.set(name: name, key: Self.randomKey(), value: "v", ttl: 0, currentTime: t)
        }
        try await expectCode(.invalidArgument, "negative stale ttl") {
            try await store.set(
                name: name, key: Self.randomKey(), value: "v", ttl: 60, currentTime: t, oldKey: Self.randomKey(),
                staleTTL: -5)
        }
        try await expectCode(.invalidArgument, "empty key on set") {
            try await store.set(name: name, key: "", value: "v", ttl: 60, currentTime: t)
        }
        try await expectCode(.invalidArgument, "empty key on get") {
            _ = try await store.get(name: name, key: "", currentTime: t)
        }
        try await expectCode(.invalidArgument, "empty key on delete") {
            try await store.delete(name: name, key: "", currentTime: t)
        }
        try await expectCode(.invalidArgument, "empty name") {
            try await store.set(name: "", key: Self.randomKey(), value: "v", ttl: 60, currentTime: t)
        }
        try await expectCode(.invalidArgument, "a key holding the index separator") {
            try await store.set(name: name, key: "a;b", value: "v", ttl: 60, currentTime: t)
        }
        try await expectCode(.invalidArgument, "empty subject") {
            _ = try await store.readMetadata(name: name, audience: "aud", subject: "", currentTime: t)
        }
    }

    func concurrentSetRotateDelete() async throws {
        let t = Self.now
        let audience = Self.randomToken("aud")
        let subject = Self.randomToken("sub")
        let metadata = try SessionMetadata(audience: audience, subject: subject)
        let store = self.store
        let name = self.name
        // Task i: sets K_i; then i % 3 == 1 rotates K_i → K'_i, i % 3 == 2 deletes K_i.
        let expected = try await withThrowingTaskGroup(of: (String, Int)?.self) { group in
            for i in 0..<options.concurrentTasks {
                group.addTask {
                    let key = Self.randomKey()
                    let ttl = 600 + i
                    try await store.set(name: name, key: key, value: "v\(i)", ttl: ttl, currentTime: t, metadata: metadata)
                    switch i % 3 {
                    case 1:
                        let next = Self.randomKey()
                        try await store.set(
                            name: name, key: next, value: "w\(i)", ttl: ttl, currentTime: t, oldKey: key, staleTTL: 10,
                            metadata: metadata)
                        return (next, t + ttl)
                    case 2:
                        try await store.delete(name: name, key: key, currentTime: t, metadata: metadata)
                        return nil
                    default:
                        return (key, t + ttl)
                    }
                }
            }
            var live: [String: Int] = [:]
            for try await entry in group {
                if let (key, expiry) = entry { live[key] = expiry }
            }
            return live
        }
        let index = try await store.readMetadata(name: name, audience: audience, subject: subject, currentTime: t)
        let missing = Set(expected.keys).subtracting(index.keys)
        let extra = Set(index.keys).subtracting(expected.keys)
        try check(missing.isEmpty, "\(missing.count) live sessions missing from the index after concurrent writes")
        try check(extra.isEmpty, "\(extra.count) rotated-out or deleted sessions still listed after concurrent writes")
        try check(index == expected, "expiries in the index differ from the written ones")
    }
}

/// A failed conformance check.
public struct ConformanceFailure: Error, CustomStringConvertible {
    /// What failed.
    public var message: String
    /// Where.
    public var file: String
    /// Where.
    public var line: Int

    /// Creates a failure.
    public init(_ message: String, file: String = #fileID, line: Int = #line) {
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "conformance failure at \(file):\(line): \(message)" }
}

/// Throws a ``ConformanceFailure`` when `condition` is false.
public func check(_ condition: Bool, _ message: @autoclosure () -> String, file: String = #fileID, line: Int = #line) throws {
    if !condition { throw ConformanceFailure(message(), file: file, line: line) }
}
