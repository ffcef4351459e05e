import NIOCore
import NIOSSL

/// Where a Redis server listens: a TCP host and port, or a unix-domain socket.
public struct RedisAddress: Sendable, Hashable, CustomStringConvertible {
    enum Storage: Sendable, Hashable {
        case tcp(host: String, port: Int)
        case unixSocket(path: String)
    }

    let storage: Storage

    /// A TCP address.
    public static func tcp(host: String, port: Int) -> RedisAddress {
        RedisAddress(storage: .tcp(host: host, port: port))
    }

    /// A unix-domain socket.
    public static func unixSocket(path: String) -> RedisAddress {
        RedisAddress(storage: .unixSocket(path: path))
    }

    /// The host of a TCP address.
    public var host: String? {
        if case .tcp(let host, _) = storage { return host }
        return nil
    }

    /// The port of a TCP address.
    public var port: Int? {
        if case .tcp(_, let port) = storage { return port }
        return nil
    }

    public var description: String {
        switch storage {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unixSocket(let path): return "unix:\(path)"
        }
    }
}

/// TLS towards Redis (the `ssl`, `ssl_verify` and `server_name` options).
///
/// Redis has no in-protocol TLS upgrade: a port speaks TLS or it does not, so there is no
/// "prefer" mode.
public struct RedisTLS: Sendable, Hashable {
    /// Whether TLS is used at all.
    public var enabled: Bool
    /// Whether the server's certificate chain and name are verified (`ssl_verify`).
    public var verify: Bool
    /// A PEM file of the CAs to trust instead of the system's.
    public var caFile: String?
    /// The name sent as SNI and verified against the certificate (`server_name`); by default
    /// the host connected to (an IP address is verified but not sent as SNI).
    public var serverName: String?

    /// Plain TCP.
    public static let disable = RedisTLS(enabled: false, verify: false, caFile: nil, serverName: nil)

    /// TLS, verifying the server unless `verify` is false.
    public static func require(verify: Bool = true, caFile: String? = nil, serverName: String? = nil) -> RedisTLS {
        RedisTLS(enabled: true, verify: verify, caFile: caFile, serverName: serverName)
    }

    /// Builds the TLS context (loading the CA file); `nil` when TLS is off.
    public func makeContext() throws -> NIOSSLContext? {
        guard enabled else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = verify ? .fullVerification : .none
        if let caFile {
            configuration.trustRoots = .file(caFile)
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RedisClientError(.tls, message: "the TLS configuration could not be loaded", underlying: error)
        }
    }
}

extension RedisConnection {
    /// How to reach and log in to one Redis server.
    public struct Configuration: Sendable {
        /// The server's address.
        public var address: RedisAddress
        /// The ACL user (`AUTH username password`); `nil` for the `default` user.
        public var username: String?
        /// The password; `nil` for none.
        public var password: String?
        /// The database index chosen with `SELECT` after logging in.
        public var database: Int
        /// TLS.
        public var tls: RedisTLS
        /// Time allowed to connect, including TLS, `HELLO`/`AUTH` and `SELECT`.
        public var connectTimeout: Duration
        /// Time allowed to write a command to the socket.
        public var sendTimeout: Duration
        /// Time allowed for a reply, from the moment the command was written.
        public var readTimeout: Duration
        /// The name set with `HELLO … SETNAME`, shown in `CLIENT LIST`.
        public var clientName: String?
        /// Hard limits of the reply decoder.
        public var decoderLimits: RESPDecoder.Limits

        /// Creates a configuration; the timeouts default to 10 seconds.
        public init(
            address: RedisAddress = .tcp(host: "127.0.0.1", port: 6379),
            username: String? = nil,
            password: String? = nil,
            database: Int = 0,
            tls: RedisTLS = .disable,
            connectTimeout: Duration = .seconds(10),
            sendTimeout: Duration = .seconds(10),
            readTimeout: Duration = .seconds(10),
            clientName: String? = nil,
            decoderLimits: RESPDecoder.Limits = RESPDecoder.Limits()
        ) {
            self.address = address
            self.username = username
            self.password = password
            self.database = database
            self.tls = tls
            self.connectTimeout = connectTimeout
            self.sendTimeout = sendTimeout
            self.readTimeout = readTimeout
            self.clientName = clientName
            self.decoderLimits = decoderLimits
        }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if nanoseconds.overflow {
            self = .nanoseconds(.max)
        } else {
            self = .nanoseconds(nanoseconds.partialValue &+ attoseconds / 1_000_000_000)
        }
    }
}
