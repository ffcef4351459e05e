import Crypto
import Foundation
import NIOCore
import Testing
import _CryptoExtras

@testable import _MySQLWire

@Suite("MySQL handshake and authentication")
struct AuthenticationTests {
    /// The greeting of the MariaDB 10.11.19 server here, read from a raw socket (payload after
    /// the 4-byte header `64 00 00 00`).
    static let capturedMariaDBGreeting =
        "0a352e352e352d31302e31312e31392d4d6172696144422d302b646562313275310004000000744c60217b6e366100feff080200ff81150000000000001d000000665e24362247216970757d33006d7973716c5f6e61746976655f70617373776f726400"

    @Test func parsesTheCapturedMariaDBGreeting() throws {
        let greeting = try MySQLHandshakeV10.decode(ByteBuffer(hex: Self.capturedMariaDBGreeting))
        #expect(greeting.serverVersion == "5.5.5-10.11.19-MariaDB-0+deb12u1")
        #expect(greeting.isMariaDB)
        #expect(greeting.connectionID == 4)
        #expect(greeting.scramble.hex == "744c60217b6e3661665e24362247216970757d33")
        #expect(greeting.authPluginName == "mysql_native_password")
        #expect(greeting.collation == 8)
        #expect(greeting.capabilities.contains(.ssl))
        #expect(greeting.capabilities.contains(.protocol41))
        #expect(greeting.capabilities.contains(.pluginAuth))
        #expect(!greeting.capabilities.contains(.longPassword))  // MariaDB clears CLIENT_MYSQL
        #expect(greeting.status.contains(.autocommit))
        // The last 4 reserved bytes, 1d 00 00 00: MariaDB's extended capabilities (bits 32, 34,
        // 35, 36), of which MARIADB_CLIENT_CACHE_METADATA is bit 36.
        #expect(greeting.mariaDBCapabilities.rawValue == 0x1D)
        #expect(greeting.mariaDBCapabilities.contains(.cacheMetadata))
    }

    @Test func mariaDBLoginAsksForMetadataCachingAndMySQLLoginDoesNot() throws {
        var mariaDB = machine()
        let (response, _) = try handshakeResponse(
            mariaDB.greetingReceived(MySQLPacket(sequenceID: 0, payload: ByteBuffer(hex: Self.capturedMariaDBGreeting))))
        #expect(response.mariaDBCapabilities == [.cacheMetadata])
        #expect(mariaDB.mariaDBCapabilities == [.cacheMetadata])
        var encoded = ByteBuffer()
        response.encode(into: &encoded)
        // Bytes 28–31 of the response: the extended capabilities (bit 36 → 0x10).
        #expect(encoded.getInteger(at: 28, endianness: .little, as: UInt32.self) == 0x10)

        // A MySQL greeting sets CLIENT_MYSQL: its reserved bytes are filler, nothing extended is sent.
        var mysql = machine()
        let (mysqlResponse, _) = try handshakeResponse(mysql.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password")))
        #expect(mysql.mariaDBCapabilities.isEmpty)
        #expect(mysqlResponse.capabilities.contains(.longPassword))
        var mysqlEncoded = ByteBuffer()
        mysqlResponse.encode(into: &mysqlEncoded)
        #expect(mysqlEncoded.getInteger(at: 28, endianness: .little, as: UInt32.self) == 0)
        // Even with extended bits set on the response, a CLIENT_MYSQL response writes filler.
        var forced = mysqlResponse
        forced.mariaDBCapabilities = [.cacheMetadata]
        var forcedEncoded = ByteBuffer()
        forced.encode(into: &forcedEncoded)
        #expect(forcedEncoded.getInteger(at: 28, endianness: .little, as: UInt32.self) == 0)
    }

    @Test func refusesOtherProtocolVersionsAndTruncatedGreetings() {
        #expect(throws: MySQLError.self) { try MySQLHandshakeV10.decode(ByteBuffer(bytes: [9, 0x41, 0])) }
        let truncated = ByteBuffer(hex: String(Self.capturedMariaDBGreeting.prefix(60)))
        #expect(throws: MySQLError.self) { try MySQLHandshakeV10.decode(truncated) }
    }

    // Expected values computed independently (Python hashlib) for password "sesspass".
    @Test func nativePasswordScramble() {
        let scramble = Array(ByteBuffer(hex: "744c60217b6e3661665e24362247216970757d33").readableBytesView)
        #expect(MySQLAuthentication.nativePassword(password: "sesspass", scramble: scramble).hex == "933c98f214505129ae74278d4ff3df3f957a1fd4")
        #expect(MySQLAuthentication.nativePassword(password: "", scramble: scramble).isEmpty)
    }

    @Test func cachingSHA2Scramble() {
        let scramble = Array(ByteBuffer(hex: "744c60217b6e3661665e24362247216970757d33").readableBytesView)
        #expect(
            MySQLAuthentication.cachingSHA2Password(password: "sesspass", scramble: scramble).hex
                == "03443fb24aeedcedccb71e5ddb46e60fe7dfdb66514da4a3ae83b92c73622c4d")
        #expect(MySQLAuthentication.cachingSHA2Password(password: "", scramble: scramble).isEmpty)
    }

    func machine(
        tls: MySQLAuthenticationStateMachine.TLSMode = .disable, secure: Bool = false, pem: String? = nil, retrieve: Bool = false
    ) -> MySQLAuthenticationStateMachine {
        MySQLAuthenticationStateMachine(
            configuration: .init(
                username: "sess", password: "secret-pw", database: "sessdb", collation: 45, maxPacketSize: 1 << 20, tls: tls,
                isSecureTransport: secure, serverPublicKeyPEM: pem, allowPublicKeyRetrieval: retrieve))
    }

    func handshakeResponse(_ action: MySQLAuthenticationStateMachine.Action) throws -> (MySQLHandshakeResponse41, UInt8) {
        guard case .send(.handshakeResponse(let response), let sequenceID) = action else {
            throw MySQLError(.protocolError, message: "expected a handshake response, got \(action)")
        }
        return (response, sequenceID)
    }

    @Test func nativePasswordLogin() throws {
        var machine = machine()
        let greeting = try MySQLHandshakeV10.decode(ByteBuffer(hex: Self.capturedMariaDBGreeting))
        let (response, sequenceID) = try handshakeResponse(machine.greetingReceived(MySQLPacket(sequenceID: 0, payload: ByteBuffer(hex: Self.capturedMariaDBGreeting))))
        #expect(sequenceID == 1)
        #expect(response.authPluginName == "mysql_native_password")
        #expect(response.authResponse == MySQLAuthentication.nativePassword(password: "secret-pw", scramble: greeting.scramble))
        #expect(response.collation == 45)
        #expect(response.database == "sessdb")
        #expect(response.capabilities.contains(.connectWithDB))
        #expect(!response.capabilities.contains(.ssl))
        #expect(!response.capabilities.contains(.multiStatements))
        #expect(!response.capabilities.contains(.localFiles))
        #expect(machine.authPacketReceived(ServerPacket.ok(2)) == .authenticated(greeting))
    }

    @Test func handshakeResponseEncoding() throws {
        let response = MySQLHandshakeResponse41(
            capabilities: [.protocol41, .secureConnection, .pluginAuth, .pluginAuthLengthEncodedClientData, .connectWithDB],
            maxPacketSize: 1 << 20, collation: 11, username: "u", authResponse: [1, 2], database: "d",
            authPluginName: "mysql_native_password")
        var buffer = ByteBuffer()
        response.encode(into: &buffer)
        var expected = ByteBuffer()
        expected.writeInteger(response.capabilities.rawValue, endianness: .little)
        expected.writeInteger(UInt32(1 << 20), endianness: .little)
        expected.writeInteger(UInt8(11))
        expected.writeRepeatingByte(0, count: 23)
        expected.writeBytes([0x75, 0, 2, 1, 2, 0x64, 0])
        expected.writeString("mysql_native_password")
        expected.writeInteger(UInt8(0))
        #expect(buffer == expected)
        var ssl = ByteBuffer()
        response.encodeSSLRequest(into: &ssl)
        #expect(ssl.readableBytes == 32)
    }

    @Test func tlsUpgradeComesBeforeTheResponse() throws {
        var machine = machine(tls: .require)
        let action = machine.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password"))
        guard case .sendSSLRequestAndStartTLS(.sslRequest(let request), let sequenceID) = action else {
            Issue.record("expected an SSLRequest, got \(action)")
            return
        }
        #expect(sequenceID == 1)
        #expect(request.capabilities.contains(.ssl))
        let (response, responseSequence) = try handshakeResponse(machine.tlsEstablished())
        #expect(responseSequence == 2)
        #expect(response.capabilities.contains(.ssl))
    }

    @Test func requiredTLSWithoutServerSupportFails() {
        var machine = machine(tls: .require)
        let action = machine.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password", ssl: false))
        #expect(action == .fail(MySQLError(.tls, message: "")))
        var preferring = self.machine(tls: .prefer)
        guard case .send(.handshakeResponse(let response), _) = preferring.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password", ssl: false)) else {
            Issue.record("prefer must fall back to a plain login")
            return
        }
        #expect(!response.capabilities.contains(.ssl))
    }

    @Test func accessDeniedIsAuthenticationFailed() throws {
        var machine = machine()
        _ = try handshakeResponse(machine.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password")))
        let action = machine.authPacketReceived(
            ServerPacket.error(2, code: 1045, state: "28000", message: "Access denied for user 'sess'@'localhost' (using password: YES)"))
        guard case .fail(let error) = action else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.code == .authenticationFailed)
        #expect(error.errorCode == 1045)
        #expect(!error.description.contains("secret-pw"))
        #expect(!error.description.contains("Access denied"))
    }

    @Test func cachingSHA2FastPath() throws {
        var machine = machine()
        let (response, _) = try handshakeResponse(machine.greetingReceived(ServerPacket.greeting(plugin: "caching_sha2_password")))
        #expect(response.authPluginName == "caching_sha2_password")
        #expect(response.authResponse == MySQLAuthentication.cachingSHA2Password(password: "secret-pw", scramble: Array(1...20)))
        #expect(machine.authPacketReceived(ServerPacket.packet(2, [0x01, 0x03])) == .wait)
        guard case .authenticated = machine.authPacketReceived(ServerPacket.ok(3)) else {
            Issue.record("expected authenticated")
            return
        }
    }

    @Test func cachingSHA2FullPathOverTLSSendsThePassword() throws {
        var machine = machine(tls: .require)
        _ = machine.greetingReceived(ServerPacket.greeting(plugin: "caching_sha2_password"))
        _ = try handshakeResponse(machine.tlsEstablished())
        let action = machine.authPacketReceived(ServerPacket.packet(3, [0x01, 0x04]))
        #expect(action == .send(.authData(Array("secret-pw".utf8) + [0]), sequenceID: 4))
        guard case .authenticated = machine.authPacketReceived(ServerPacket.ok(5)) else {
            Issue.record("expected authenticated")
            return
        }
    }

    @Test func cachingSHA2FullPathOverUnixSocketSendsThePassword() throws {
        var machine = machine(secure: true)
        _ = machine.greetingReceived(ServerPacket.greeting(plugin: "caching_sha2_password"))
        #expect(machine.authPacketReceived(ServerPacket.packet(2, [0x01, 0x04])) == .send(.authData(Array("secret-pw".utf8) + [0]), sequenceID: 3))
    }

    @Test func cachingSHA2FullPathWithoutTLSRefusesCleartext() throws {
        var machine = machine()
        _ = machine.greetingReceived(ServerPacket.greeting(plugin: "caching_sha2_password"))
        guard case .fail(let error) = machine.authPacketReceived(ServerPacket.packet(2, [0x01, 0x04])) else {
            Issue.record("the password must never be sent in clear over TCP without TLS")
            return
        }
        #expect(error.code == .authenticationFailed)
    }

    static func decryptPassword(_ data: [UInt8], key: _RSA.Encryption.PrivateKey, scramble: [UInt8]) throws -> [UInt8] {
        let xored = Array(try key.decrypt(data, padding: .PKCS1_OAEP))
        return xored.enumerated().map { $0.element ^ scramble[$0.offset % scramble.count] }
    }

    @Test func cachingSHA2FullPathRequestsTheServerPublicKey() throws {
        let key = try _RSA.Encryption.PrivateKey(keySize: .bits2048)
        var machine = machine(retrieve: true)
        _ = machine.greetingReceived(ServerPacket.greeting(plugin: "caching_sha2_password"))
        #expect(machine.authPacketReceived(ServerPacket.packet(2, [0x01, 0x04])) == .send(.authData([0x02]), sequenceID: 3))
        let pem = Array(key.publicKey.pemRepresentation.utf8)
        guard case .send(.authData(let encrypted), let sequenceID) = machine.authPacketReceived(ServerPacket.packet(4, [0x01] + pem)) else {
            Issue.record("expected the encrypted password")
            return
        }
        #expect(sequenceID == 5)
        #expect(try Self.decryptPassword(encrypted, key: key, scramble: Array(1...20)) == Array("secret-pw".utf8) + [0])
        guard case .authenticated = machine.authPacketReceived(ServerPacket.ok(6)) else {
            Issue.record("expected authenticated")
            return
        }
    }

    @Test func cachingSHA2FullPathWithAConfiguredPublicKey() throws {
        let key = try _RSA.Encryption.PrivateKey(keySize: .bits2048)
        var machine = machine(pem: key.publicKey.pemRepresentation)
        _ = machine.greetingReceived(ServerPacket.greeting(plugin: "caching_sha2_password"))
        guard case .send(.authData(let encrypted), 3) = machine.authPacketReceived(ServerPacket.packet(2, [0x01, 0x04])) else {
            Issue.record("expected the encrypted password at once")
            return
        }
        #expect(try Self.decryptPassword(encrypted, key: key, scramble: Array(1...20)) == Array("secret-pw".utf8) + [0])
    }

    @Test func authSwitchToCachingSHA2AndToAnUnsupportedPlugin() throws {
        var machine = machine()
        _ = machine.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password"))
        let newScramble = Array(UInt8(30)...UInt8(49))
        let switchPacket = ServerPacket.packet(2, [0xFE] + Array("caching_sha2_password".utf8) + [0] + newScramble + [0])
        #expect(
            machine.authPacketReceived(switchPacket)
                == .send(.authData(MySQLAuthentication.cachingSHA2Password(password: "secret-pw", scramble: newScramble)), sequenceID: 3))
        var other = self.machine()
        _ = other.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password"))
        let dialog = ServerPacket.packet(2, [0xFE] + Array("dialog".utf8) + [0] + Array("Password: ".utf8))
        guard case .fail(let error) = other.authPacketReceived(dialog) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.code == .unsupportedAuthenticationPlugin)
        #expect(!"\(error)".contains("secret-pw"))
    }

    @Test func authSwitchToClientEd25519SignsTheScramble() throws {
        // Scrambles ending in a zero byte too: the server sends exactly 32 bytes, no terminator.
        for scramble in [Array(UInt8(100)..<UInt8(132)), Array(UInt8(1)...UInt8(31)) + [0]] {
            var machine = machine()
            _ = machine.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password"))
            let ed = ServerPacket.packet(2, [0xFE] + Array("client_ed25519".utf8) + [0] + scramble)
            guard case .send(.authData(let signature), 3) = machine.authPacketReceived(ed) else {
                Issue.record("expected the signature")
                return
            }
            #expect(signature == MySQLAuthentication.ed25519Password(password: "secret-pw", scramble: scramble))
            let key = try Curve25519.Signing.PublicKey(rawRepresentation: MySQLAuthentication.ed25519PublicKey(password: "secret-pw"))
            #expect(key.isValidSignature(signature, for: scramble))
            guard case .authenticated = machine.authPacketReceived(ServerPacket.ok(4)) else {
                Issue.record("expected authenticated")
                return
            }
        }
        // A wrong password: the server's access-denied error, typed, without the password.
        var denied = machine()
        _ = denied.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password"))
        _ = denied.authPacketReceived(ServerPacket.packet(2, [0xFE] + Array("client_ed25519".utf8) + [0] + Array(repeating: 9, count: 32)))
        guard case .fail(let error) = denied.authPacketReceived(
            ServerPacket.error(4, code: 1045, state: "28000", message: "Access denied for user 'sess'@'localhost' (using password: YES)"))
        else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.code == .authenticationFailed)
        #expect(!"\(error)".contains("secret-pw"))
        // A scramble of another length is a protocol error, not a signature of the wrong thing.
        var short = machine()
        _ = short.greetingReceived(ServerPacket.greeting(plugin: "mysql_native_password"))
        guard case .fail(let lengthError) = short.authPacketReceived(
            ServerPacket.packet(2, [0xFE] + Array("client_ed25519".utf8) + [0] + Array(repeating: 9, count: 20)))
        else {
            Issue.record("expected a failure")
            return
        }
        #expect(lengthError.code == .protocolError)
    }

    @Test func greetingNamingClientEd25519AnswersForNativePassword() {
        // A 20-byte greeting scramble cannot be signed for client_ed25519: answer for
        // mysql_native_password and let the server switch.
        var machine = machine()
        guard case .send(.handshakeResponse(let response), 1) = machine.greetingReceived(ServerPacket.greeting(plugin: "client_ed25519"))
        else {
            Issue.record("expected a handshake response")
            return
        }
        #expect(response.authPluginName == "mysql_native_password")
        #expect(response.authResponse == MySQLAuthentication.nativePassword(password: "secret-pw", scramble: Array(1...20)))
    }
}
