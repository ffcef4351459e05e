import Foundation
import SessionStorage
import Testing

@testable import RestySession

/// One `case-*.json` of `shared/vectors/cookies`: cookies issued by lua-resty-session 4.1.5.
struct CookieVector: Decodable, Sendable, CustomTestStringConvertible {
    struct Options: Decodable, Sendable {
        var secret: String
        var subject: String?
        var audience: String?
        var remember: Bool?
        var storage: String?
    }

    struct Meta: Decodable, Sendable {
        var flags: Int
        var creation_time: Int
        var sid_hex: String
        var header_hex: String
        var data_size: Int
    }

    struct SaveReport: Decodable, Sendable {
        var meta: Meta
        var remember_meta: Meta?
        var save_time: Int
        var session_id: String
        var storage_key: String?
        var cookie_flags: String
    }

    struct StorageDump: Decodable, Sendable {
        var key: String
        var ttl: Int
        var get: String
    }

    struct Fields: Decodable, Sendable {
        var cookie_type: Int
        var flags: Int
        var sid_hex: String
        var creation_time: Int
        var rolling_offset: Int
        var data_size: Int
        var tag_hex: String
        var idling_offset: Int
        var mac_hex: String
    }

    struct Decode: Decodable, Sendable {
        var fields: Fields
        var ikm_hex: String
        var mac_key_hex: String
        var aes_key_hex: String
        var aes_iv_hex: String
        var aad_hex: String
        var plaintext_len: Int
        var plaintext_json: String
        var deflated_len: Int?
    }

    struct OpenReport: Decodable, Sendable {
        var exists: Bool
        var audience: String?
        var subject: String?
        var state: String
        var err: String?
    }

    struct Reopen: Decodable, Sendable {
        var request_cookie_header: String
        var lua_open_report: OpenReport
    }

    struct RememberReopen: Decodable, Sendable {
        var set_cookie_headers: [String]
        var lua_open_report: OpenReportWithCookie
    }

    struct OpenReportWithCookie: Decodable, Sendable {
        var exists: Bool
        var audience: String?
        var request_cookie_header: String
    }

    struct Tamper: Decodable, Sendable {
        var exists: Bool
        var request_cookie_header: String
        var err: String
    }

    var `case`: String
    var options: Options
    var data_template: [String: String]
    var set_cookie_headers: [String]
    var lua_save_report: SaveReport
    var storage_dump_redis: [StorageDump]?
    var python_independent_decode: [String: Decode]
    var reopen: Reopen
    var reopen_with_only_remember_cookie: RememberReopen?
    var tamper_tests: [String: Tamper]?

    var testDescription: String { "case-\(self.case)" }

    /// The data the case stored, with `REP:s:n` expanded.
    var expectedData: [String: SessionValue] {
        data_template.mapValues { template in
            if template.hasPrefix("REP:"), let colon = template.lastIndex(of: ":") {
                let text = String(template[template.index(template.startIndex, offsetBy: 4)..<colon])
                let count = Int(template[template.index(after: colon)...])!
                return .string(String(repeating: text, count: count))
            }
            return .string(template)
        }
    }

    static func load() throws -> [CookieVector] {
        let directory = TestPaths.cookieVectors
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasPrefix("case-") && $0.hasSuffix(".json") }
            .sorted()
        return try names.map { name in
            try JSONDecoder().decode(CookieVector.self, from: Data(contentsOf: directory.appendingPathComponent(name)))
        }
    }

    static let all: [CookieVector] = (try? load()) ?? []

    /// The session manager with the case's options, a store when the case used one, a clock
    /// at the save time and the given random queue.
    func manager(
        store: TestStore? = nil,
        clock: ManualClock,
        random: ReplayRandom = ReplayRandom()
    ) throws -> SessionManager {
        var configuration = SessionManager.Configuration(secret: options.secret)
        if let audience = options.audience { configuration.audience = audience }
        configuration.subject = options.subject
        configuration.remember = options.remember ?? false
        return try SessionManager(
            configuration: configuration,
            storage: options.storage != nil ? store : nil,
            clock: clock.sessionClock,
            random: random.sessionRandom
        )
    }

    /// A store preloaded with the case's Redis dump (`session:KEY` → value).
    func preloadedStore() async -> TestStore {
        let store = TestStore()
        for dump in storage_dump_redis ?? [] {
            let parts = dump.key.split(separator: ":", maxSplits: 1)
            await store.put(name: String(parts[0]), key: String(parts[1]), value: dump.get, expiry: lua_save_report.save_time + dump.ttl)
        }
        return store
    }
}
