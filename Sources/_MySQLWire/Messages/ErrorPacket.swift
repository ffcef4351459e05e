import NIOCore

/// The ERR packet: `0xFF`, error number, `#` + SQLSTATE (absent before the handshake), message.
enum MySQLErrorPacket {
    static func decode(_ payload: ByteBuffer) throws -> MySQLError.ServerError {
        var buffer = payload
        guard buffer.readInteger(as: UInt8.self) == 0xFF, let code = buffer.readInteger(endianness: .little, as: UInt16.self)
        else { throw MySQLError(.protocolError, message: "malformed error packet") }
        var sqlState = "HY000"
        if buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == UInt8(ascii: "#"), buffer.readableBytes >= 6 {
            buffer.moveReaderIndex(forwardBy: 1)
            sqlState = buffer.readString(length: 5) ?? sqlState
        }
        let message = buffer.readString(length: buffer.readableBytes) ?? ""
        return MySQLError.ServerError(errorCode: code, sqlState: sqlState, message: message)
    }
}
