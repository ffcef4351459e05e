import NIOCore

/// The client's answer to the greeting, `Protocol::HandshakeResponse41`; its first 32 bytes
/// alone are the `SSLRequest` that asks to upgrade to TLS.
public struct MySQLHandshakeResponse41: Sendable, Hashable {
    /// The client's capabilities.
    public var capabilities: MySQLCapabilities
    /// MariaDB's extended capabilities the client asks for (sent only to a MariaDB server,
    /// that is when ``capabilities`` does not contain `CLIENT_MYSQL`).
    public var mariaDBCapabilities: MySQLMariaDBCapabilities
    /// The largest packet the client wants to receive.
    public var maxPacketSize: UInt32
    /// The collation id of the connection, e.g. 11 (`ascii_general_ci`) or 45 (`utf8mb4_general_ci`).
    public var collation: UInt8
    /// The user name.
    public var username: String
    /// The auth response computed from the password and the scramble.
    public var authResponse: [UInt8]
    /// The default database.
    public var database: String?
    /// The auth plugin the response was computed for.
    public var authPluginName: String

    /// Creates a response.
    public init(
        capabilities: MySQLCapabilities, maxPacketSize: UInt32, collation: UInt8, username: String,
        authResponse: [UInt8], database: String?, authPluginName: String,
        mariaDBCapabilities: MySQLMariaDBCapabilities = []
    ) {
        self.capabilities = capabilities
        self.mariaDBCapabilities = mariaDBCapabilities
        self.maxPacketSize = maxPacketSize
        self.collation = collation
        self.username = username
        self.authResponse = authResponse
        self.database = database
        self.authPluginName = authPluginName
    }

    /// Writes the 32-byte prefix (capabilities, max packet size, collation, 19 zero bytes, then
    /// MariaDB's extended capabilities or 4 more zero bytes).
    func encodePrefix(into buffer: inout ByteBuffer) {
        buffer.writeInteger(capabilities.rawValue, endianness: .little)
        buffer.writeInteger(maxPacketSize, endianness: .little)
        buffer.writeInteger(collation)
        buffer.writeRepeatingByte(0, count: 19)
        let extended = capabilities.contains(.longPassword) ? 0 : mariaDBCapabilities.rawValue
        buffer.writeInteger(extended, endianness: .little)
    }

    /// Writes the `SSLRequest` payload.
    func encodeSSLRequest(into buffer: inout ByteBuffer) {
        encodePrefix(into: &buffer)
    }

    /// Writes the full payload.
    func encode(into buffer: inout ByteBuffer) {
        encodePrefix(into: &buffer)
        buffer.writeNullTerminatedString(username)
        if capabilities.contains(.pluginAuthLengthEncodedClientData) {
            buffer.writeLengthEncodedBytes(authResponse)
        } else {
            buffer.writeInteger(UInt8(truncatingIfNeeded: authResponse.count))
            buffer.writeBytes(authResponse)
        }
        if capabilities.contains(.connectWithDB) {
            buffer.writeNullTerminatedString(database ?? "")
        }
        if capabilities.contains(.pluginAuth) {
            buffer.writeNullTerminatedString(authPluginName)
        }
    }
}
