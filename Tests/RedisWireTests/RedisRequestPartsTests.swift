import NIOCore
import Testing
@testable import _RedisWire

/// The inline one-command / one-reply forms of a request, and where they lead.
@Suite("Redis request parts")
struct RedisRequestPartsTests {
    func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }

    func names(_ commands: RedisCommands) -> [String] { commands.map(\.name) }

    @Test func aLoneCommandIsHeldInlineAndReadsLikeAnArrayOfOne() {
        let one = RedisCommands(RedisCommand.get("a"))
        guard case .one(let command) = one.storage else { Issue.record("not inline"); return }
        #expect(command == .get("a"))
        #expect(one.count == 1 && one.first == .get("a") && names(one) == ["GET"])
        // From an array of one, too (a pipeline of one command).
        guard case .one = RedisCommands([RedisCommand.ping()]).storage else { Issue.record("not inline"); return }
        let several: RedisCommands = [.multi(), .get("a"), .exec()]
        guard case .many(let commands) = several.storage else { Issue.record("not an array"); return }
        #expect(commands.count == 3 && names(several) == ["MULTI", "GET", "EXEC"] && several[2] == .exec())
        let none = RedisCommands([])
        #expect(none.isEmpty && none.count == 0)
    }

    @Test func bothFormsEncodeTheSameBytes() {
        let command = RedisCommand.set("k", String(repeating: "v", count: 1024), expireSeconds: 60)
        var inline = ByteBuffer()
        var array = ByteBuffer()
        RESPEncoder().encode(RedisCommands(command), into: &inline)
        RESPEncoder().encode([command], into: &array)
        #expect(inline == array && inline.readableBytes > 1024)
    }

    @Test func repliesCompareByContentHoweverHeld() {
        let one = RedisReplies(bulk("x"))
        guard case .one = one.storage else { Issue.record("not inline"); return }
        #expect(one == [bulk("x")] && one.array == [bulk("x")] && one.count == 1)
        #expect(one != [bulk("y")] && one != [bulk("x"), bulk("x")])
        let several = RedisReplies([.integer(1), .null])
        #expect(several.array == [.integer(1), .null] && several[1] == .null && several.count == 2)
    }

    @Test func aLoneCallerGetsTheValueAndAPipelineTheArray() async throws {
        let value: RESPValue = try await withRedisContinuation { continuation in
            RedisReply.one(continuation).resume(returning: RedisReplies(bulk("v")))
        }
        #expect(value == bulk("v"))
        // A lone caller given an array of one (the machine's general path) gets its element.
        let first: RESPValue = try await withRedisContinuation { continuation in
            RedisReply.one(continuation).resume(returning: RedisReplies([.integer(7)]))
        }
        #expect(first == .integer(7))
        let values: [RESPValue] = try await withRedisContinuation { continuation in
            RedisReply.many(continuation).resume(returning: RedisReplies(.integer(1)))
        }
        #expect(values == [.integer(1)])
        await #expect(throws: RedisClientError.self) {
            let _: RESPValue = try await withRedisContinuation { continuation in
                RedisReply.one(continuation).resume(throwing: RedisClientError(.timeout, message: "t"))
            }
        }
        await #expect(throws: RedisClientError.self) {
            let _: [RESPValue] = try await withRedisContinuation { continuation in
                RedisReply.many(continuation).resume(throwing: RedisClientError(.timeout, message: "t"))
            }
        }
    }

    @Test func theMachineAnswersALoneCommandInlineAndSeveralInAnArray() {
        var m = RedisConnectionStateMachine<Int>(
            handshake: .init(username: nil, password: nil, database: 0, clientName: nil, tls: false),
            sendTimeout: .seconds(1), readTimeout: .seconds(2)
        )
        _ = m.connected(now: .now())
        _ = m.received(.map([RESPMapEntry(key: bulk("proto"), value: .integer(3))]), now: .now())
        guard case .write(_, let written) = m.send(RedisCommands(.get("a")), reply: 1, now: .now()),
            case .one = written.storage
        else { Issue.record("not written inline"); return }
        _ = m.send([.get("b"), .get("c")], reply: 2, now: .now())
        guard case .succeed(1, let lone) = m.received(bulk("A"), now: .now()), case .one(let value) = lone.storage else {
            Issue.record("no inline reply"); return
        }
        #expect(value == bulk("A"))
        guard case .none = m.received(bulk("B"), now: .now()) else { Issue.record("completed early"); return }
        guard case .succeed(2, let pair) = m.received(.null, now: .now()), case .many(let values) = pair.storage else {
            Issue.record("no array of replies"); return
        }
        #expect(values == [bulk("B"), .null])
    }

    @Test func theSlotOfContiguousBytesMatchesTheGenericCRC() {
        var random = SystemRandomNumberGenerator()
        for length in Array(0...70) + [200, 1000] {
            let bytes = (0..<length).map { _ in UInt8.random(in: .min ... .max, using: &random) }
            let pointer = bytes.withUnsafeBufferPointer { RedisHashSlot.crc16($0) }
            #expect(pointer == RedisHashSlot.crc16(bytes.lazy.map { $0 }), "length \(length)")
        }
        #expect("123456789".utf8.withContiguousStorageIfAvailable { RedisHashSlot.crc16($0) } == 0x31C3)
        // A hash tag hashes only its content.
        #expect(RedisHashSlot(key: "user:{foo}:1") == RedisHashSlot(key: "foo"))
        #expect(RedisHashSlot(key: "foo").rawValue == 12182)
    }
}
