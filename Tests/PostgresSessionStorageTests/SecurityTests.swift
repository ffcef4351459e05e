import PostgresNIO
import PostgresSessionStorage
import SessionStorage
import SessionStorageConformance
import Testing

@Suite("PostgreSQL input and connection security")
struct PostgresSecurityTests {
    static let hostile = [
        "'; DROP TABLE sessions; --",
        "\"; DROP TABLE \"\(PG.table)\"; --",
        "it's a 'quoted' \"string\"",
        "back\\slash \\' \\\\ E'\\x41'",
        "$1 $2 ::text[] ) ; --",
        "unicode: héllo — 世界 🌍 \u{202E}rtl\u{200B}",
        "line\nbreak\r\ttab",
    ]

    @Test("hostile strings as name, audience, subject and value round-trip verbatim; tables intact")
    func injection() async throws {
        let configuration = try PG.tcp()
        try await PG.withStore(configuration) { store in
            let t = 1_800_000_000
            for (index, text) in Self.hostile.enumerated() {
                let key = SessionStoreConformance.randomKey()
                let audience = text + " aud \(index) " + PG.unique("a")
                let subject = text + " sub \(index) " + PG.unique("s")
                let metadata = try SessionMetadata(audiences: [audience], subjects: [subject])
                try await store.set(name: text, key: key, value: text, ttl: 60, currentTime: t, metadata: metadata)
                #expect(try await store.get(name: text, key: key, currentTime: t) == text)
                #expect(try await store.readMetadata(name: text, audience: audience, subject: subject, currentTime: t) == [key: t + 60])
                let rows = try await PG.rows(table: PG.table)
                #expect(rows.contains(PG.Row(sid: key, name: text, data: text, exp: t + 60)))
                try await store.delete(name: text, key: key, currentTime: t, metadata: metadata)
                #expect(try await store.get(name: text, key: key, currentTime: t) == nil)
            }
            // Both tables still exist and answer.
            let tables = try await PG.withConnection { connection in
                var names: [String] = []
                let query: PostgresQuery = "SELECT tablename::text FROM pg_tables WHERE tablename IN (\(PG.table), \(PG.tableMeta))"
                for try await name in try await connection.query(query, logger: PG.logger).decode(String.self) {
                    names.append(name)
                }
                return Set(names)
            }
            #expect(tables == [PG.table, PG.tableMeta])
        }
    }

    @Test("a NUL byte anywhere is a typed invalidArgument error, checked before sending")
    func nulByte() async throws {
        let configuration = try PG.tcp()
        try await PG.withStore(configuration) { store in
            let t = 1_800_000_000
            let key = SessionStoreConformance.randomKey()
            let nul = "a\u{0}b"
            let metadataWithNul = try SessionMetadata(audiences: [nul], subjects: ["s"])
            let attempts: [(String, @Sendable () async throws -> Void)] = [
                ("value", { try await store.set(name: "session", key: key, value: nul, ttl: 60, currentTime: t) }),
                ("name", { try await store.set(name: nul, key: key, value: "v", ttl: 60, currentTime: t) }),
                ("key", { try await store.set(name: "session", key: nul, value: "v", ttl: 60, currentTime: t) }),
                ("audience", {
                    try await store.set(name: "session", key: key, value: "v", ttl: 60, currentTime: t, metadata: metadataWithNul)
                }),
                ("get key", { _ = try await store.get(name: "session", key: nul, currentTime: t) }),
                ("subject", { _ = try await store.readMetadata(name: "session", audience: "a", subject: nul, currentTime: t) }),
                ("delete metadata", { try await store.delete(name: "session", key: key, currentTime: t, metadata: metadataWithNul) }),
            ]
            for (label, attempt) in attempts {
                let error = try await PG.storeError(attempt)
                #expect(error.code == .invalidArgument, "\(label)")
                #expect(error.backend == "postgres", "\(label)")
            }
            // Nothing was written by the failed set.
            #expect(try await store.get(name: "session", key: key, currentTime: t) == nil)
        }
    }

    @Test("a wrong password is authenticationFailed, and the password is not in the description")
    func wrongPassword() async throws {
        var configuration = try PG.tcp()
        let password = "wrong-" + PG.unique("secret")
        configuration.password = password
        configuration.connectTimeout = .seconds(15)
        try await PG.withStore(configuration, migrate: false) { store in
            let start = ContinuousClock.now
            let error = try await PG.storeError {
                _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1)
            }
            #expect(error.code == .authenticationFailed)
            // After 2 s of waiting, one connection attempt of the store's own says why (about 5 s
            // in all on a quiet machine). The bound is the guarantee: the connect timeout, then
            // at most one more attempt, plus slack; postgres-nio's pool alone would keep the
            // caller queued until its 60 s circuit breaker and then fail without the cause.
            #expect(ContinuousClock.now - start < .seconds(15 + 15 + 15))
            #expect(error.serverMessage?.contains("password authentication failed") == true)
            #expect(!error.description.contains(password))
            #expect(!error.description.contains(try PG.env("PG_PASSWORD")))
            #expect(error.underlying is PSQLError)
            // Every further operation fails the same way.
            let again = try await PG.storeError { _ = try await store.readMetadata(name: "s", audience: "a", subject: "b", currentTime: 1) }
            #expect(again.code == .authenticationFailed)
        }
    }

    @Test("sslRequired against a server without TLS is a typed tls error")
    func sslRequiredWithoutTLS() async throws {
        var configuration = try PG.tcp()
        configuration.port = Int(try PG.env("PG_NOTLS_PORT"))!
        configuration.ssl = true
        configuration.sslRequired = true
        configuration.sslVerify = false
        configuration.connectTimeout = .seconds(15)
        try await PG.withStore(configuration, migrate: false) { store in
            let error = try await PG.storeError {
                _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1)
            }
            #expect(error.code == .tls)
        }
    }

    @Test("ssl preferred against a server without TLS falls back to plaintext")
    func sslPreferredWithoutTLS() async throws {
        var configuration = try PG.tcp()
        configuration.port = Int(try PG.env("PG_NOTLS_PORT"))!
        configuration.ssl = true
        let value = try await PG.withStore(configuration) { store in
            try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1)
        }
        #expect(value == nil)
    }

    @Test("a certificate from an unknown CA is a typed tls error when verifying")
    func unknownCA() async throws {
        var configuration = try PG.tcp()
        configuration.tls = .require(verify: true, caFile: try PG.env("TLS_UNKNOWN_CA_FILE"))
        configuration.connectTimeout = .seconds(15)
        try await PG.withStore(configuration, migrate: false) { store in
            let error = try await PG.storeError {
                _ = try await store.get(name: "session", key: SessionStoreConformance.randomKey(), currentTime: 1)
            }
            #expect(error.code == .tls)
        }
    }

    @Test("invalid table names are rejected; schema-qualified names work")
    func tableNames() async throws {
        for bad in ["", "a b", "x;DROP TABLE y", "\"q\"", "a.b.c", "1abc", "a.", ".a", "sessions--"] {
            var configuration = PostgresSessionStore.Configuration()
            configuration.tableName = bad
            #expect(throws: SessionStoreError.self, "\(bad)") { try PostgresSessionStore(configuration: configuration) }
        }
        let schema = PG.unique("auth")
        try await PG.withConnection { connection in
            _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA \(schema)"), logger: PG.logger).collect()
        }
        var configuration = try PG.tcp()
        configuration.tableName = schema + ".sessions"
        configuration.tableNameMeta = schema + ".sessions_meta"
        try await PG.withStore(configuration) { store in
            let key = SessionStoreConformance.randomKey()
            let metadata = try SessionMetadata(audience: "app", subject: "alice")
            try await store.set(name: "session", key: key, value: "v", ttl: 60, currentTime: 100, metadata: metadata)
            #expect(try await store.get(name: "session", key: key, currentTime: 100) == "v")
            #expect(try await store.readMetadata(name: "session", audience: "app", subject: "alice", currentTime: 100) == [key: 160])
            #expect(try await PG.rows(table: "\(schema).sessions") == [PG.Row(sid: key, name: "session", data: "v", exp: 160)])
            // migrate() is idempotent.
            try await store.migrate()
        }
    }

    @Test("migrate() from several instances at once on fresh tables")
    func concurrentMigrate() async throws {
        var configuration = try PG.tcp()
        configuration.tableName = PG.unique("migr")
        configuration.tableNameMeta = configuration.tableName + "_meta"
        // The instances wait for each other's DDL on the advisory lock: on a machine loaded by
        // the whole test suite that can take longer than the default statement deadline.
        configuration.sendTimeout = .seconds(60)
        configuration.readTimeout = .seconds(60)
        let shared = configuration
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await PG.withStore(shared, migrate: false) { store in try await store.migrate() }
                }
            }
            try await group.waitForAll()
        }
        let rows = try await PG.rows(table: configuration.tableName)
        #expect(rows.isEmpty)
    }

    @Test("the published schema is the seed's layout")
    func schemaText() throws {
        let sql = PostgresSessionStore.schemaSQL
        #expect(sql.contains("CREATE TABLE IF NOT EXISTS \"sessions\" ("))
        #expect(sql.contains("exp  TIMESTAMP WITH TIME ZONE"))
        #expect(sql.contains("sid TEXT REFERENCES \"sessions\" (sid) ON DELETE CASCADE ON UPDATE CASCADE"))
        #expect(sql.contains("PRIMARY KEY (aud, sub, sid)"))
        #expect(sql.contains("CREATE INDEX IF NOT EXISTS \"sessions_exp_idx\" ON \"sessions\" (exp)"))
        #expect(try PostgresSessionStore.schemaSQL(tableName: "auth.s", tableNameMeta: "auth.m").contains("\"auth\".\"s\""))
    }
}
