import NIOCore

/// One value of the Redis serialization protocol, RESP2 or RESP3.
///
/// RESP2 servers send simple strings, errors, integers, bulk strings and arrays (with a null
/// bulk string or null array for "nil"); RESP3 adds null, doubles, booleans, big numbers,
/// verbatim strings, maps, sets, attributes and out-of-band pushes. Strings are kept as the
/// server's raw bytes (`ByteBuffer`), so binary values round-trip verbatim.
public enum RESPValue: Sendable, Hashable {
    /// `+OK\r\n`
    case simpleString(ByteBuffer)
    /// `-ERR message\r\n`, or a RESP3 blob error `!len\r\n…\r\n`.
    case error(RESPError)
    /// `:42\r\n`
    case integer(Int64)
    /// `$len\r\n…\r\n`; `nil` for the RESP2 null bulk string `$-1\r\n`.
    case bulkString(ByteBuffer?)
    /// `*n\r\n…`; `nil` for the RESP2 null array `*-1\r\n`.
    case array([RESPValue]?)
    /// RESP3 `_\r\n`.
    case null
    /// RESP3 `,3.14\r\n` (also `inf`, `-inf`, `nan`).
    case double(Double)
    /// RESP3 `#t\r\n` / `#f\r\n`.
    case boolean(Bool)
    /// RESP3 `(12345678901234567890\r\n`, kept as its decimal digits.
    case bigNumber(String)
    /// RESP3 `=len\r\ntxt:…\r\n`: the three-letter format and the text.
    case verbatimString(format: String, text: ByteBuffer)
    /// RESP3 `%n\r\n` key/value pairs, in the server's order.
    case map([RESPMapEntry])
    /// RESP3 `~n\r\n`.
    case set([RESPValue])
    /// RESP3 `>n\r\n`: an out-of-band push (pub/sub message, invalidation), never a reply.
    case push([RESPValue])
}

/// One key/value pair of a RESP3 map (or attribute).
public struct RESPMapEntry: Sendable, Hashable {
    /// The key.
    public var key: RESPValue
    /// The value.
    public var value: RESPValue

    /// Creates a pair.
    public init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}

/// An error reply of the server: `-PREFIX message`.
///
/// The first word is the error's kind by Redis convention (`ERR`, `WRONGTYPE`, `MOVED`, `ASK`,
/// `READONLY`, `NOAUTH`, `WRONGPASS`, `NOPROTO`, `LOADING`, `BUSY`, `EXECABORT`, …).
public struct RESPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The whole message as the server sent it, e.g. `WRONGTYPE Operation against a key…`.
    public var message: String

    /// Creates an error reply from the server's message.
    public init(message: String) {
        self.message = message
    }

    /// The first word, e.g. `WRONGTYPE`, `MOVED`, `ERR`.
    public var prefix: Substring {
        message.prefix(while: { $0 != " " })
    }

    /// For `MOVED slot host:port` and `ASK slot host:port`: the slot and the address.
    public var redirection: (slot: Int, host: String, port: Int)? {
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        return (slot, String(parts[2][..<colon]), port)
    }

    public var description: String { "RESPError(\(prefix))" }
}

extension RESPValue {
    /// The bytes of a simple, bulk or verbatim string; `nil` for anything else.
    public var bytes: ByteBuffer? {
        switch self {
        case .simpleString(let buffer), .bulkString(.some(let buffer)), .verbatimString(_, let buffer):
            return buffer
        default:
            return nil
        }
    }

    /// A simple, bulk or verbatim string as UTF-8 text (invalid sequences repaired); `nil` for
    /// anything else.
    public var string: String? {
        bytes.map { String(buffer: $0) }
    }

    /// Whether the value is the string `OK` (the reply of `SET` and friends), compared on the
    /// bytes: no `String` is made.
    public var isOK: Bool {
        guard let bytes, bytes.readableBytes == 2 else { return false }
        return bytes.getInteger(at: bytes.readerIndex, as: UInt16.self) == UInt16(UInt8(ascii: "O")) << 8 | UInt16(UInt8(ascii: "K"))
    }

    /// An integer, or a string holding one (RESP2 sends scores and some counts as strings).
    public var int: Int? {
        switch self {
        case .integer(let value): return Int(exactly: value)
        case .double(let value): return Int(exactly: value)
        case .bigNumber(let text): return Int(text)
        default: return string.flatMap { Int($0) }
        }
    }

    /// A double, or a string holding one (`inf`, `-inf` included).
    public var double: Double? {
        switch self {
        case .double(let value): return value
        case .integer(let value): return Double(value)
        default:
            guard let text = string else { return nil }
            switch text.lowercased() {
            case "inf", "+inf": return .infinity
            case "-inf": return -.infinity
            default: return Double(text)
            }
        }
    }

    /// The elements of an array, set or push; `nil` for a null array or anything else.
    public var array: [RESPValue]? {
        switch self {
        case .array(let values): return values
        case .set(let values), .push(let values): return values
        default: return nil
        }
    }

    /// Whether the value is RESP3 null, a null bulk string or a null array.
    public var isNull: Bool {
        switch self {
        case .null, .bulkString(nil), .array(nil): return true
        default: return false
        }
    }

    /// The error reply, if this is one.
    public var error: RESPError? {
        if case .error(let error) = self { return error }
        return nil
    }

    /// Key/value pairs of a RESP3 map, or of a RESP2 flat array of alternating keys and values
    /// (what `HELLO`, `CONFIG GET` and `ZRANGE … WITHSCORES` send on RESP2).
    public var pairs: [(key: RESPValue, value: RESPValue)]? {
        switch self {
        case .map(let entries):
            return entries.map { ($0.key, $0.value) }
        case .array(.some(let values)):
            // RESP3 sends WITHSCORES as an array of [member, score] pairs, RESP2 as a flat array.
            let nested = values.allSatisfy { value in
                if case .array(.some(let pair)) = value { return pair.count == 2 }
                return false
            }
            if nested && !values.isEmpty {
                return values.map { ($0.array![0], $0.array![1]) }
            }
            guard values.count % 2 == 0 else { return nil }
            return stride(from: 0, to: values.count, by: 2).map { (values[$0], values[$0 + 1]) }
        default:
            return nil
        }
    }
}

extension RESPValue: CustomStringConvertible {
    /// The kind of value and its size; never the content, which may be a secret or a session.
    public var description: String {
        switch self {
        case .simpleString(let buffer): return "simpleString(\(buffer.readableBytes) bytes)"
        case .error(let error): return "error(\(error.prefix))"
        case .integer(let value): return "integer(\(value))"
        case .bulkString(nil): return "bulkString(nil)"
        case .bulkString(.some(let buffer)): return "bulkString(\(buffer.readableBytes) bytes)"
        case .array(nil): return "array(nil)"
        case .array(.some(let values)): return "array(\(values.count))"
        case .null: return "null"
        case .double(let value): return "double(\(value))"
        case .boolean(let value): return "boolean(\(value))"
        case .bigNumber: return "bigNumber"
        case .verbatimString(let format, let text): return "verbatimString(\(format), \(text.readableBytes) bytes)"
        case .map(let entries): return "map(\(entries.count))"
        case .set(let values): return "set(\(values.count))"
        case .push(let values): return "push(\(values.count))"
        }
    }
}
