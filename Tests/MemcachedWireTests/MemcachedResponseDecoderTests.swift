import NIOCore
import NIOTestUtils
import Testing

@testable import _MemcachedWire

@Suite("MemcachedResponseDecoder")
struct MemcachedResponseDecoderTests {
    static func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func decodesEveryReplyKindWholeAndByteByByte() throws {
        var flags = MemcachedResponseFlags(opaque: "14", cas: 3, ttl: 60, clientFlags: 0, size: 3)
        flags.won = true
        let cases: [(ByteBuffer, [MemcachedResponse])] = [
            (Self.buffer("HD O13 c3\r\n"), [.meta(.init(status: .headerOnly, flags: .init(opaque: "13", cas: 3)))]),
            (Self.buffer("VA 3 O14 t60 c3 f0 s3 W\r\nabc\r\n"), [.meta(.init(status: .value, flags: flags, value: Self.buffer("abc")))]),
            (Self.buffer("VA 7\r\na\r\nb\r\nc\r\n"), [.meta(.init(status: .value, value: Self.buffer("a\r\nb\r\nc")))]),
            (Self.buffer("VA 0 t-1\r\n\r\n"), [.meta(.init(status: .value, flags: .init(ttl: -1), value: Self.buffer("")))]),
            (Self.buffer("EN O12\r\n"), [.meta(.init(status: .miss, flags: .init(opaque: "12")))]),
            (Self.buffer("NF\r\nNS\r\nEX O9\r\nMN\r\n"), [
                .meta(.init(status: .notFound)), .meta(.init(status: .notStored)),
                .meta(.init(status: .exists, flags: .init(opaque: "9"))), .meta(.init(status: .noOp)),
            ]),
            (Self.buffer("SERVER_ERROR object too large for cache\r\n"), [.error(.init(kind: .serverError, message: "object too large for cache"))]),
            (Self.buffer("CLIENT_ERROR bad data chunk\r\nERROR\r\n"), [
                .error(.init(kind: .clientError, message: "bad data chunk")), .error(.init(kind: .error, message: "")),
            ]),
            (Self.buffer("STAT pid 1\r\nSTAT version 1.6.18\r\nSTAT rusage_user 0.1 x\r\nEND\r\n"), [
                .stats(["pid": "1", "version": "1.6.18", "rusage_user": "0.1 x"]),
            ]),
            (Self.buffer("END\r\n"), [.stats([:])]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: cases) { MemcachedResponseDecoder() }
    }

    @Test(arguments: [
        "XX 1\r\n",  // unknown status
        "VA abc\r\n",  // bad size
        "VA -1\r\n",  // negative size
        "VA 3\r\nabcXY",  // data not followed by CRLF
        "HD\n",  // bare LF
        "HD c12x\r\n",  // malformed number flag
        "STAT a b\r\nHD\r\n",  // a meta reply inside stats
    ])
    func rejectsMalformedReplies(_ input: String) throws {
        var decoder = MemcachedResponseDecoder()
        var buffer = ByteBuffer(string: input)
        #expect(throws: MemcachedClientError.self) {
            while try decoder.decode(buffer: &buffer) != nil {}
        }
    }

    @Test func enforcesTheLineAndValueLimits() throws {
        var decoder = MemcachedResponseDecoder(maximumValueLength: 10, maximumLineLength: 32)
        var long = ByteBuffer(string: "HD " + String(repeating: "k", count: 40))
        let lineError = #expect(throws: MemcachedClientError.self) { _ = try decoder.decode(buffer: &long) }
        #expect(lineError?.code == .protocolError)
        var big = ByteBuffer(string: "VA 11\r\n")
        let valueError = #expect(throws: MemcachedClientError.self) { _ = try decoder.decode(buffer: &big) }
        #expect(valueError?.code == .valueTooLarge)
    }

    @Test func waitsForTheWholeValue() throws {
        var decoder = MemcachedResponseDecoder()
        var buffer = ByteBuffer(string: "VA 5 c1\r\nab")
        #expect(try decoder.decode(buffer: &buffer) == nil)
        #expect(buffer.readableBytes == 11)
        buffer.writeString("cde\r\n")
        #expect(try decoder.decode(buffer: &buffer) == .meta(.init(status: .value, flags: .init(cas: 1), value: ByteBuffer(string: "abcde"))))
        #expect(buffer.readableBytes == 0)
    }
}

@Suite("MemcachedRequestEncoder")
struct MemcachedRequestEncoderTests {
    func encode(_ request: MemcachedRequest, opaque: String? = nil) -> String {
        var buffer = ByteBuffer()
        MemcachedRequestEncoder().encode(request, opaque: opaque, into: &buffer)
        return String(buffer: buffer)
    }

    @Test func encodesMetaCommands() {
        #expect(encode(.metaGet(key: "k", flags: [.returnValue, .returnCAS, .returnTTL]), opaque: "7") == "mg k v c t O7\r\n")
        #expect(
            encode(.metaSet(key: "k", value: ByteBuffer(string: "a\r\nb"), flags: [.ttl(.seconds(60)), .clientFlags(0)]), opaque: "8")
                == "ms k 4 T60 F0 O8\r\na\r\nb\r\n")
        #expect(encode(.metaSet(key: "k", value: ByteBuffer(string: "x"), flags: [.setMode(.append)])) == "ms k 1 MA\r\nx\r\n")
        #expect(encode(.metaSet(key: "k", value: ByteBuffer(), flags: [.compareCAS(99), .ttl(.never)])) == "ms k 0 C99 T0\r\n\r\n")
        #expect(encode(.metaDelete(key: "k", flags: [.compareCAS(5)]), opaque: "1") == "md k C5 O1\r\n")
        #expect(encode(.metaArithmetic(key: "n", flags: [.returnValue, .delta(2)])) == "ma n v D2\r\n")
        #expect(encode(.metaNoOp) == "mn\r\n")
        #expect(encode(.stats(group: nil)) == "stats\r\n")
        #expect(encode(.stats(group: "slabs")) == "stats slabs\r\n")
    }

    /// The header is written in one pass: value lengths of every digit count, the longest key,
    /// many flags and a long opaque token land byte for byte, after what the buffer held.
    @Test(arguments: [0, 7, 10, 99, 1024, 65_536, 1 << 20])
    func encodesLengthsKeysAndFlagsInOnePass(length: Int) {
        let key = String(repeating: "k", count: MemcachedKey.maximumLength)
        let value = ByteBuffer(repeating: UInt8(ascii: "v"), count: length)
        let flags: [MemcachedRequestFlag] = [.ttl(.seconds(3600)), .clientFlags(UInt32.max), .compareCAS(UInt64.max), .setMode(.add), .returnCAS]
        var buffer = ByteBuffer(string: "before")
        MemcachedRequestEncoder().encode(.metaSet(key: key, value: value, flags: flags), opaque: "4294967295", into: &buffer)
        let expected = "beforems \(key) \(length) T3600 F\(UInt32.max) C\(UInt64.max) ME c O4294967295\r\n"
            + String(repeating: "v", count: length) + "\r\n"
        #expect(String(buffer: buffer) == expected)
    }

    @Test func expirations() {
        #expect(MemcachedExpiration.after(60, now: 1_800_000_000) == .seconds(60))
        #expect(MemcachedExpiration.after(40 * 86400, now: 1_800_000_000) == .unixTime(1_800_000_000 + 40 * 86400))
        #expect(encode(.metaGet(key: "k", flags: [.ttl(.seconds(0))])) == "mg k T-1\r\n")
        #expect(encode(.metaGet(key: "k", flags: [.ttl(.unixTime(1_900_000_000))])) == "mg k T1900000000\r\n")
    }
}

@Suite("MemcachedKey")
struct MemcachedKeyTests {
    @Test(arguments: ["with space", "cr\r", "lf\n", "tab\t", "nul\u{0}", "del\u{7F}", ""])
    func rejectsWhitespaceAndControlCharacters(_ key: String) {
        let error = #expect(throws: MemcachedClientError.self) { try MemcachedKey.validate(key) }
        #expect(error?.code == .invalidKey)
        #expect(error.map { !$0.description.contains(key) || key.isEmpty } == true)
    }

    @Test func limitsTheLength() throws {
        try MemcachedKey.validate(String(repeating: "k", count: 250))
        let error = #expect(throws: MemcachedClientError.self) { try MemcachedKey.validate(String(repeating: "k", count: 251)) }
        #expect(error?.code == .keyTooLong)
        // bytes, not characters
        #expect(throws: MemcachedClientError.self) { try MemcachedKey.validate(String(repeating: "é", count: 126)) }
        try MemcachedKey.validate("sessions%3Asession%3AAAECAwQ-_.~")
    }

    @Test func requestsValidateTheirKey() {
        #expect(throws: MemcachedClientError.self) { try MemcachedRequest.metaGet(key: "a b", flags: []).validate() }
        #expect(throws: MemcachedClientError.self) { try MemcachedRequest.stats(group: "a b").validate() }
        #expect(throws: Never.self) { try MemcachedRequest.metaNoOp.validate() }
    }
}
