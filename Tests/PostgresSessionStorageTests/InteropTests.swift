import Foundation
import PostgresNIO
import PostgresSessionStorage
import SessionStorage
import Testing

/// One `vectors/storage/postgres*.json` file: what lua-resty-session 4.1.5 wrote into a real
/// PostgreSQL, and what its calls returned.
struct PostgresVector: Sendable {
    enum Value: Sendable, Hashable {
        case string(String)
        case number(Int)
        case null
        case array([Value])
        case map([String: Value])

        init(_ json: Any) throws {
            let object = try #require(json as? [String: Any])
            switch object["type"] as? String {
            case "string": self = .string(try #require(object["value"] as? String))
            case "number": self = .number(try #require((object["value"] as? NSNumber)?.intValue))
            case "nil": self = .null
            case "table":
                if let array = object["array"] as? [Any] {
                    self = .array(try array.map(Value.init))
                } else if let map = object["map"] as? [String: Any] {
                    self = .map(try map.mapValues(Value.init))
                } else {
                    self = .map([:])  // "empty": true
                }
            default:
                throw VectorError("unknown value \(object)")
            }
        }

        var string: String? { if case .string(let value) = self { value } else { nil } }
        var number: Int? { if case .number(let value) = self { value } else { nil } }
    }

    struct Call: Sendable {
        var seq: Int
        var method: String
        var args: [Value]
        var returns: [Value]
    }

    var calls: [Call]
    var sessions: Set<PG.Row>
    var meta: Set<PG.MetaRow>

    static func load(_ file: String) throws -> PostgresVector {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors/\(file)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let harness = try #require(root["harness"] as? [String: Any])
        let dump = try #require(root["server_dump"] as? [String: Any])
        let calls = try #require(harness["calls"] as? [[String: Any]]).map { call in
            Call(
                seq: try #require(call["seq"] as? Int),
                method: try #require(call["method"] as? String),
                args: try #require(call["args"] as? [Any]).map(Value.init),
                returns: try #require(call["returns"] as? [Any]).map(Value.init)
            )
        }
        let sessions = try #require(dump["sessions"] as? [[String: Any]]).map { row in
            PG.Row(
                sid: try #require(row["sid"] as? String),
                name: row["name"] as? String,
                data: row["data"] as? String,
                exp: try #require((row["exp_epoch"] as? NSNumber)?.intValue)
            )
        }
        let meta = try #require(dump["sessions_meta"] as? [[String: Any]]).map { row in
            PG.MetaRow(
                aud: try #require(row["aud"] as? String), sub: try #require(row["sub"] as? String),
                sid: try #require(row["sid"] as? String))
        }
        return PostgresVector(calls: calls, sessions: Set(sessions), meta: Set(meta))
    }

    /// The metadata argument of a `set`/`delete`.
    static func metadata(_ value: Value?) throws -> SessionMetadata? {
        guard case .map(let map)? = value else { return nil }
        guard case .array(let audiences)? = map["audiences"], case .array(let subjects)? = map["subjects"] else { return nil }
        return try SessionMetadata(audiences: audiences.compactMap(\.string), subjects: subjects.compactMap(\.string))
    }

    /// pgmoon's timestamptz text, `2026-11-22 01:24:04+00`, as Unix seconds.
    static func epoch(_ text: String) throws -> Int {
        let iso = text.replacingOccurrences(of: " ", with: "T").replacingOccurrences(of: "+00", with: "Z")
        let date = try #require(ISO8601DateFormatter().date(from: iso), "unparseable timestamp \(text)")
        return Int(date.timeIntervalSince1970)
    }
}

struct VectorError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@Suite("PostgreSQL interop with lua-resty-session 4.1.5")
struct PostgresInteropTests {
    static let files = ["postgres.json"]

    func freshTables(_ setup: Setup) async throws -> PostgresSessionStore.Configuration {
        var configuration = try await setup.configuration()
        configuration.tableName = PG.unique("interop")
        configuration.tableNameMeta = configuration.tableName + "_meta"
        return configuration
    }

    /// The reads of a vector (get, read_metadata) through our store, compared with what the
    /// library returned; `dropped` are sids our store no longer lists (rotated out).
    func replayReads(_ vector: PostgresVector, store: PostgresSessionStore, dropped: Set<String>) async throws {
        for call in vector.calls {
            switch call.method {
            case "get":
                let name = try #require(call.args[0].string)
                let key = try #require(call.args[1].string)
                let time = try #require(call.args[2].number)
                let value = try await store.get(name: name, key: key, currentTime: time)
                #expect(value == call.returns[0].string, "call \(call.seq)")
            case "read_metadata":
                let time = try #require(call.args[3].number)
                let index = try await store.readMetadata(
                    name: try #require(call.args[0].string), audience: try #require(call.args[1].string),
                    subject: try #require(call.args[2].string), currentTime: time)
                var expected: [String: Int] = [:]
                if case .map(let map) = call.returns[0] {
                    for (sid, text) in map where !dropped.contains(sid) {
                        expected[sid] = try PostgresVector.epoch(try #require(text.string))
                    }
                }
                #expect(index == expected, "call \(call.seq)")
            default:
                continue
            }
        }
    }

    @Test("rows written by the real library read back with the library's results", arguments: PostgresInteropTests.files, [Setup.tcp, .kiritimati, .adak])
    func readTheirRows(_ file: String, _ setup: Setup) async throws {
        let vector = try PostgresVector.load(file)
        let configuration = try await freshTables(setup)
        try await PG.withStore(configuration) { store in
            try await PG.withConnection(database: configuration.database) { connection in
                for row in vector.sessions {
                    var binds = PostgresBindings()
                    binds.append(row.sid)
                    binds.append(row.name)
                    binds.append(row.data)
                    binds.append(row.exp)
                    let sql = "INSERT INTO \(configuration.tableName) (sid, name, data, exp) VALUES ($1, $2, $3, to_timestamp($4))"
                    _ = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: PG.logger).collect()
                }
                for row in vector.meta {
                    var binds = PostgresBindings()
                    binds.append(row.aud)
                    binds.append(row.sub)
                    binds.append(row.sid)
                    let sql = "INSERT INTO \(configuration.tableNameMeta) (aud, sub, sid) VALUES ($1, $2, $3)"
                    _ = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: PG.logger).collect()
                }
            }
            // Their layout keeps rotated-out sids in the metadata table: we list them as they do.
            try await replayReads(vector, store: store, dropped: [])
        }
    }

    @Test("our writes for the library's calls give the library's rows", arguments: PostgresInteropTests.files, [Setup.tcp, .kiritimati, .adak])
    func writeTheirRows(_ file: String, _ setup: Setup) async throws {
        let vector = try PostgresVector.load(file)
        let configuration = try await freshTables(setup)
        try await PG.withStore(configuration) { store in
            var rotatedOut: [(sid: String, metadata: SessionMetadata?)] = []
            for call in vector.calls where call.method == "set" {
                let args = call.args + Array(repeating: .null, count: max(0, 9 - call.args.count))
                let metadata = try PostgresVector.metadata(args[7])
                let oldKey = args[5].string
                if let oldKey { rotatedOut.append((oldKey, metadata)) }
                try await store.set(
                    name: try #require(args[0].string), key: try #require(args[1].string), value: try #require(args[2].string),
                    ttl: try #require(args[3].number), currentTime: try #require(args[4].number), oldKey: oldKey,
                    staleTTL: args[6].number ?? 0, metadata: metadata, remember: false)
            }
            let rows = try await PG.rows(table: configuration.tableName, database: configuration.database)
            #expect(rows == vector.sessions)
            // The one intended difference: a rotated-out sid leaves the index at once.
            var expectedMeta = vector.meta
            for (sid, metadata) in rotatedOut {
                for pair in metadata?.pairs ?? [] {
                    expectedMeta.remove(PG.MetaRow(aud: pair.audience, sub: pair.subject, sid: sid))
                }
            }
            #expect(expectedMeta.count < vector.meta.count, "the vector rotates a session with metadata")
            #expect(try await PG.metaRows(table: configuration.tableNameMeta, database: configuration.database) == expectedMeta)
            try await replayReads(vector, store: store, dropped: Set(rotatedOut.map(\.sid)))
        }
    }
}
