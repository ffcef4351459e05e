import NIOCore
import NIOTestUtils
import Testing
@testable import _RedisWire

@Suite("RESP decoder")
struct RESPDecoderTests {
    static func buffer(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }
    static func bulk(_ string: String) -> RESPValue { .bulkString(ByteBuffer(string: string)) }

    static let samples: [(String, RESPValue)] = [
        ("+OK\r\n", .simpleString(ByteBuffer(string: "OK"))),
        ("-WRONGTYPE Operation against a key\r\n", .error(RESPError(message: "WRONGTYPE Operation against a key"))),
        (":-42\r\n", .integer(-42)),
        ("$5\r\nhe\r\nl\r\n", bulk("he\r\nl")),
        ("$0\r\n\r\n", bulk("")),
        ("$-1\r\n", .bulkString(nil)),
        ("*-1\r\n", .array(nil)),
        ("*2\r\n$1\r\na\r\n:1\r\n", .array([bulk("a"), .integer(1)])),
        ("*0\r\n", .array([])),
        ("_\r\n", .null),
        (",3.5\r\n", .double(3.5)),
        (",-inf\r\n", .double(-.infinity)),
        ("#t\r\n", .boolean(true)),
        ("(12345678901234567890123\r\n", .bigNumber("12345678901234567890123")),
        ("!9\r\nERR oops!\r\n", .error(RESPError(message: "ERR oops!"))),
        ("=8\r\ntxt:abcd\r\n", .verbatimString(format: "txt", text: ByteBuffer(string: "abcd"))),
        ("%1\r\n+k\r\n:1\r\n", .map([RESPMapEntry(key: .simpleString(ByteBuffer(string: "k")), value: .integer(1))])),
        ("~1\r\n:7\r\n", .set([.integer(7)])),
        (">2\r\n+message\r\n$1\r\nx\r\n", .push([.simpleString(ByteBuffer(string: "message")), bulk("x")])),
        ("|1\r\n+ttl\r\n:3\r\n:5\r\n", .integer(5)),
        ("*2\r\n*1\r\n$3\r\n*3\r\r\n_\r\n", .array([.array([bulk("*3\r")]), .null])),
    ]

    @Test func decodesEveryTypeWholeSplitAndByteByByte() throws {
        // The verifier feeds each input whole, in chunks, and byte by byte.
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: Self.samples.map { (Self.buffer($0.0), [$0.1]) },
            decoderFactory: { RESPDecoder() }
        )
    }

    @Test func needMoreConsumesNothing() throws {
        var decoder = RESPDecoder()
        for input in ["", "$", "$5\r", "$5\r\nhel", "$5\r\nhello\r", "*2\r\n:1\r\n", "%1\r\n+k\r\n", "+OK"] {
            var buffer = Self.buffer(input)
            #expect(try decoder.decode(buffer: &buffer) == nil, "\(input.debugDescription)")
            #expect(buffer.readerIndex == 0)
        }
    }

    @Test func decodesSeveralValuesInOneBuffer() throws {
        var decoder = RESPDecoder()
        var buffer = Self.buffer("+OK\r\n:1\r\n$-1\r\n")
        #expect(try decoder.decode(buffer: &buffer) == .simpleString(ByteBuffer(string: "OK")))
        #expect(try decoder.decode(buffer: &buffer) == .integer(1))
        #expect(try decoder.decode(buffer: &buffer) == .bulkString(nil))
        #expect(try decoder.decode(buffer: &buffer) == nil)
        #expect(buffer.readableBytes == 0)
    }

    static let malformed: [(String, RESPDecodingError.Code)] = [
        ("?x\r\n", .unknownType),
        (":12a\r\n", .malformedNumber),
        (":\r\n", .malformedNumber),
        (":99999999999999999999\r\n", .malformedNumber),
        ("$-2\r\n", .invalidLength),
        ("*-5\r\n", .invalidLength),
        ("$3\r\nabcXY", .missingCRLF),
        ("+OK\rX", .missingCRLF),
        ("#x\r\n", .malformedBoolean),
        ("_x\r\n", .malformedNull),
        ("=2\r\nab\r\n", .malformedVerbatimString),
        ("*?\r\n", .unsupportedStreaming),
        (",abc\r\n", .malformedNumber),
        ("~-1\r\n", .invalidLength),
    ]

    @Test(arguments: malformed)
    func malformedInputIsATypedError(_ input: String, _ code: RESPDecodingError.Code) throws {
        var decoder = RESPDecoder()
        var buffer = Self.buffer(input)
        #expect(throws: RESPDecodingError(code)) { try decoder.decode(buffer: &buffer) }
    }

    @Test func limitsAreEnforcedBeforeTheDataArrives() throws {
        var decoder = RESPDecoder(limits: .init(maximumDepth: 3, maximumBulkLength: 10, maximumAggregateCount: 4, maximumLineLength: 16))
        var bulk = Self.buffer("$11\r\n")
        #expect(throws: RESPDecodingError(.bulkTooLong)) { try decoder.decode(buffer: &bulk) }
        var count = Self.buffer("*5\r\n")
        #expect(throws: RESPDecodingError(.aggregateTooLarge)) { try decoder.decode(buffer: &count) }
        var map = Self.buffer("%5\r\n")
        #expect(throws: RESPDecodingError(.aggregateTooLarge)) { try decoder.decode(buffer: &map) }
        var deep = Self.buffer("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")
        #expect(throws: RESPDecodingError(.depthExceeded)) { try decoder.decode(buffer: &deep) }
        var shallow = Self.buffer("*1\r\n*1\r\n*1\r\n:1\r\n")
        #expect(try decoder.decode(buffer: &shallow) == .array([.array([.array([.integer(1)])])]))
        var line = Self.buffer("+" + String(repeating: "a", count: 17))
        #expect(throws: RESPDecodingError(.lineTooLong)) { try decoder.decode(buffer: &line) }
        var bulkOK = Self.buffer("$10\r\n0123456789\r\n")
        #expect(try decoder.decode(buffer: &bulkOK) == Self.bulk("0123456789"))
    }

    @Test func deepNestingOfHostileInputFailsWithoutRecursingForever() throws {
        var decoder = RESPDecoder()
        var buffer = Self.buffer(String(repeating: "*1\r\n", count: 100_000))
        #expect(throws: RESPDecodingError(.depthExceeded)) { try decoder.decode(buffer: &buffer) }
    }

    @Test func valueAccessors() {
        #expect(RESPValue.integer(3).int == 3)
        #expect(Self.bulk("12").int == 12)
        #expect(Self.bulk("inf").double == .infinity)
        #expect(RESPValue.array(nil).isNull && RESPValue.null.isNull && RESPValue.bulkString(nil).isNull)
        let flat = RESPValue.array([Self.bulk("a"), Self.bulk("1"), Self.bulk("b"), Self.bulk("2")])
        #expect(flat.pairs?.map { $0.key.string! } == ["a", "b"])
        let nested = RESPValue.array([.array([Self.bulk("a"), .double(1)]), .array([Self.bulk("b"), .double(2)])])
        #expect(nested.pairs?.map { $0.value.double! } == [1, 2])
        #expect(RESPValue.array([]).pairs?.isEmpty == true)
        let error = RESPError(message: "MOVED 3999 127.0.0.1:6381")
        #expect(error.prefix == "MOVED")
        #expect(error.redirection?.slot == 3999 && error.redirection?.port == 6381 && error.redirection?.host == "127.0.0.1")
        // Descriptions never show content.
        #expect(!"\(Self.bulk("secret"))".contains("secret"))
    }
}

@Suite("RESP encoder and commands")
struct RESPEncoderTests {
    @Test func commandsAreArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RESPEncoder().encode(.set("k", "a\r\nb\0*3\r\n", expireSeconds: 60), into: &buffer)
        #expect(String(buffer: buffer) == "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$9\r\na\r\nb\0*3\r\n\r\n$2\r\nEX\r\n$2\r\n60\r\n")
    }

    @Test func binaryAndUnicodeArgumentsAreLengthPrefixedInBytes() throws {
        var buffer = ByteBuffer()
        let bytes = ByteBuffer(bytes: [0, 13, 10, 255])
        RESPEncoder().encode([RedisCommand("ECHO", [.init(bytes)]), RedisCommand("ECHO", ["é😀"])], into: &buffer)
        var decoder = RESPDecoder()
        let first = try decoder.decode(buffer: &buffer)
        #expect(first == .array([.bulkString(ByteBuffer(string: "ECHO")), .bulkString(bytes)]))
        let second = try decoder.decode(buffer: &buffer)
        #expect(second?.array?[1].string == "é😀")
        #expect(second?.array?[1].bytes?.readableBytes == 6)
    }

    @Test func everyKindOfArgumentIsEncodedExactly() {
        // A reference encoding built from text, against the encoder's single-pass one.
        func reference(_ name: String, _ arguments: [String]) -> String {
            var text = "*\(arguments.count + 1)\r\n$\(name.utf8.count)\r\n\(name)\r\n"
            for argument in arguments { text += "$\(argument.utf8.count)\r\n\(argument)\r\n" }
            return text
        }
        let long = String(repeating: "x", count: 1024)
        let cases: [(RedisCommand, String)] = [
            (RedisCommand("PING"), reference("PING", [])),
            (RedisCommand("ZADD", ["k", .init(-1), .init(0), .init(Int.min), .init(Int.max), .init(1_000_000)]),
             reference("ZADD", ["k", "-1", "0", "\(Int.min)", "\(Int.max)", "1000000"])),
            (RedisCommand("DEL", (0..<12).map { .init("key\($0)") }), reference("DEL", (0..<12).map { "key\($0)" })),
            (.set("k", long, expireSeconds: 3600), reference("SET", ["k", long, "EX", "3600"])),
            (RedisCommand("ECHO", [.init(ByteBuffer(string: "bytes")), .init(ByteBuffer()), ""]), reference("ECHO", ["bytes", "", ""])),
            (RedisCommand("ECHO", ["é😀"]), reference("ECHO", ["é😀"])),
        ]
        for (command, expected) in cases {
            var buffer = ByteBuffer(string: "prefix")
            RESPEncoder().encode(command, into: &buffer)
            #expect(String(buffer: buffer) == "prefix" + expected)
        }
    }

    @Test func okIsRecognisedOnTheBytes() {
        #expect(RESPValue.simpleString(ByteBuffer(string: "OK")).isOK)
        #expect(RESPValue.bulkString(ByteBuffer(string: "OK")).isOK)
        #expect(!RESPValue.simpleString(ByteBuffer(string: "KO")).isOK)
        #expect(!RESPValue.simpleString(ByteBuffer(string: "OKAY")).isOK)
        #expect(!RESPValue.simpleString(ByteBuffer(string: "O")).isOK)
        #expect(!RESPValue.bulkString(nil).isOK)
        #expect(!RESPValue.error(RESPError(message: "OK")).isOK)
        // A slice whose reader index is not 0.
        var buffer = ByteBuffer(string: "+OK")
        buffer.moveReaderIndex(forwardBy: 1)
        #expect(RESPValue.simpleString(buffer).isOK)
    }

    @Test func setWithAndWithoutExpiry() {
        #expect(RedisCommand.set("k", "v").arguments.map(\.text) == ["k", "v"])
        #expect(RedisCommand.set("k", "v", expireSeconds: 5).arguments.map(\.text) == ["k", "v", "EX", "5"])
        #expect(RedisCommand.set("k", "v", expireSeconds: 5).keys.map(\.text) == ["k"])
    }

    @Test func commandsNameTheirKeys() {
        #expect(RedisCommand.get("a").keys.map(\.text) == ["a"])
        #expect(RedisCommand.unlink(["a", "b"]).keys.map(\.text) == ["a", "b"])
        #expect(RedisCommand.ping().keys.isEmpty)
        // Descriptions name the command only.
        #expect(RedisCommand.auth(username: "u", password: "hunter2").description == "AUTH")
        #expect(RedisCommand.hello(protocolVersion: 3, username: nil, password: "p").arguments.map(\.text) == ["3", "AUTH", "default", "p"])
    }
}
