import Foundation
import NIOSSL
import SessionStorage
import Testing
import _MySQLWire

@testable import MySQLSessionStorage

/// MariaDB's `auth_ed25519` against the real server: a user identified via ed25519 logs in with
/// our `client_ed25519` (TCP without and with TLS, through the store too), a wrong password is a
/// typed authentication error, and our public key is the one the server derives.
@Suite("MySQL client_ed25519 against MariaDB", .serialized)
struct MySQLEd25519Tests {
    static let user = "sess_ed"
    /// Longer than a seed, with bytes of every kind a password may have.
    static let password = "edpass-of-any-length-" + String(repeating: "0123456789-Zz_/+=", count: 5) + "…é"

    /// The superuser over the unix socket.
    static func admin() async throws -> MySQLConnection {
        try await MySQLConnection.connect(
            configuration: .init(
                endpoint: .unixSocket(path: try MySQLTestServer.env("MYSQL_SOCKET")),
                username: ProcessInfo.processInfo.environment["MYSQL_SUPERUSER"] ?? "root",
                password: ProcessInfo.processInfo.environment["MYSQL_SUPERUSER_PASSWORD"] ?? "", charset: .utf8mb4))
    }

    /// Installs the plugin if needed (also its `ed25519_password()` function) and (re)creates
    /// the user with ``password``.
    static func prepare(_ admin: MySQLConnection) async throws {
        let active = try await admin.query(
            "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519' AND PLUGIN_STATUS = 'ACTIVE'")
        let function = try await admin.query("SELECT COUNT(*) FROM mysql.func WHERE name = 'ed25519_password'")
        if active.rows.first?[0].int != 1 || function.rows.first?[0].int != 1 {
            do {
                try await admin.query("INSTALL SONAME 'auth_ed25519'")
            } catch let error as MySQLError where error.serverError?.message.contains("already") == true {
                // Installed meanwhile (or loaded by plugin-load-add): fine.
            }
        }
        // A plugin loaded at startup (scripts/services.sh: --plugin-load-add) leaves the
        // function out: INSTALL SONAME then fails as "already installed" without creating it.
        try await admin.query("CREATE FUNCTION IF NOT EXISTS ed25519_password RETURNS STRING SONAME 'auth_ed25519.so'")
        let database = try MySQLTestServer.env("MYSQL_DATABASE")
        try await admin.query(
            "CREATE OR REPLACE USER '\(user)'@'127.0.0.1' IDENTIFIED VIA ed25519 USING PASSWORD('\(password)')")
        try await admin.query("GRANT ALL PRIVILEGES ON `\(database)`.* TO '\(user)'@'127.0.0.1'")
    }

    static func tcp(password: String, tls: MySQLConnection.Configuration.TLS = .disable) throws -> MySQLConnection.Configuration {
        .init(
            endpoint: .tcp(host: try MySQLTestServer.env("MYSQL_HOST"), port: Int(try MySQLTestServer.env("MYSQL_PORT"))!),
            username: user, password: password, database: try MySQLTestServer.env("MYSQL_DATABASE"), charset: .utf8mb4, tls: tls,
            timeouts: .init(connect: .seconds(5)))
    }

    static func verifiedTLS() throws -> MySQLConnection.Configuration.TLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file(try MySQLTestServer.env("TLS_CA_FILE"))
        return .require(configuration)
    }

    @Test func publicKeyIsTheServersAndTheUserLogsInWithAndWithoutTLS() async throws {
        let admin = try await Self.admin()
        defer { admin.close() }
        try await Self.prepare(admin)

        // The key the server stores for the password, as ed25519_password() and the account show it.
        let expected = Data(MySQLAuthentication.ed25519PublicKey(password: Self.password)).base64EncodedString()
            .replacingOccurrences(of: "=", with: "")
        let derived = try await admin.query("SELECT ed25519_password('\(Self.password)')")
        #expect(derived.rows.first?[0].string == expected)
        let stored = try await admin.query(
            "SELECT JSON_VALUE(Priv, '$.authentication_string') FROM mysql.global_priv WHERE User = '\(Self.user)' AND Host = '127.0.0.1'")
        #expect(stored.rows.first?[0].string == expected)
        // Short and seed-sized passwords too.
        for password in ["", "p", "0123456789abcdef0123456789abcdef"] {
            let key = Data(MySQLAuthentication.ed25519PublicKey(password: password)).base64EncodedString()
                .replacingOccurrences(of: "=", with: "")
            let row = try await admin.query("SELECT ed25519_password('\(password)')")
            #expect(row.rows.first?[0].string == key, "password of \(password.utf8.count) bytes")
        }

        // Several logins (each with a fresh scramble), without TLS.
        for _ in 0..<5 {
            let plain = try await MySQLConnection.connect(configuration: try Self.tcp(password: Self.password))
            let who = try await plain.query("SELECT CURRENT_USER(), (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher')")
            #expect(who.rows.first?[0].string == "\(Self.user)@127.0.0.1")
            #expect(who.rows.first?[1].string?.isEmpty ?? true, "expected a plain connection")
            plain.close()
        }

        // With verified TLS.
        let secure = try await MySQLConnection.connect(configuration: try Self.tcp(password: Self.password, tls: try Self.verifiedTLS()))
        defer { secure.close() }
        let cipher = try await secure.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        #expect(cipher.rows.first?[1].string?.isEmpty == false, "the connection is not encrypted")
        let who = try await secure.query("SELECT CURRENT_USER()")
        #expect(who.rows.first?[0].string == "\(Self.user)@127.0.0.1")
    }

    @Test func wrongPasswordIsATypedAuthenticationErrorWithoutThePassword() async throws {
        let admin = try await Self.admin()
        defer { admin.close() }
        try await Self.prepare(admin)
        let wrong = Self.password + "-wrong-9f3a"
        for tls in [MySQLConnection.Configuration.TLS.disable, try Self.verifiedTLS()] {
            do {
                let connection = try await MySQLConnection.connect(configuration: try Self.tcp(password: wrong, tls: tls))
                connection.close()
                Issue.record("a wrong password logged in")
            } catch let error as MySQLError {
                #expect(error.code == .authenticationFailed)
                #expect(error.serverError?.sqlState == "28000")
                #expect(!error.description.contains(wrong))
                #expect(!error.description.contains(Self.password))
                #expect(!error.debugDescription.contains(Self.password))
            }
        }
    }

    @Test func storeLogsInAsAnEd25519User() async throws {
        let admin = try await Self.admin()
        defer { admin.close() }
        try await Self.prepare(admin)
        var configuration = try MySQLTestServer.configuration()
        configuration.username = Self.user
        configuration.password = Self.password
        configuration.sslCAFile = try MySQLTestServer.env("TLS_CA_FILE")
        let key = String(repeating: "k", count: 43)
        try await MySQLTestServer.withStore(configuration) { store in
            try await store.set(name: "session", key: key, value: "ed25519-value", ttl: 60, currentTime: 1_795_310_638)
            #expect(try await store.get(name: "session", key: key, currentTime: 1_795_310_638) == "ed25519-value")
        }
        // A wrong password through the store: the storage error, without the password.
        configuration.password = "not-the-password-77"
        let store = try MySQLSessionStore(configuration: configuration)
        try await withRunning(store) {
            do {
                _ = try await store.get(name: "session", key: key, currentTime: 1_795_310_638)
                Issue.record("a wrong password was accepted")
            } catch let error as SessionStoreError {
                #expect(error.code == .authenticationFailed)
                #expect(!error.description.contains("not-the-password-77"))
                #expect(!error.debugDescription.contains("not-the-password-77"))
                #expect((error.underlying as? MySQLError)?.errorCode == 1045)
            }
        }
    }
}
