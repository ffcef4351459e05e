import NIOCore

/// The handshake and authentication of one connection, as a pure state machine: events in
/// (the greeting, TLS established, auth packets), actions out (send, start TLS, done, fail).
///
/// Plugins: `mysql_native_password`; `caching_sha2_password` (fast path; full path with the
/// cleartext password over TLS or a unix socket, else RSA-OAEP with the server's public key,
/// configured or requested from the server); MariaDB's `client_ed25519` (an Ed25519 signature of
/// the 32-byte scramble, the password in place of the seed; never the password itself). Others
/// (`sha256_password`, `mysql_clear_password`, `dialog`…) fail with
/// ``MySQLError/Code/unsupportedAuthenticationPlugin``.
public struct MySQLAuthenticationStateMachine: Sendable {
    /// How TLS is used.
    public enum TLSMode: Sendable, Hashable {
        /// Never.
        case disable
        /// When the server offers it.
        case prefer
        /// Always; a server without TLS is an error.
        case require
    }

    /// The credentials and options of the handshake.
    public struct Configuration: Sendable, Hashable {
        /// The user.
        public var username: String
        /// The password (empty for none).
        public var password: String
        /// The default database.
        public var database: String?
        /// The connection's collation id.
        public var collation: UInt8
        /// The largest packet the client accepts.
        public var maxPacketSize: UInt32
        /// Whether and how to use TLS.
        public var tls: TLSMode
        /// The transport is already private (unix socket): a cleartext password may be sent.
        public var isSecureTransport: Bool
        /// The server's RSA public key (PEM) for `caching_sha2_password` without TLS.
        public var serverPublicKeyPEM: String?
        /// Whether to ask the server for its RSA public key when none is configured (exposes the
        /// password to an active man in the middle; MySQL's `allowPublicKeyRetrieval`).
        public var allowPublicKeyRetrieval: Bool

        /// Creates a configuration.
        public init(
            username: String, password: String, database: String?, collation: UInt8, maxPacketSize: UInt32,
            tls: TLSMode, isSecureTransport: Bool = false, serverPublicKeyPEM: String? = nil,
            allowPublicKeyRetrieval: Bool = false
        ) {
            self.username = username
            self.password = password
            self.database = database
            self.collation = collation
            self.maxPacketSize = maxPacketSize
            self.tls = tls
            self.isSecureTransport = isSecureTransport
            self.serverPublicKeyPEM = serverPublicKeyPEM
            self.allowPublicKeyRetrieval = allowPublicKeyRetrieval
        }
    }

    /// What the connection must do next.
    public enum Action: Sendable, Equatable {
        /// Write this message with this sequence id.
        case send(MySQLClientMessage, sequenceID: UInt8)
        /// Write the `SSLRequest`, then start the TLS handshake; call ``tlsEstablished()`` after it.
        case sendSSLRequestAndStartTLS(MySQLClientMessage, sequenceID: UInt8)
        /// Nothing to do until the next packet.
        case wait
        /// Authenticated; the connection is ready for commands.
        case authenticated(MySQLHandshakeV10)
        /// The handshake failed; close the connection.
        case fail(MySQLError)

        public static func == (lhs: Action, rhs: Action) -> Bool {
            switch (lhs, rhs) {
            case (.send(let a, let s), .send(let b, let t)): return a == b && s == t
            case (.sendSSLRequestAndStartTLS(let a, let s), .sendSSLRequestAndStartTLS(let b, let t)): return a == b && s == t
            case (.wait, .wait): return true
            case (.authenticated(let a), .authenticated(let b)): return a == b
            case (.fail(let a), .fail(let b)): return a.code == b.code && a.serverError == b.serverError
            default: return false
            }
        }
    }

    enum State: Sendable {
        case waitingForGreeting
        case waitingForTLS(MySQLHandshakeV10, MySQLCapabilities)
        case waitingForAuthResult(plugin: String, scramble: [UInt8], greeting: MySQLHandshakeV10)
        case waitingForPublicKey(scramble: [UInt8], greeting: MySQLHandshakeV10)
        case authenticated
        case failed
    }

    /// The configuration.
    public let configuration: Configuration
    private(set) var state: State = .waitingForGreeting
    /// MariaDB's extended capabilities both sides have (empty for MySQL), set by the greeting.
    public private(set) var mariaDBCapabilities: MySQLMariaDBCapabilities = []
    private var tlsActive = false

    /// The capabilities this client asks for (intersected with the server's).
    static let wantedCapabilities: MySQLCapabilities = [
        .longPassword, .longFlag, .protocol41, .transactions, .secureConnection, .multiResults, .psMultiResults,
        .pluginAuth, .pluginAuthLengthEncodedClientData,
    ]

    /// MariaDB's extended capabilities this client asks for (intersected with the server's).
    static let wantedMariaDBCapabilities: MySQLMariaDBCapabilities = [.cacheMetadata]

    /// Creates the machine.
    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// The server's greeting (or an error packet in its place) arrived.
    public mutating func greetingReceived(_ packet: MySQLPacket) -> Action {
        guard case .waitingForGreeting = state else { return fail(.init(.protocolError, message: "unexpected greeting")) }
        if packet.isError {
            do {
                let error = try MySQLErrorPacket.decode(packet.payload)
                return fail(MySQLError.server(error, during: "the connection"))
            } catch { return fail(error as! MySQLError) }
        }
        let greeting: MySQLHandshakeV10
        do {
            greeting = try MySQLHandshakeV10.decode(packet.payload)
        } catch {
            return fail(error as? MySQLError ?? MySQLError(.protocolError, message: "malformed greeting"))
        }
        guard greeting.capabilities.contains(.protocol41) else {
            return fail(MySQLError(.protocolError, message: "the server does not speak protocol 4.1"))
        }
        var capabilities = Self.wantedCapabilities.intersection(greeting.capabilities)
        capabilities.insert(.protocol41)
        mariaDBCapabilities =
            capabilities.contains(.longPassword) ? [] : Self.wantedMariaDBCapabilities.intersection(greeting.mariaDBCapabilities)
        if configuration.database != nil && greeting.capabilities.contains(.connectWithDB) {
            capabilities.insert(.connectWithDB)
        }
        let offersTLS = greeting.capabilities.contains(.ssl)
        switch configuration.tls {
        case .require where !offersTLS:
            return fail(MySQLError(.tls, message: "TLS is required but the server does not offer it"))
        case .require where offersTLS, .prefer where offersTLS:
            capabilities.insert(.ssl)
            state = .waitingForTLS(greeting, capabilities)
            let request = makeResponse(capabilities: capabilities, plugin: "", authResponse: [])
            return .sendSSLRequestAndStartTLS(.sslRequest(request), sequenceID: packet.sequenceID &+ 1)
        default:
            return sendHandshakeResponse(greeting: greeting, capabilities: capabilities, sequenceID: packet.sequenceID &+ 1)
        }
    }

    /// The TLS handshake finished.
    public mutating func tlsEstablished() -> Action {
        guard case .waitingForTLS(let greeting, let capabilities) = state else {
            return fail(MySQLError(.protocolError, message: "unexpected TLS handshake"))
        }
        tlsActive = true
        // Greeting seq 0, SSLRequest seq 1, the response seq 2.
        return sendHandshakeResponse(greeting: greeting, capabilities: capabilities, sequenceID: 2)
    }

    /// A packet arrived after the handshake response.
    public mutating func authPacketReceived(_ packet: MySQLPacket) -> Action {
        let next = packet.sequenceID &+ 1
        switch state {
        case .waitingForAuthResult(let plugin, let scramble, let greeting):
            switch packet.header {
            case 0x00:
                state = .authenticated
                return .authenticated(greeting)
            case 0xFF:
                return serverError(packet)
            case 0xFE:
                let request: MySQLAuthSwitchRequest
                do { request = try MySQLAuthSwitchRequest.decode(packet.payload) } catch { return fail(error as! MySQLError) }
                var scramble = request.pluginData
                if request.pluginName == "client_ed25519" {
                    // The server sends exactly 32 bytes and no terminator: a scramble ending in a
                    // zero byte lost it to the decoder's NUL stripping.
                    if scramble.count == Self.ed25519ScrambleLength - 1 { scramble.append(0) }
                    guard scramble.count == Self.ed25519ScrambleLength else {
                        return fail(MySQLError(.protocolError, message: "client_ed25519 needs a 32-byte scramble, got \(scramble.count)"))
                    }
                }
                guard let response = authResponse(plugin: request.pluginName, scramble: scramble) else {
                    return fail(unsupported(request.pluginName))
                }
                state = .waitingForAuthResult(plugin: request.pluginName, scramble: scramble, greeting: greeting)
                return .send(.authData(response), sequenceID: next)
            case 0x01:
                // AuthMoreData.
                var payload = packet.payload
                payload.moveReaderIndex(forwardBy: 1)
                guard plugin == "caching_sha2_password" else {
                    return fail(MySQLError(.protocolError, message: "unexpected auth data for \(plugin)"))
                }
                switch payload.readableBytesView.first {
                case 0x03 where payload.readableBytes == 1:
                    // Fast auth succeeded; the OK follows.
                    return .wait
                case 0x04 where payload.readableBytes == 1:
                    return fullAuthentication(scramble: scramble, greeting: greeting, sequenceID: next)
                default:
                    return fail(MySQLError(.protocolError, message: "unexpected caching_sha2_password data"))
                }
            default:
                return fail(MySQLError(.protocolError, message: "unexpected packet during authentication"))
            }
        case .waitingForPublicKey(let scramble, let greeting):
            if packet.isError { return serverError(packet) }
            guard packet.header == 0x01 else {
                return fail(MySQLError(.protocolError, message: "expected the server's public key"))
            }
            var payload = packet.payload
            payload.moveReaderIndex(forwardBy: 1)
            let pem = String(buffer: payload)
            do {
                let encrypted = try MySQLAuthentication.rsaEncryptedPassword(
                    password: configuration.password, scramble: scramble, publicKeyPEM: pem)
                state = .waitingForAuthResult(plugin: "caching_sha2_password", scramble: scramble, greeting: greeting)
                return .send(.authData(encrypted), sequenceID: next)
            } catch {
                return fail(error as! MySQLError)
            }
        default:
            return fail(MySQLError(.protocolError, message: "unexpected packet during authentication"))
        }
    }

    // MARK: - helpers

    private mutating func fullAuthentication(scramble: [UInt8], greeting: MySQLHandshakeV10, sequenceID: UInt8) -> Action {
        if tlsActive || configuration.isSecureTransport {
            return .send(.authData(Array(configuration.password.utf8) + [0]), sequenceID: sequenceID)
        }
        if let pem = configuration.serverPublicKeyPEM {
            do {
                let encrypted = try MySQLAuthentication.rsaEncryptedPassword(
                    password: configuration.password, scramble: scramble, publicKeyPEM: pem)
                return .send(.authData(encrypted), sequenceID: sequenceID)
            } catch {
                return fail(error as! MySQLError)
            }
        }
        guard configuration.allowPublicKeyRetrieval else {
            return fail(
                MySQLError(
                    .authenticationFailed,
                    message: "caching_sha2_password full authentication needs TLS, a unix socket or the server's RSA public key"))
        }
        state = .waitingForPublicKey(scramble: scramble, greeting: greeting)
        return .send(.authData([0x02]), sequenceID: sequenceID)
    }

    private mutating func sendHandshakeResponse(
        greeting: MySQLHandshakeV10, capabilities: MySQLCapabilities, sequenceID: UInt8
    ) -> Action {
        let plugin = greeting.authPluginName ?? "mysql_native_password"
        // An unknown default plugin: answer for mysql_native_password and let the server switch.
        let (usedPlugin, response) =
            authResponse(plugin: plugin, scramble: greeting.scramble).map { (plugin, $0) }
            ?? ("mysql_native_password", MySQLAuthentication.nativePassword(password: configuration.password, scramble: greeting.scramble))
        state = .waitingForAuthResult(plugin: usedPlugin, scramble: greeting.scramble, greeting: greeting)
        let message = makeResponse(capabilities: capabilities, plugin: usedPlugin, authResponse: response)
        return .send(.handshakeResponse(message), sequenceID: sequenceID)
    }

    private func makeResponse(capabilities: MySQLCapabilities, plugin: String, authResponse: [UInt8]) -> MySQLHandshakeResponse41 {
        MySQLHandshakeResponse41(
            capabilities: capabilities, maxPacketSize: configuration.maxPacketSize, collation: configuration.collation,
            username: configuration.username, authResponse: authResponse,
            database: capabilities.contains(.connectWithDB) ? configuration.database : nil, authPluginName: plugin,
            mariaDBCapabilities: mariaDBCapabilities)
    }

    private func authResponse(plugin: String, scramble: [UInt8]) -> [UInt8]? {
        switch plugin {
        case "mysql_native_password":
            return MySQLAuthentication.nativePassword(password: configuration.password, scramble: scramble)
        case "caching_sha2_password":
            return MySQLAuthentication.cachingSHA2Password(password: configuration.password, scramble: scramble)
        case "client_ed25519" where scramble.count == Self.ed25519ScrambleLength:
            // (A greeting's 20-byte scramble does not fit: answer for mysql_native_password there
            // and let the server switch.)
            return MySQLAuthentication.ed25519Password(password: configuration.password, scramble: scramble)
        default:
            return nil
        }
    }

    /// The length of MariaDB's `client_ed25519` scramble.
    static let ed25519ScrambleLength = 32

    private func unsupported(_ plugin: String) -> MySQLError {
        MySQLError(.unsupportedAuthenticationPlugin, message: "the server asks for the unsupported auth plugin \(plugin)")
    }

    private mutating func serverError(_ packet: MySQLPacket) -> Action {
        do {
            let error = try MySQLErrorPacket.decode(packet.payload)
            var typed = MySQLError.server(error, during: "the login")
            if typed.code == .server && error.sqlState == "28000" {
                typed = MySQLError(.authenticationFailed, message: "access denied", serverError: error)
            }
            return fail(typed)
        } catch {
            return fail(error as! MySQLError)
        }
    }

    private mutating func fail(_ error: MySQLError) -> Action {
        state = .failed
        return .fail(error)
    }
}
