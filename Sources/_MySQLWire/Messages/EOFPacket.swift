import NIOCore

/// The EOF packet (`0xFE`, warnings, status) that ends column definitions and rows.
struct MySQLEOFPacket: Sendable, Hashable {
    var warnings: UInt16
    var status: MySQLServerStatus

    static func decode(_ payload: ByteBuffer) throws -> MySQLEOFPacket {
        var buffer = payload
        guard buffer.readInteger(as: UInt8.self) == 0xFE else {
            throw MySQLError(.protocolError, message: "malformed EOF packet")
        }
        let warnings = buffer.readInteger(endianness: .little, as: UInt16.self) ?? 0
        let status = buffer.readInteger(endianness: .little, as: UInt16.self) ?? 0
        return MySQLEOFPacket(warnings: warnings, status: MySQLServerStatus(rawValue: status))
    }
}
