import NIOCore

// The primitive encodings of the MySQL protocol: little-endian fixed-width integers,
// length-encoded integers and strings (NUL-terminated strings are NIOCore's).
extension ByteBuffer {
    /// Reads a length-encoded integer (`0xFB` is NULL in rows and yields `nil` here as well).
    mutating func readLengthEncodedInteger() -> UInt64? {
        guard let first = readInteger(as: UInt8.self) else { return nil }
        switch first {
        case 0..<0xFB: return UInt64(first)
        case 0xFC: return readInteger(endianness: .little, as: UInt16.self).map(UInt64.init)
        case 0xFD:
            guard let bytes = readBytes(length: 3) else { return nil }
            return UInt64(bytes[0]) | UInt64(bytes[1]) << 8 | UInt64(bytes[2]) << 16
        case 0xFE: return readInteger(endianness: .little, as: UInt64.self)
        default: return nil
        }
    }

    /// Reads a length-encoded string as bytes.
    mutating func readLengthEncodedSlice() -> ByteBuffer? {
        guard let length = readLengthEncodedInteger(), length <= UInt64(Int32.max) else { return nil }
        return readSlice(length: Int(length))
    }

    /// Reads a length-encoded string.
    mutating func readLengthEncodedString() -> String? {
        guard let length = readLengthEncodedInteger(), length <= UInt64(Int32.max) else { return nil }
        return readString(length: Int(length))
    }

    /// Writes a length-encoded integer.
    @discardableResult
    mutating func writeLengthEncodedInteger(_ value: UInt64) -> Int {
        switch value {
        case 0..<251:
            return writeInteger(UInt8(value))
        case 251..<(1 << 16):
            return writeInteger(UInt8(0xFC)) + writeInteger(UInt16(value), endianness: .little)
        case (1 << 16)..<(1 << 24):
            return writeInteger(UInt8(0xFD)) + writeInteger(UInt8(value & 0xFF))
                + writeInteger(UInt16(value >> 8), endianness: .little)
        default:
            return writeInteger(UInt8(0xFE)) + writeInteger(value, endianness: .little)
        }
    }

    /// Writes a length-encoded string.
    @discardableResult
    mutating func writeLengthEncodedBytes(_ bytes: some Collection<UInt8>) -> Int {
        writeLengthEncodedInteger(UInt64(bytes.count)) + writeBytes(bytes)
    }

    /// The size of a length-encoded integer.
    static func lengthEncodedIntegerSize(_ value: UInt64) -> Int {
        switch value {
        case 0..<251: return 1
        case 251..<(1 << 16): return 3
        case (1 << 16)..<(1 << 24): return 4
        default: return 9
        }
    }
}
