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

    private func writeMeta(
        _ command: StaticString,
        key: String,
        length: Int?,
        flags: [MemcachedRequestFlag],
        opaque: String?,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString(command)
        buffer.writeStaticString(" ")
        buffer.writeString(key)
        if let length {
            buffer.writeStaticString(" ")
            buffer.writeString(String(length))
        }
        for flag in flags {
            buffer.writeStaticString(" ")
            buffer.writeString(String(flag.character))
            if let token = flag.token { buffer.writeString(token) }
        }
        if let opaque {
            buffer.writeStaticString(" O")
            buffer.writeString(opaque)
        }
        buffer.writeStaticString("\r\n")
    }
}
