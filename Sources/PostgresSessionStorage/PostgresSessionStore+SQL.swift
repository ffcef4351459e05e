import SessionStorage

extension PostgresSessionStore {
    /// The schema of the default tables (`sessions`, `sessions_meta`), exactly the layout of
    /// lua-resty-session, for teams that manage schemas themselves. ``migrate()`` runs the same
    /// statements (with the configured table names).
    public static let schemaSQL: String = try! schemaSQL(tableName: "sessions", tableNameMeta: "sessions_meta")

    /// The schema for the given table names (each optionally schema-qualified).
    ///
    /// - Throws: `invalidArgument` when a name is not `[schema.]identifier` with parts matching
    ///   `[A-Za-z_][A-Za-z0-9_]*`.
    public static func schemaSQL(tableName: String, tableNameMeta: String) throws -> String {
        let sessions = try SQLTableName(tableName)
        let meta = try SQLTableName(tableNameMeta)
        return SQLStatements.schema(sessions: sessions, meta: meta).joined(separator: ";\n") + ";\n"
    }
}

/// A validated, quoted table name: `[schema.]table`.
struct SQLTableName: Sendable, Hashable {
    /// The parts as given, e.g. `["auth", "sessions"]`.
    let parts: [String]

    init(_ name: String) throws {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), parts.allSatisfy(Self.isIdentifier) else {
            throw SessionStoreError(
                .invalidArgument,
                message: "table name must be [schema.]name with parts matching [A-Za-z_][A-Za-z0-9_]*",
                backend: PostgresSessionStore.backendName
            )
        }
        self.parts = parts
    }

    /// `"schema"."table"`: safe because every part was validated (no quote can occur).
    var quoted: String { parts.map { "\"" + $0 + "\"" }.joined(separator: ".") }

    /// The last part, used to derive index names.
    var table: String { parts[parts.count - 1] }

    private static func isIdentifier(_ part: String) -> Bool {
        guard let first = part.utf8.first, part.utf8.count <= 63 else { return false }
        func isLetter(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || byte == UInt8(ascii: "_")
        }
        return isLetter(first) && part.utf8.allSatisfy { isLetter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }
}

/// Every statement the store sends. Values are always `$n` parameters; only the validated,
/// quoted table names are part of the text. The statements are prepared once per connection
/// without parameter types, so every integer parameter carries a `::bigint` cast (the server
/// would otherwise infer `to_timestamp($n)`'s argument as `double precision`), and every
/// result column is `text`: postgres-nio 1.33.2's prepared statements ask for binary results
/// but describe their columns as text, which only `text` columns survive (the same bytes in
/// both formats).
struct SQLStatements: Sendable {
    /// Whether a rotation's old record is kept stale or removed.
    enum Rotation: Sendable, Hashable, CaseIterable {
        case none
        case keepStale
        case remove
    }

    let get: String
    let delete: String
    let deleteWithMetadata: String
    let readMetadata: String
    let deleteExpired: String
    let migrate: [String]
    /// `set` for each (rotation, has metadata).
    private let sets: [Rotation: [Bool: String]]

    init(sessions: SQLTableName, meta: SQLTableName) {
        let t = sessions.quoted
        let m = meta.quoted
        self.get = "SELECT data FROM \(t) WHERE sid = $1 AND exp >= to_timestamp($2::bigint)"
        self.delete = "DELETE FROM \(t) WHERE sid = $1"
        self.deleteWithMetadata = """
            WITH gone AS (DELETE FROM \(t) WHERE sid = $1), \
            meta AS (DELETE FROM \(m) WHERE sid = $1 AND (aud, sub) IN (SELECT * FROM unnest($2::text[], $3::text[]))) \
            SELECT 1
            """
        self.readMetadata = """
            SELECT m.sid, extract(epoch FROM s.exp)::bigint::text FROM \(m) m JOIN \(t) s ON s.sid = m.sid \
            WHERE m.aud = $1 AND m.sub = $2 AND s.exp >= to_timestamp($3::bigint)
            """
        self.deleteExpired = """
            WITH gone AS (DELETE FROM \(t) WHERE sid IN (SELECT sid FROM \(t) WHERE exp < to_timestamp($1::bigint) LIMIT $2::bigint) RETURNING 1) \
            SELECT count(*)::text FROM gone
            """
        self.migrate = Self.schema(sessions: sessions, meta: meta)
        var sets: [Rotation: [Bool: String]] = [:]
        for rotation in Rotation.allCases {
            for metadata in [false, true] {
                sets[rotation, default: [:]][metadata] = Self.set(t: t, m: m, rotation: rotation, metadata: metadata)
            }
        }
        self.sets = sets
    }

    /// The `set` statement. Parameters: `$1` sid, `$2` name, `$3` data, `$4` expiry (epoch);
    /// with a rotation `$5` old sid (and `$6` its stale expiry for `keepStale`); with metadata
    /// the next two are the audiences and subjects arrays.
    ///
    /// One statement with data-modifying CTEs: atomic by itself, one round trip.
    func set(rotation: Rotation, metadata: Bool) -> String {
        sets[rotation]![metadata]!
    }

    private static func set(t: String, m: String, rotation: Rotation, metadata: Bool) -> String {
        var parts = [
            """
            up AS (INSERT INTO \(t) (sid, name, data, exp) VALUES ($1, $2, $3, to_timestamp($4::bigint)) \
            ON CONFLICT (sid) DO UPDATE SET name = EXCLUDED.name, data = EXCLUDED.data, exp = EXCLUDED.exp)
            """
        ]
        var next = 5
        var old: Int?
        switch rotation {
        case .none:
            break
        case .keepStale:
            old = next
            parts.append("old AS (UPDATE \(t) SET exp = to_timestamp($\(next + 1)::bigint) WHERE sid = $\(next) AND exp > to_timestamp($\(next + 1)::bigint))")
            next += 2
        case .remove:
            old = next
            parts.append("old AS (DELETE FROM \(t) WHERE sid = $\(next))")
            next += 1
        }
        if metadata {
            let pairs = "unnest($\(next)::text[], $\(next + 1)::text[])"
            parts.append("meta AS (INSERT INTO \(m) (aud, sub, sid) SELECT aud, sub, $1 FROM \(pairs) AS p(aud, sub) ON CONFLICT DO NOTHING)")
            if let old {
                parts.append("unmeta AS (DELETE FROM \(m) WHERE sid = $\(old) AND (aud, sub) IN (SELECT * FROM \(pairs)))")
            }
        }
        return "WITH " + parts.joined(separator: ", ") + " SELECT 1"
    }

    static func schema(sessions: SQLTableName, meta: SQLTableName) -> [String] {
        let index = "\"" + sessions.table + "_exp_idx\""
        return [
            """
            CREATE TABLE IF NOT EXISTS \(sessions.quoted) (
              sid  TEXT PRIMARY KEY,
              name TEXT,
              data TEXT,
              exp  TIMESTAMP WITH TIME ZONE
            )
            """,
            "CREATE INDEX IF NOT EXISTS \(index) ON \(sessions.quoted) (exp)",
            """
            CREATE TABLE IF NOT EXISTS \(meta.quoted) (
              aud TEXT,
              sub TEXT,
              sid TEXT REFERENCES \(sessions.quoted) (sid) ON DELETE CASCADE ON UPDATE CASCADE,
              PRIMARY KEY (aud, sub, sid)
            )
            """,
        ]
    }
}
