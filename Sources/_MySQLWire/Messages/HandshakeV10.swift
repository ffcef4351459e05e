import NIOCore

/// The server's greeting, `Protocol::HandshakeV10`.
public struct MySQLHandshakeV10: Sendable, Hashable {
    /// The server version, e.g. `5.5.5-10.11.19-MariaDB` (MariaDB prefixes `5.5.5-`).
    public var serverVersion: String
    /// The connection (thread) id.
    public var connectionID: UInt32
    /// The auth plugin data (scramble), both parts joined, without the trailing NUL: 20 bytes
    /// for `mysql_native_password` and `caching_sha2_password`.
    public var scramble: [UInt8]
    /// The server's capabilities.
    public var capabilities: MySQLCapabilities
    /// MariaDB's extended capabilities (empty for MySQL, whose greeting sets `CLIENT_MYSQL`).
    public var mariaDBCapabilities: MySQLMariaDBCapabilities
    /// The server's default collation id.
    public var collation: UInt8
    /// The server status.
    public var status: MySQLServerStatus
    /// The auth plugin the scramble is meant for, e.g. `mysql_native_password`.
    public var authPluginName: String?

    /// Whether the server is MariaDB (it clears the `CLIENT_MYSQL` bit 0 of the capabilities).
    public var isMariaDB: Bool { serverVersion.contains("MariaDB") }

    /// Creates a greeting.
    public init(
        serverVersion: String, connectionID: UInt32, scramble: [UInt8], capabilities: MySQLCapabilities,
        collation: UInt8, status: MySQLServerStatus, authPluginName: String?,
        mariaDBCapabilities: MySQLMariaDBCapabilities = []
    ) {
        self.serverVersion = serverVersion
        self.connectionID = connectionID
        self.scramble = scramble
        self.capabilities = capabilities
        self.mariaDBCapabilities = mariaDBCapabilities
        self.collation = collation
        self.status = status
        self.authPluginName = authPluginName
    }

    /// Parses the greeting payload.
    public static func decode(_ payload: ByteBuffer) throws -> MySQLHandshakeV10 {
        var buffer = payload
        let malformed = MySQLError(.protocolError, message: "malformed server greeting")
        guard let version = buffer.readInteger(as: UInt8.self) else { throw malformed }
        guard version == 10 else {
            throw MySQLError(.protocolError, message: "unsupported protocol version \(version)")
        }
        guard let serverVersion = buffer.readNullTerminatedString(),
            let connectionID = buffer.readInteger(endianness: .little, as: UInt32.self),
            let part1 = buffer.readBytes(length: 8),
            buffer.readInteger(as: UInt8.self) != nil,
            let capsLow = buffer.readInteger(endianness: .little, as: UInt16.self)
        else { throw malformed }
        var capabilities = MySQLCapabilities(rawValue: UInt32(capsLow))
        var collation: UInt8 = 0
        var status: UInt16 = 0
        var scramble = part1
        var plugin: String?
        var mariaDB: MySQLMariaDBCapabilities = []
        if buffer.readableBytes > 0 {
            guard let charset = buffer.readInteger(as: UInt8.self),
                let statusFlags = buffer.readInteger(endianness: .little, as: UInt16.self),
                let capsHigh = buffer.readInteger(endianness: .little, as: UInt16.self),
                let authDataLength = buffer.readInteger(as: UInt8.self),
                buffer.readBytes(length: 6) != nil,
                let extended = buffer.readInteger(endianness: .little, as: UInt32.self)
            else { throw malformed }
            collation = charset
            status = statusFlags
            capabilities.rawValue |= UInt32(capsHigh) << 16
            // MariaDB (10.2+) puts its extended capabilities in the last 4 reserved bytes and
            // clears CLIENT_MYSQL; for MySQL they are filler.
            if !capabilities.contains(.longPassword) {
                mariaDB = MySQLMariaDBCapabilities(rawValue: extended)
            }
            if capabilities.contains(.secureConnection) {
                let length = max(13, Int(authDataLength) - 8)
                guard var part2 = buffer.readBytes(length: min(length, buffer.readableBytes)) else { throw malformed }
                if part2.last == 0 { part2.removeLast() }
                scramble += part2
            }
            if capabilities.contains(.pluginAuth) {
                plugin = buffer.readNullTerminatedString() ?? buffer.readString(length: buffer.readableBytes)
            }
        }
        return MySQLHandshakeV10(
            serverVersion: serverVersion, connectionID: connectionID, scramble: scramble, capabilities: capabilities,
            collation: collation, status: MySQLServerStatus(rawValue: status), authPluginName: plugin,
            mariaDBCapabilities: mariaDB)
    }
}
