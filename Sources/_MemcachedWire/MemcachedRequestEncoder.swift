import NIOCore

/// Writes requests into a `ByteBuffer`.
public struct MemcachedRequestEncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// Appends `request` to `buffer`, with `opaque` as its `O` flag (meta commands only).
    ///
    /// The request must have been validated (``MemcachedRequest/validate()``).
    public func encode(_ request: MemcachedRequest, opaque: String?, into buffer: inout ByteBuffer) {
        switch request {
        case .metaGet(let key, let flags):
            writeMeta("mg", key: key, length: nil, flags: flags, opaque: opaque, into: &buffer)
        case .metaSet(let key, let value, let flags):
            writeMeta("ms", key: key, length: value.readableBytes, flags: flags, opaque: opaque, into: &buffer)
            var value = value
            buffer.writeBuffer(&value)
            buffer.writeStaticString("\r\n")
        case .metaDelete(let key, let flags):
            writeMeta("md", key: key, length: nil, flags: flags, opaque: opaque, into: &buffer)
        case .metaArithmetic(let key, let flags):
            writeMeta("ma", key: key, length: nil, flags: flags, opaque: opaque, into: &buffer)
        case .metaNoOp:
            buffer.writeStaticString("mn\r\n")
        case .stats(let group):
            buffer.writeStaticString("stats")
            if let group {
                buffer.writeStaticString(" ")
                buffer.writeString(group)
            }
            buffer.writeStaticString("\r\n")
        }
    }

    /// Writes `<command> <key>[ <length>][ <flag>]*[ O<opaque>]\r\n` with one write into the
    /// buffer (one capacity check, no intermediate strings).
    private func writeMeta(
        _ command: StaticString,
        key: String,
        length: Int?,
        flags: [MemcachedRequestFlag],
        opaque: String?,
        into buffer: inout ByteBuffer
    ) {
        var key = key
        // command, space, key, space + 20 digits, " O" + opaque, CRLF; each flag: space + character + token
        var bound = command.utf8CodeUnitCount + 1 + key.utf8.count + 21 + 2 + (opaque?.utf8.count ?? 0) + 2
        for flag in flags { bound += 1 + flag.character.utf8.count + (flag.token?.utf8.count ?? 0) }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { target in
            var count = 0
            func put(_ byte: UInt8) {
                target[count] = byte
                count += 1
            }
            func put<Bytes: Sequence<UInt8>>(_ bytes: Bytes) {
                for byte in bytes { put(byte) }
            }
            command.withUTF8Buffer { put($0) }
            put(UInt8(ascii: " "))
            key.withUTF8 { source in
                UnsafeMutableRawBufferPointer(rebasing: target[count..<count + source.count]).copyMemory(from: UnsafeRawBufferPointer(source))
                count += source.count
            }
            if let length {
                put(UInt8(ascii: " "))
                Self.writeDecimal(length, into: target, at: &count)
            }
            for flag in flags {
                put(UInt8(ascii: " "))
                put(flag.character.utf8)
                if let token = flag.token { put(token.utf8) }
            }
            if let opaque {
                put(UInt8(ascii: " "))
                put(UInt8(ascii: "O"))
                put(opaque.utf8)
            }
            put(UInt8(ascii: "\r"))
            put(UInt8(ascii: "\n"))
            return count
        }
    }

    /// Writes a non-negative integer's decimal digits at `count`.
    private static func writeDecimal(_ value: Int, into target: UnsafeMutableRawBufferPointer, at count: inout Int) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        var remaining = value
        for position in stride(from: count + digits - 1, through: count, by: -1) {
            target[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        count += digits
    }
}
