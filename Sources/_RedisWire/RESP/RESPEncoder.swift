import NIOCore

/// Writes commands as RESP arrays of bulk strings.
///
/// Never as inline commands: every argument is length-prefixed, so CR, LF, NUL or text that
/// looks like RESP (`*3\r\n`) in a key or value reaches the server verbatim and cannot split or
/// inject a command.
public struct RESPEncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// Appends `command` to `buffer`: `*<1+n>\r\n$<len>\r\nNAME\r\n` then each argument.
    public func encode(_ command: RedisCommand, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        writeDecimal(command.arguments.count + 1, into: &buffer)
        writeBulk(command.name, into: &buffer)
        for argument in command.arguments {
            switch argument.storage {
            case .string(let string):
                writeBulk(string, into: &buffer)
            case .bytes(let bytes):
                buffer.writeInteger(UInt8(ascii: "$"))
                writeDecimal(bytes.readableBytes, into: &buffer)
                buffer.writeImmutableBuffer(bytes)
                buffer.writeStaticString("\r\n")
            case .integer(let value):
                // The digits are written twice: once to count them, once for real; no String.
                buffer.writeInteger(UInt8(ascii: "$"))
                writeDecimal(Self.decimalLength(value), into: &buffer)
                writeDecimal(value, into: &buffer)
            }
        }
    }

    /// Appends every command of a pipeline to `buffer`.
    public func encode(_ commands: some Sequence<RedisCommand>, into buffer: inout ByteBuffer) {
        for command in commands {
            encode(command, into: &buffer)
        }
    }

    private func writeBulk(_ string: String, into buffer: inout ByteBuffer) {
        var string = string
        string.withUTF8 { utf8 in
            buffer.writeInteger(UInt8(ascii: "$"))
            writeDecimal(utf8.count, into: &buffer)
            buffer.writeBytes(utf8)
        }
        buffer.writeStaticString("\r\n")
    }

    /// The number of bytes of `value` in decimal, sign included.
    static func decimalLength(_ value: Int) -> Int {
        var magnitude = value.magnitude
        var length = value < 0 ? 2 : 1
        while magnitude >= 10 {
            magnitude /= 10
            length += 1
        }
        return length
    }

    /// Writes `value` in decimal followed by CRLF, straight into the buffer.
    private func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        if value >= 0 && value < 10 {
            buffer.writeInteger(UInt16(UInt8(ascii: "0") + UInt8(value)) << 8 | 0x0D, endianness: .big)
            buffer.writeInteger(UInt8(ascii: "\n"))
            return
        }
        let length = Self.decimalLength(value)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length + 2) { raw in
            var magnitude = value.magnitude
            var index = length - 1
            repeat {
                raw[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                index -= 1
            } while magnitude > 0
            if value < 0 { raw[0] = UInt8(ascii: "-") }
            raw[length] = UInt8(ascii: "\r")
            raw[length + 1] = UInt8(ascii: "\n")
            return length + 2
        }
    }
}
