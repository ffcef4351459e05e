import NIOCore

/// The few RESP2 values the smoke tests read; just enough to check a server's answers.
indirect enum RESPValue: Equatable, Sendable {
    case simple(String)
    case error(String)
    case integer(Int)
    case bulk(String?)
    case array([RESPValue]?)

    struct Malformed: Error {}

    /// A command as a RESP array of bulk strings.
    static func encode(_ command: [String]) -> [UInt8] {
        var bytes = Array("*\(command.count)\r\n".utf8)
        for argument in command {
            bytes += Array("$\(argument.utf8.count)\r\n".utf8) + Array(argument.utf8) + Array("\r\n".utf8)
        }
        return bytes
    }

    /// The first `count` values in `buffer`, or nil while they are not all there.
    static func parse(_ buffer: ByteBuffer, count: Int) throws -> [RESPValue]? {
        var buffer = buffer
        var values: [RESPValue] = []
        while values.count < count {
            guard let value = try parseValue(&buffer) else { return nil }
            values.append(value)
        }
        return values
    }

    private static func parseValue(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self), let line = readLine(&buffer) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return .simple(line)
        case UInt8(ascii: "-"):
            return .error(line)
        case UInt8(ascii: ":"):
            guard let number = Int(line) else { throw Malformed() }
            return .integer(number)
        case UInt8(ascii: "$"):
            guard let length = Int(line) else { throw Malformed() }
            if length < 0 { return .bulk(nil) }
            guard buffer.readableBytes >= length + 2, let string = buffer.readString(length: length) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .bulk(string)
        case UInt8(ascii: "*"):
            guard let length = Int(line) else { throw Malformed() }
            if length < 0 { return .array(nil) }
            var elements: [RESPValue] = []
            for _ in 0..<length {
                guard let element = try parseValue(&buffer) else { return nil }
                elements.append(element)
            }
            return .array(elements)
        default:
            throw Malformed()
        }
    }

    private static func readLine(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let end = view.firstRange(of: [UInt8(ascii: "\r"), UInt8(ascii: "\n")]) else { return nil }
        let line = buffer.readString(length: end.lowerBound - view.startIndex)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}

/// Sends `commands` pipelined on one connection and returns one reply per command.
func redisCommands(_ endpoint: RawEndpoint, _ commands: [[String]]) async throws -> [RESPValue] {
    let request = commands.flatMap(RESPValue.encode)
    let count = commands.count
    let received = try await rawExchange(endpoint, request: request) { buffer in
        // complete once every reply is there, or once the bytes cannot be RESP
        do { return try RESPValue.parse(buffer, count: count) != nil } catch { return true }
    }
    let replies = try RESPValue.parse(received, count: count)
    guard let replies else {
        throw RESPValue.Malformed()
    }
    return replies
}
