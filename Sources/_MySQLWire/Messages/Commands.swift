import NIOCore

/// The messages the client sends.
public enum MySQLClientMessage: Sendable, Hashable {
    /// The 32-byte `SSLRequest`.
    case sslRequest(MySQLHandshakeResponse41)
    /// `HandshakeResponse41`.
    case handshakeResponse(MySQLHandshakeResponse41)
    /// Raw auth data (an answer to AuthSwitchRequest or AuthMoreData).
    case authData([UInt8])
    /// COM_QUIT.
    case quit
    /// COM_QUERY.
    case query(String)
    /// COM_PING.
    case ping
    /// COM_STMT_PREPARE.
    case prepare(String)
    /// COM_STMT_EXECUTE with every parameter bound.
    case execute(statementID: UInt32, binds: [MySQLValue])
    /// COM_STMT_CLOSE (the server sends no reply).
    case closeStatement(UInt32)
    /// COM_STMT_RESET.
    case resetStatement(UInt32)

    /// The payload size of COM_STMT_EXECUTE for these binds, computed before preparing, so a
    /// command over `maxPacketSize` is refused before anything is written.
    public static func executePayloadSize(binds: [MySQLValue]) -> Int {
        var size = 1 + 4 + 1 + 4
        if !binds.isEmpty {
            size += (binds.count + 7) / 8 + 1 + 2 * binds.count
            for bind in binds { size += bind.bindSize }
        }
        return size
    }

    /// Writes the payload (without the packet header).
    func encodePayload(into buffer: inout ByteBuffer) {
        switch self {
        case .sslRequest(let response): response.encodeSSLRequest(into: &buffer)
        case .handshakeResponse(let response): response.encode(into: &buffer)
        case .authData(let data): buffer.writeBytes(data)
        case .quit: buffer.writeInteger(UInt8(0x01))
        case .query(let sql):
            buffer.writeInteger(UInt8(0x03))
            buffer.writeString(sql)
        case .ping: buffer.writeInteger(UInt8(0x0E))
        case .prepare(let sql):
            buffer.writeInteger(UInt8(0x16))
            buffer.writeString(sql)
        case .execute(let id, let binds):
            buffer.writeInteger(UInt8(0x17))
            buffer.writeInteger(id, endianness: .little)
            buffer.writeInteger(UInt8(0))  // CURSOR_TYPE_NO_CURSOR
            buffer.writeInteger(UInt32(1), endianness: .little)  // iteration count
            guard !binds.isEmpty else { return }
            // The NULL bitmap, one byte per 8 parameters.
            var byte: UInt8 = 0
            for (index, bind) in binds.enumerated() {
                if bind.isNull { byte |= 1 << UInt8(index % 8) }
                if index % 8 == 7 || index == binds.count - 1 {
                    buffer.writeInteger(byte)
                    byte = 0
                }
            }
            buffer.writeInteger(UInt8(1))  // new params bound
            for bind in binds {
                let (type, unsigned) = bind.bindType
                buffer.writeInteger(type.rawValue)
                buffer.writeInteger(UInt8(unsigned ? 0x80 : 0))
            }
            for bind in binds { bind.encodeBinary(into: &buffer) }
        case .closeStatement(let id):
            buffer.writeInteger(UInt8(0x19))
            buffer.writeInteger(id, endianness: .little)
        case .resetStatement(let id):
            buffer.writeInteger(UInt8(0x1A))
            buffer.writeInteger(id, endianness: .little)
        }
    }
}

/// The OK of COM_STMT_PREPARE: statement id, column and parameter counts.
struct MySQLPrepareOK: Sendable, Hashable {
    var statementID: UInt32
    var columnCount: UInt16
    var parameterCount: UInt16

    static func decode(_ payload: ByteBuffer) throws -> MySQLPrepareOK {
        var buffer = payload
        guard buffer.readInteger(as: UInt8.self) == 0x00,
            let id = buffer.readInteger(endianness: .little, as: UInt32.self),
            let columns = buffer.readInteger(endianness: .little, as: UInt16.self),
            let parameters = buffer.readInteger(endianness: .little, as: UInt16.self)
        else { throw MySQLError(.protocolError, message: "malformed COM_STMT_PREPARE response") }
        return MySQLPrepareOK(statementID: id, columnCount: columns, parameterCount: parameters)
    }
}
