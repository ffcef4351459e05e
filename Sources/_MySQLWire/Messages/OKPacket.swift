import NIOCore

/// The OK packet: a command succeeded.
public struct MySQLOKPacket: Sendable, Hashable {
    /// Rows changed by the statement.
    public var affectedRows: UInt64
    /// The last `AUTO_INCREMENT` id generated.
    public var lastInsertID: UInt64
    /// The server status.
    public var status: MySQLServerStatus
    /// The number of warnings.
    public var warnings: UInt16

    /// Creates an OK packet.
    public init(affectedRows: UInt64 = 0, lastInsertID: UInt64 = 0, status: MySQLServerStatus = [], warnings: UInt16 = 0) {
        self.affectedRows = affectedRows
        self.lastInsertID = lastInsertID
        self.status = status
        self.warnings = warnings
    }

    /// Parses an OK payload (header 0x00 or 0xFE).
    static func decode(_ payload: ByteBuffer) throws -> MySQLOKPacket {
        var buffer = payload
        guard let header = buffer.readInteger(as: UInt8.self), header == 0x00 || header == 0xFE,
            let affected = buffer.readLengthEncodedInteger(),
            let insertID = buffer.readLengthEncodedInteger()
        else { throw MySQLError(.protocolError, message: "malformed OK packet") }
        let status = buffer.readInteger(endianness: .little, as: UInt16.self) ?? 0
        let warnings = buffer.readInteger(endianness: .little, as: UInt16.self) ?? 0
        return MySQLOKPacket(
            affectedRows: affected, lastInsertID: insertID, status: MySQLServerStatus(rawValue: status), warnings: warnings)
    }
}
