import NIOCore
import NIOTestUtils
import Testing

@testable import _MySQLWire

@Suite("MySQL packet decoder and encoder")
struct PacketDecoderTests {
    func framed(_ payload: [UInt8], sequenceID: UInt8) -> ByteBuffer {
        var buffer = ByteBuffer()
        MySQLPacketEncoder().frame(ByteBuffer(bytes: payload), sequenceID: sequenceID, into: &buffer)
        return buffer
    }

    @Test func decodesPacketsByteByByte() throws {
        let payloads: [[UInt8]] = [[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00], [], Array(repeating: 0x41, count: 300)]
        var input = ByteBuffer()
        for (index, payload) in payloads.enumerated() { input.writeImmutableBuffer(framed(payload, sequenceID: UInt8(index))) }
        let expected = payloads.enumerated().map { MySQLPacket(sequenceID: UInt8($0.offset), payload: ByteBuffer(bytes: $0.element)) }
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(input, expected)],
            decoderFactory: { MySQLPacketDecoder(maximumPacketSize: 1 << 20) })
    }

    @Test func joinsPacketsOf16MiBAndMore() throws {
        // A payload of exactly 16 MiB − 1 needs an empty second fragment; one over it two fragments.
        for size in [MySQLPacket.maximumFragmentLength, MySQLPacket.maximumFragmentLength + 10] {
            var payload = ByteBuffer()
            payload.writeRepeatingByte(0x5A, count: size)
            var framed = ByteBuffer()
            let next = MySQLPacketEncoder().frame(payload, sequenceID: 3, into: &framed)
            #expect(next == 5)
            #expect(framed.readableBytes == size + 8)
            // The second header: length and sequence id 4.
            let secondHeader = framed.getBytes(at: 4 + MySQLPacket.maximumFragmentLength, length: 4)!
            #expect(secondHeader == [UInt8(size - MySQLPacket.maximumFragmentLength), 0, 0, 4])
            var decoder = MySQLPacketDecoder(maximumPacketSize: 32 << 20)
            let packet = try #require(try decoder.decode(buffer: &framed))
            #expect(packet.payload.readableBytes == size)
            #expect(packet.sequenceID == 4)
            #expect(packet.payload == payload)
            #expect(framed.readableBytes == 0)
        }
    }

    @Test func splitPacketVerifiedByteByByte() throws {
        var payload = ByteBuffer()
        payload.writeRepeatingByte(0x61, count: MySQLPacket.maximumFragmentLength + 3)
        var framed = ByteBuffer()
        MySQLPacketEncoder().frame(payload, sequenceID: 0, into: &framed)
        // Chunks of 1 MiB instead of single bytes (16 MiB byte by byte is too slow).
        var decoder = MySQLPacketDecoder(maximumPacketSize: 32 << 20)
        var input = ByteBuffer()
        var packets: [MySQLPacket] = []
        while framed.readableBytes > 0 {
            var chunk = framed.readSlice(length: min(1 << 20, framed.readableBytes))!
            input.writeBuffer(&chunk)
            while let packet = try decoder.decode(buffer: &input) { packets.append(packet) }
        }
        #expect(packets.count == 1)
        #expect(packets.first?.payload == payload)
    }

    @Test func refusesPacketsOverTheLimitBeforeBuffering() throws {
        var decoder = MySQLPacketDecoder(maximumPacketSize: 100)
        // Only the header of a 101-byte packet: refused at once.
        var input = ByteBuffer(bytes: [101, 0, 0, 0])
        #expect(throws: MySQLError.self) { try decoder.decode(buffer: &input) }
        do {
            _ = try decoder.decode(buffer: &input)
        } catch let error as MySQLError {
            #expect(error.code == .packetTooLarge)
        }
        // Fragments adding up past the limit are refused too.
        var limited = MySQLPacketDecoder(maximumPacketSize: MySQLPacket.maximumFragmentLength + 5)
        var big = ByteBuffer()
        big.writeRepeatingByte(0, count: MySQLPacket.maximumFragmentLength + 6)
        var framed = ByteBuffer()
        MySQLPacketEncoder().frame(big, sequenceID: 0, into: &framed)
        #expect(throws: MySQLError.self) { while try limited.decode(buffer: &framed) != nil {} }
    }

    @Test func truncatedStreamIsAnError() throws {
        var decoder = MySQLPacketDecoder(maximumPacketSize: 1 << 20)
        var input = ByteBuffer(bytes: [5, 0, 0, 0, 1, 2])
        #expect(try decoder.decode(buffer: &input) == nil)
        #expect(throws: MySQLError.self) { try decoder.decodeLast(buffer: &input, seenEOF: true) }
    }

    @Test func lengthEncodedIntegersRoundTrip() {
        for value: UInt64 in [0, 250, 251, 65535, 65536, 16_777_215, 16_777_216, .max] {
            var buffer = ByteBuffer()
            let written = buffer.writeLengthEncodedInteger(value)
            #expect(written == ByteBuffer.lengthEncodedIntegerSize(value))
            #expect(buffer.readLengthEncodedInteger() == value)
        }
    }

    @Test func executeEncodingMatchesItsComputedSize() {
        let binds: [MySQLValue] = [.string("abc"), .null, .int(-5), .uint(7), .double(1.5), .bytes([1, 2, 3]), .string(String(repeating: "x", count: 70000))]
        var buffer = ByteBuffer()
        MySQLClientMessage.execute(statementID: 9, binds: binds).encodePayload(into: &buffer)
        #expect(buffer.readableBytes == MySQLClientMessage.executePayloadSize(binds: binds))
        // command, statement id, flags, iteration count, NULL bitmap (bit 1 set), new-params flag.
        #expect(Array(buffer.readableBytesView.prefix(12)) == [0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0, 0b0000_0010, 1])
        // Types: VAR_STRING, NULL, LONGLONG, LONGLONG unsigned, DOUBLE, BLOB, VAR_STRING.
        #expect(Array(buffer.readableBytesView.dropFirst(12).prefix(14)) == [0xFD, 0, 0x06, 0, 0x08, 0, 0x08, 0x80, 0x05, 0, 0xFC, 0, 0xFD, 0])
    }
}
