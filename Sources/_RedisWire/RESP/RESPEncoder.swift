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
    ///
    /// The exact size is computed first, then every byte is written through one pointer: one
    /// capacity check and one uniqueness check per command rather than one per field.
    public func encode(_ command: RedisCommand, into buffer: inout ByteBuffer) {
        var size = 1 + Self.decimalLength(command.arguments.count + 1) + 2 + Self.bulkSize(command.name.utf8.count)
        for argument in command.arguments {
            switch argument.storage {
            case .string(let string): size += Self.bulkSize(string.utf8.count)
            case .bytes(let bytes): size += Self.bulkSize(bytes.readableBytes)
            case .integer(let value): size += Self.bulkSize(Self.decimalLength(value))
            }
        }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var writer = Writer(base: raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
            writer.byte(UInt8(ascii: "*"))
            writer.decimalLine(command.arguments.count + 1)
            writer.bulk(command.name)
            for argument in command.arguments {
                switch argument.storage {
                case .string(let string):
                    writer.bulk(string)
                case .bytes(let bytes):
                    writer.byte(UInt8(ascii: "$"))
                    writer.decimalLine(bytes.readableBytes)
                    bytes.withUnsafeReadableBytes { writer.bytes($0) }
                    writer.crlf()
                case .integer(let value):
                    writer.byte(UInt8(ascii: "$"))
                    writer.decimalLine(Self.decimalLength(value))
                    writer.decimalLine(value)
                }
            }
            precondition(writer.count == size, "RESP size mismatch")
            return size
        }
    }

    /// The bytes of a bulk string of `length` bytes: `$<length>\r\n…\r\n`.
    private static func bulkSize(_ length: Int) -> Int {
        1 + decimalLength(length) + 2 + length + 2
    }

    /// Writes bytes through a pointer into memory the caller sized exactly.
    private struct Writer {
        let base: UnsafeMutablePointer<UInt8>
        var count = 0

        mutating func byte(_ byte: UInt8) {
            base[count] = byte
            count += 1
        }

        mutating func crlf() {
            base[count] = UInt8(ascii: "\r")
            base[count + 1] = UInt8(ascii: "\n")
            count += 2
        }

        mutating func bytes(_ bytes: UnsafeRawBufferPointer) {
            guard let source = bytes.baseAddress, bytes.count > 0 else { return }
            (base + count).update(from: source.assumingMemoryBound(to: UInt8.self), count: bytes.count)
            count += bytes.count
        }

        /// `$<len>\r\n<utf8>\r\n`
        mutating func bulk(_ string: String) {
            var string = string
            string.withUTF8 { utf8 in
                byte(UInt8(ascii: "$"))
                decimalLine(utf8.count)
                bytes(UnsafeRawBufferPointer(utf8))
            }
            crlf()
        }

        /// `value` in decimal, then CRLF.
        mutating func decimalLine(_ value: Int) {
            let length = RESPEncoder.decimalLength(value)
            var magnitude = value.magnitude
            var index = count + length - 1
            repeat {
                base[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                index -= 1
            } while magnitude > 0
            if value < 0 { base[count] = UInt8(ascii: "-") }
            count += length
            crlf()
        }
    }

    /// Appends every command of a pipeline to `buffer`.
    public func encode(_ commands: some Sequence<RedisCommand>, into buffer: inout ByteBuffer) {
        for command in commands {
            encode(command, into: &buffer)
        }
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
}
