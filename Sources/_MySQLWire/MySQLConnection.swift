import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// One connection to a MySQL or MariaDB server.
///
/// Commands run one at a time in the order they are called; ``query(_:)`` uses the text
/// protocol, ``execute(_:binds:)`` prepares the statement once per connection (a per-connection
/// cache) and binds every value with the binary protocol.
public final class MySQLConnection: Sendable {
    /// How to reach and log in to the server.
    public struct Configuration: Sendable {
        /// Where the server listens.
        public enum Endpoint: Sendable, Hashable {
            /// A TCP host and port.
            case tcp(host: String, port: Int)
            /// A unix-domain socket path.
            case unixSocket(path: String)
        }

        /// TLS settings: `.disable`, `.prefer(_:)` or `.require(_:)`.
        public struct TLS: Sendable {
            /// Whether and how TLS is used.
            public var mode: MySQLAuthenticationStateMachine.TLSMode
            /// The NIOSSL configuration (trust roots, verification).
            public var configuration: TLSConfiguration?
            /// The name used for SNI and certificate verification (defaults to the host when it is a name).
            public var serverName: String?

            /// No TLS.
            public static let disable = TLS(mode: .disable, configuration: nil, serverName: nil)
            /// TLS when the server offers it.
            public static func prefer(_ configuration: TLSConfiguration, serverName: String? = nil) -> TLS {
                TLS(mode: .prefer, configuration: configuration, serverName: serverName)
            }
            /// TLS always; a server without TLS is an error.
            public static func require(_ configuration: TLSConfiguration, serverName: String? = nil) -> TLS {
                TLS(mode: .require, configuration: configuration, serverName: serverName)
            }
        }

        /// Timeouts.
        public struct Timeouts: Sendable, Hashable {
            /// TCP connect plus the handshake.
            public var connect: Duration
            /// Flushing one command.
            public var send: Duration
            /// Waiting for the complete reply to one command.
            public var read: Duration

            /// Creates timeouts (defaults: 10 s each).
            public init(connect: Duration = .seconds(10), send: Duration = .seconds(10), read: Duration = .seconds(10)) {
                self.connect = connect
                self.send = send
                self.read = read
            }
        }

        /// Where the server listens (default `127.0.0.1:3306`).
        public var endpoint: Endpoint
        /// The user.
        public var username: String
        /// The password; never logged nor shown in errors.
        public var password: String
        /// The default database.
        public var database: String?
        /// The connection's character set (default `ascii`, collation 11).
        public var charset: MySQLCharset
        /// The largest packet sent or accepted (default 1 MiB). A command over it fails with
        /// ``MySQLError/Code/packetTooLarge`` before anything is written.
        public var maxPacketSize: Int
        /// TLS.
        public var tls: TLS
        /// Timeouts.
        public var timeouts: Timeouts
        /// The server's RSA public key (PEM) for `caching_sha2_password` without TLS.
        public var serverPublicKeyPEM: String?
        /// Whether to fetch the server's RSA public key over an insecure connection.
        public var allowPublicKeyRetrieval: Bool
        /// Statements run after every login, e.g. `SET time_zone = '+00:00'`.
        public var setupStatements: [String]
        /// The number of prepared statements cached per connection (the oldest is closed past it).
        public var statementCacheCapacity: Int
        /// The most commands written to the server at once when several callers use the
        /// connection concurrently (pipelining; default 1, one at a time): executes of cached
        /// statements then go out while earlier ones wait for their replies, which the server
        /// sends in order. While four flushed commands still wait for their replies, new ones
        /// are held and flushed together when fewer do (the server never runs out of work, and
        /// one system call carries several commands). ``MySQLClient`` sets it for the
        /// connections it shares.
        public var pipelineDepth: Int

        /// Creates a configuration.
        public init(
            endpoint: Endpoint = .tcp(host: "127.0.0.1", port: 3306),
            username: String,
            password: String = "",
            database: String? = nil,
            charset: MySQLCharset = .ascii,
            maxPacketSize: Int = 1 << 20,
            tls: TLS = .disable,
            timeouts: Timeouts = .init(),
            serverPublicKeyPEM: String? = nil,
            allowPublicKeyRetrieval: Bool = false,
            setupStatements: [String] = [],
            statementCacheCapacity: Int = 128,
            pipelineDepth: Int = 1
        ) {
            self.endpoint = endpoint
            self.username = username
            self.password = password
            self.database = database
            self.charset = charset
            self.maxPacketSize = maxPacketSize
            self.tls = tls
            self.timeouts = timeouts
            self.serverPublicKeyPEM = serverPublicKeyPEM
            self.allowPublicKeyRetrieval = allowPublicKeyRetrieval
            self.setupStatements = setupStatements
            self.statementCacheCapacity = statementCacheCapacity
            self.pipelineDepth = pipelineDepth
        }
    }

    /// The connection's id in the pool.
    public let id: Int
    /// The server's greeting.
    public let greeting: MySQLHandshakeV10
    let channel: any Channel
    /// The channel's handler, reached on the event loop: commands are queued into it directly
    /// (no pipeline write, no write promise).
    let handler: NIOLoopBound<MySQLChannelHandler>

    init(id: Int, channel: any Channel, handler: NIOLoopBound<MySQLChannelHandler>, greeting: MySQLHandshakeV10) {
        self.id = id
        self.channel = channel
        self.handler = handler
        self.greeting = greeting
    }

    /// Connects, upgrades to TLS if configured, logs in and runs the setup statements.
    public static func connect(
        configuration: Configuration,
        id: Int = 0,
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any(),
        logger: Logger = Logger(label: "mysql.connection")
    ) async throws -> MySQLConnection {
        var logger = logger
        logger[metadataKey: "mysql_connection_id"] = .stringConvertible(id)
        let sslContext: NIOSSLContext?
        var serverHostname: String?
        if configuration.tls.mode != .disable, let tlsConfiguration = configuration.tls.configuration {
            do {
                sslContext = try NIOSSLContext(configuration: tlsConfiguration)
            } catch {
                throw MySQLError(.tls, message: "invalid TLS configuration", underlying: error)
            }
            serverHostname = configuration.tls.serverName
            if serverHostname == nil, case .tcp(let host, _) = configuration.endpoint, !Self.isIPAddress(host) {
                serverHostname = host
            }
        } else {
            sslContext = nil
        }
        var isSocket = false
        if case .unixSocket = configuration.endpoint { isSocket = true }
        let auth = MySQLAuthenticationStateMachine(
            configuration: .init(
                username: configuration.username, password: configuration.password, database: configuration.database,
                collation: configuration.charset.collationID, maxPacketSize: UInt32(clamping: configuration.maxPacketSize),
                tls: sslContext == nil ? .disable : configuration.tls.mode, isSecureTransport: isSocket,
                serverPublicKeyPEM: configuration.serverPublicKeyPEM, allowPublicKeyRetrieval: configuration.allowPublicKeyRetrieval))
        let machine = MySQLConnectionStateMachine(
            authentication: auth, maxPacketSize: configuration.maxPacketSize,
            statementCacheCapacity: configuration.statementCacheCapacity, pipelineDepth: configuration.pipelineDepth)
        let connectPromise = eventLoop.makePromise(of: MySQLHandshakeV10.self)
        let handlerPromise = eventLoop.makePromise(of: NIOLoopBound<MySQLChannelHandler>.self)
        let tls = sslContext.map { (context: $0, serverHostname: serverHostname) }
        let timeouts = configuration.timeouts
        let maxPacketSize = configuration.maxPacketSize
        let handlerLogger = logger
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.init(configuration.timeouts.connect))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = MySQLChannelHandler(
                        machine: machine, maximumPacketSize: max(maxPacketSize, 1 << 16), connectPromise: connectPromise, tls: tls,
                        timeouts: timeouts, logger: handlerLogger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    handlerPromise.succeed(NIOLoopBound(handler, eventLoop: channel.eventLoop))
                }
            }
        let channel: any Channel
        do {
            switch configuration.endpoint {
            case .tcp(let host, let port):
                channel = try await bootstrap.connect(host: host, port: port).get()
            case .unixSocket(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch let error as ChannelError where error == .connectTimeout(.init(configuration.timeouts.connect)) {
            connectPromise.fail(error)
            handlerPromise.fail(error)
            throw MySQLError(.timeout, message: "the connect timeout passed", underlying: error)
        } catch {
            connectPromise.fail(error)
            handlerPromise.fail(error)
            throw MySQLError(.connectionFailed, message: "could not connect to the server", underlying: error)
        }
        let greeting: MySQLHandshakeV10
        let handler: NIOLoopBound<MySQLChannelHandler>
        do {
            greeting = try await connectPromise.futureResult.get()
            handler = try await handlerPromise.futureResult.get()
        } catch {
            channel.close(promise: nil)
            throw error as? MySQLError ?? MySQLError(.connectionFailed, message: "the handshake failed", underlying: error)
        }
        let connection = MySQLConnection(id: id, channel: channel, handler: handler, greeting: greeting)
        do {
            for statement in configuration.setupStatements {
                _ = try await connection.query(statement)
            }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    /// Runs SQL with the text protocol (COM_QUERY). Do not splice values into `sql`: use
    /// ``execute(_:binds:)``.
    @discardableResult
    public func query(_ sql: String) async throws -> MySQLQueryResult {
        try await run(.query(sql))
    }

    /// Runs a prepared statement (cached per connection) with every value bound.
    @discardableResult
    public func execute(_ sql: String, binds: [MySQLValue] = []) async throws -> MySQLQueryResult {
        try await run(.execute(sql, binds: binds))
    }

    /// Sends COM_PING.
    public func ping() async throws {
        _ = try await run(.ping)
    }

    /// Whether the channel is still open.
    public var isClosed: Bool { !channel.isActive }

    private func run(_ command: MySQLCommand) async throws -> MySQLQueryResult {
        // The handler resumes the continuation itself (only ever with a MySQLError).
        let handler = self.handler
        let eventLoop = channel.eventLoop
        return try await withUnsafeThrowingContinuation { continuation in
            let task = MySQLTask(command: command, continuation: continuation)
            if eventLoop.inEventLoop {
                handler.value.enqueue(task)
            } else {
                eventLoop.execute { handler.value.enqueue(task) }
            }
        }
    }

    /// Sends COM_QUIT and closes the connection.
    public func close() {
        channel.close(promise: nil)
    }

    /// Closes the connection and waits until it is closed.
    public func closeGracefully() async {
        try? await channel.close()
    }
}

/// A character set and the collation id sent in the handshake.
public struct MySQLCharset: Sendable, Hashable {
    /// The name, e.g. `ascii`.
    public var name: String
    /// The collation id.
    public var collationID: UInt8

    /// Creates a charset.
    public init(name: String, collationID: UInt8) {
        self.name = name
        self.collationID = collationID
    }

    /// `ascii` with `ascii_general_ci` (11), lua-resty-mysql's default here.
    public static let ascii = MySQLCharset(name: "ascii", collationID: 11)
    /// `utf8mb4` with `utf8mb4_general_ci` (45).
    public static let utf8mb4 = MySQLCharset(name: "utf8mb4", collationID: 45)
    /// `utf8mb3` with `utf8mb3_general_ci` (33).
    public static let utf8 = MySQLCharset(name: "utf8", collationID: 33)
    /// `latin1` with `latin1_swedish_ci` (8).
    public static let latin1 = MySQLCharset(name: "latin1", collationID: 8)
    /// `binary` (63).
    public static let binary = MySQLCharset(name: "binary", collationID: 63)

    /// A charset by name (`ascii`, `utf8mb4`, `utf8`, `latin1`, `binary`), or `nil`.
    public init?(name: String) {
        switch name.lowercased() {
        case "ascii": self = .ascii
        case "utf8mb4": self = .utf8mb4
        case "utf8", "utf8mb3": self = .utf8
        case "latin1": self = .latin1
        case "binary": self = .binary
        default: return nil
        }
    }
}
