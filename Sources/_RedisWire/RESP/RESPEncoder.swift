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
        writeBulk(command.name.utf8, into: &buffer)
        for argument in command.arguments {
            switch argument.storage {
            case .string(let string):
                writeBulk(string.utf8, into: &buffer)
            case .bytes(let bytes):
                buffer.writeInteger(UInt8(ascii: "$"))
                writeDecimal(bytes.readableBytes, into: &buffer)
                buffer.writeImmutableBuffer(bytes)
                buffer.writeStaticString("\r\n")
            case .integer(let value):
                writeBulk(String(value).utf8, into: &buffer)
            }
        }
    }

    /// Appends every command of a pipeline to `buffer`.
    public func encode(_ commands: some Sequence<RedisCommand>, into buffer: inout ByteBuffer) {
        for command in commands {
            encode(command, into: &buffer)
        }
    }

    private func writeBulk(_ utf8: String.UTF8View, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "$"))
        writeDecimal(utf8.count, into: &buffer)
        buffer.writeBytes(utf8)
        buffer.writeStaticString("\r\n")
    }

    private func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        buffer.writeString(String(value))
        buffer.writeStaticString("\r\n")
    }
}
