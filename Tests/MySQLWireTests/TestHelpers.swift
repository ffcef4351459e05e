import NIOCore

@testable import _MySQLWire

extension [UInt8] {
    /// The bytes of a string of hex digit pairs.
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self = bytes
    }
}

extension ByteBuffer {
    init(hex: String) {
        self.init(bytes: [UInt8](hex: hex))
    }

    var hex: String { readableBytesView.map { String(format: "%02x", $0) }.joined() }
}

extension Array where Element == UInt8 {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}

/// Builds payloads of server packets.
enum ServerPacket {
    static func packet(_ sequenceID: UInt8, _ bytes: [UInt8]) -> MySQLPacket {
        MySQLPacket(sequenceID: sequenceID, payload: ByteBuffer(bytes: bytes))
    }

    static func ok(_ sequenceID: UInt8, affectedRows: UInt8 = 0) -> MySQLPacket {
        packet(sequenceID, [0x00, affectedRows, 0x00, 0x02, 0x00, 0x00, 0x00])
    }

    static func eof(_ sequenceID: UInt8) -> MySQLPacket {
        packet(sequenceID, [0xFE, 0x00, 0x00, 0x02, 0x00])
    }

    static func error(_ sequenceID: UInt8, code: UInt16, state: String, message: String) -> MySQLPacket {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(0xFF))
        buffer.writeInteger(code, endianness: .little)
        buffer.writeString("#" + state + message)
        return MySQLPacket(sequenceID: sequenceID, payload: buffer)
    }

    static func column(_ sequenceID: UInt8, name: String, type: MySQLType, collation: UInt16 = 11) -> MySQLPacket {
        var buffer = ByteBuffer()
        for part in ["def", "sessdb", "t", "t", name, name] { buffer.writeLengthEncodedBytes(Array(part.utf8)) }
        buffer.writeInteger(UInt8(0x0C))
        buffer.writeInteger(collation, endianness: .little)
        buffer.writeInteger(UInt32(255), endianness: .little)
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(UInt16(0), endianness: .little)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt16(0), endianness: .little)
        return MySQLPacket(sequenceID: sequenceID, payload: buffer)
    }

    /// A greeting of `plugin` with a fixed 20-byte scramble.
    static func greeting(plugin: String, ssl: Bool = true, scramble: [UInt8] = Array(1...20)) -> MySQLPacket {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(10))
        buffer.writeNullTerminatedString("8.0.36")
        buffer.writeInteger(UInt32(7), endianness: .little)
        buffer.writeBytes(scramble[0..<8])
        buffer.writeInteger(UInt8(0))
        var caps: MySQLCapabilities = [
            .longPassword, .longFlag, .connectWithDB, .protocol41, .transactions, .secureConnection, .multiResults,
            .psMultiResults, .pluginAuth, .pluginAuthLengthEncodedClientData, .deprecateEOF,
        ]
        if ssl { caps.insert(.ssl) }
        buffer.writeInteger(UInt16(caps.rawValue & 0xFFFF), endianness: .little)
        buffer.writeInteger(UInt8(255))
        buffer.writeInteger(UInt16(2), endianness: .little)
        buffer.writeInteger(UInt16(caps.rawValue >> 16), endianness: .little)
        buffer.writeInteger(UInt8(21))
        buffer.writeRepeatingByte(0, count: 10)
        buffer.writeBytes(scramble[8...])
        buffer.writeInteger(UInt8(0))
        buffer.writeNullTerminatedString(plugin)
        return MySQLPacket(sequenceID: 0, payload: buffer)
    }
}
