import NIOCore

/// Splits the byte stream into ``MySQLPacket``s: a 3-byte little-endian payload length and a
/// sequence id before every fragment; a fragment of 16 MiB − 1 bytes means another follows,
/// and the fragments are joined into one packet.
///
/// A logical packet longer than `maximumPacketSize` is refused with
/// ``MySQLError/Code/packetTooLarge`` before it is buffered.
public struct MySQLPacketDecoder: NIOSingleStepByteToMessageDecoder {
    /// The decoded packet.
    public typealias InboundOut = MySQLPacket

    /// The largest logical packet accepted.
    public let maximumPacketSize: Int
    /// Fragments of a packet of 16 MiB − 1 bytes or more read so far.
    private var pending: ByteBuffer?

    /// Creates a decoder.
    public init(maximumPacketSize: Int) {
        self.maximumPacketSize = maximumPacketSize
    }

    /// Decodes the next packet, or returns `nil` when more bytes are needed.
    public mutating func decode(buffer: inout ByteBuffer) throws -> MySQLPacket? {
        while true {
            // The 3-byte length and the sequence id, read as one little-endian integer.
            guard let header = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
                return nil
            }
            let length = Int(header & 0xFF_FFFF)
            let sequenceID = UInt8(truncatingIfNeeded: header >> 24)
            let total = (pending?.readableBytes ?? 0) + length
            guard total <= maximumPacketSize else {
                throw MySQLError(.packetTooLarge, message: "the server sent a packet over the maximum packet size of \(maximumPacketSize) bytes")
            }
            guard buffer.readableBytes >= 4 + length else { return nil }
            buffer.moveReaderIndex(forwardBy: 4)
            let fragment = buffer.readSlice(length: length)!
            if length == MySQLPacket.maximumFragmentLength {
                if pending == nil {
                    pending = fragment
                } else {
                    pending!.writeImmutableBuffer(fragment)
                }
                continue
            }
            if var joined = pending {
                pending = nil
                joined.writeImmutableBuffer(fragment)
                return MySQLPacket(sequenceID: sequenceID, payload: joined)
            }
            return MySQLPacket(sequenceID: sequenceID, payload: fragment)
        }
    }

    /// At end of stream: a partial packet is an error (the server closed mid-packet).
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MySQLPacket? {
        if let packet = try decode(buffer: &buffer) { return packet }
        if buffer.readableBytes > 0 || pending != nil {
            throw MySQLError(.connectionClosed, message: "the connection closed in the middle of a packet")
        }
        return nil
    }
}

/// Frames client messages into packets: the payload split into fragments of at most
/// 16 MiB − 1 bytes (an empty fragment ends a payload of an exact multiple), each with the
/// length and the next sequence id.
public struct MySQLPacketEncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// Encodes `message` starting with `sequenceID`; returns the sequence id after the last fragment.
    @discardableResult
    public func encode(_ message: MySQLClientMessage, sequenceID: UInt8, into buffer: inout ByteBuffer) -> UInt8 {
        // The payload is written in place after a header written last; only a payload of a
        // whole fragment or more is taken out again and framed in fragments.
        let headerIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        message.encodePayload(into: &buffer)
        let length = buffer.writerIndex - headerIndex - 4
        if length < MySQLPacket.maximumFragmentLength {
            buffer.setInteger(UInt32(length) | UInt32(sequenceID) << 24, at: headerIndex, endianness: .little)
            return sequenceID &+ 1
        }
        let payload = buffer.getSlice(at: headerIndex + 4, length: length)!
        buffer.moveWriterIndex(to: headerIndex)
        return frame(payload, sequenceID: sequenceID, into: &buffer)
    }

    /// Frames an encoded payload.
    @discardableResult
    public func frame(_ payload: ByteBuffer, sequenceID: UInt8, into buffer: inout ByteBuffer) -> UInt8 {
        var payload = payload
        var sequence = sequenceID
        buffer.reserveCapacity(minimumWritableBytes: payload.readableBytes + 4 * (payload.readableBytes / MySQLPacket.maximumFragmentLength + 1))
        while true {
            let length = min(payload.readableBytes, MySQLPacket.maximumFragmentLength)
            buffer.writeInteger(UInt8(length & 0xFF))
            buffer.writeInteger(UInt8((length >> 8) & 0xFF))
            buffer.writeInteger(UInt8((length >> 16) & 0xFF))
            buffer.writeInteger(sequence)
            sequence &+= 1
            let slice = payload.readSlice(length: length)!
            buffer.writeImmutableBuffer(slice)
            if length < MySQLPacket.maximumFragmentLength { return sequence }
        }
    }
}
