/// The JSON codec of the session core.
///
/// The encoder writes what lua-cjson writes for the same values (`/` escaped as `\/`, DEL as
/// `\u007f`, integral numbers without a fraction), with object members sorted by key so the
/// output is deterministic. The decoder accepts any RFC 8259 JSON text, with a nesting limit,
/// and reports malformed input as `nil`, never a trap.
enum SessionJSON {
    static let maximumDepth = 128

    // MARK: encoding

    static func encode(_ value: SessionValue) -> [UInt8] {
        var out: [UInt8] = []
        // one allocation for the whole text (an array grown from empty reallocates at each
        // doubling: a 1 KiB session's JSON took eight)
        out.reserveCapacity(estimatedSize(value))
        encode(value, into: &out)
        return out
    }

    static func encode(_ value: SessionValue, into out: inout [UInt8]) {
        switch value {
        case .null:
            out.append(contentsOf: "null".utf8)
        case .bool(let flag):
            out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let number):
            encodeNumber(number, into: &out)
        case .string(let string):
            encodeString(string, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                encode(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            if members.count == 1, let (key, member) = members.first {
                // nothing to sort (and no array of keys to allocate)
                encodeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                encode(member, into: &out)
                out.append(UInt8(ascii: "}"))
                return
            }
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                encodeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                encode(members[key] ?? .null, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// The size of `value`'s JSON text when no string needs escaping (a lower bound otherwise,
    /// plus a little room): what `encode` reserves.
    static func estimatedSize(_ value: SessionValue) -> Int {
        switch value {
        case .null, .bool: return 5
        case .number: return 24
        case .string(let string): return string.utf8.count + 2
        case .array(let elements):
            var size = 2 + elements.count
            for element in elements { size += estimatedSize(element) }
            return size
        case .object(let members):
            var size = 2 + 2 * members.count
            for (key, member) in members { size += key.utf8.count + 2 + estimatedSize(member) }
            return size
        }
    }

    static func encodeNumber(_ number: Double, into out: inout [UInt8]) {
        guard number.isFinite else {
            // lua-cjson refuses to encode inf and nan; null keeps the document valid.
            out.append(contentsOf: "null".utf8)
            return
        }
        if number.rounded() == number, abs(number) < 9_007_199_254_740_992 {
            out.append(contentsOf: String(Int64(number)).utf8)
        } else {
            out.append(contentsOf: "\(number)".utf8)
        }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// 1 for every byte lua-cjson escapes: `"`, `\\`, `/`, the controls and DEL.
    private static let needsEscape: [UInt8] = (0..<256).map { byte in
        switch byte {
        case 0x22, 0x5C, 0x2F, 0x00..<0x20, 0x7F: 1
        default: 0
        }
    }

    // MARK: eight bytes at a time

    private static let ones: UInt64 = 0x0101_0101_0101_0101
    static let highs: UInt64 = 0x8080_8080_8080_8080

    /// A high bit set in each byte of `word` that equals `byte` (may also flag a 0x01 byte
    /// above a match; callers re-check byte by byte, so a false alarm only costs time).
    @inline(__always)
    private static func matches(_ word: UInt64, equalTo byte: UInt8) -> UInt64 {
        let x = word ^ (ones &* UInt64(byte))
        return (x &- ones) & ~x & highs
    }

    /// A high bit set in each byte of `word` below `limit` (≤ 0x80), same caveat.
    @inline(__always)
    private static func matches(_ word: UInt64, below limit: UInt8) -> UInt64 {
        (word &- ones &* UInt64(limit)) & ~word & highs
    }

    @inline(__always)
    private static func load(_ bytes: UnsafeBufferPointer<UInt8>, _ index: Int) -> UInt64 {
        UInt64(littleEndian: UnsafeRawPointer(bytes.baseAddress! + index).loadUnaligned(as: UInt64.self))
    }

    // Sixteen at a time: the same word tricks on a pair of words (vector integer operations;
    // comparisons of `SIMD16<UInt8>` compile to a byte-by-byte loop).

    @inline(__always)
    private static func load16(_ bytes: UnsafeBufferPointer<UInt8>, _ index: Int) -> SIMD2<UInt64> {
        UnsafeRawPointer(bytes.baseAddress! + index).loadUnaligned(as: SIMD2<UInt64>.self)
    }

    @inline(__always)
    private static func splat(_ byte: UInt8) -> SIMD2<UInt64> {
        SIMD2(repeating: ones &* UInt64(byte))
    }

    /// A high bit in each zero byte (same caveat as `matches`).
    @inline(__always)
    private static func zeroBytes(_ pair: SIMD2<UInt64>) -> SIMD2<UInt64> {
        (pair &- SIMD2(repeating: ones)) & ~pair & SIMD2(repeating: highs)
    }

    /// A high bit in each byte below `limit` (≤ 0x80, same caveat).
    @inline(__always)
    private static func belowBytes(_ pair: SIMD2<UInt64>, _ limit: UInt8) -> SIMD2<UInt64> {
        (pair &- splat(limit)) & ~pair & SIMD2(repeating: highs)
    }

    /// The index of the first 8-byte word, from `index`, holding a `"`, a `\\` or a control
    /// character (the parser's stop bytes); `bytes.count` rounded down otherwise.
    static func skipPlainBytes(_ bytes: UnsafeBufferPointer<UInt8>, from index: Int) -> Int {
        var seen: UInt64 = 0
        return skipPlainBytes(bytes, from: index, seen: &seen)
    }

    /// The same, OR-ing every byte it steps over into `seen` (a high bit there: not ASCII).
    static func skipPlainBytes(_ bytes: UnsafeBufferPointer<UInt8>, from index: Int, seen: inout UInt64) -> Int {
        var index = index
        var seenPair = SIMD2<UInt64>()
        // sixteen at a time, then the word that holds the stop
        while index + 16 <= bytes.count {
            let pair = load16(bytes, index)
            let stop = zeroBytes(pair ^ splat(0x22)) | zeroBytes(pair ^ splat(0x5C)) | belowBytes(pair, 0x20)
            if stop[0] | stop[1] != 0 { break }
            seenPair |= pair
            index += 16
        }
        seen |= seenPair[0] | seenPair[1]
        while index + 8 <= bytes.count {
            let word = load(bytes, index)
            if matches(word, equalTo: 0x22) | matches(word, equalTo: 0x5C) | matches(word, below: 0x20) != 0 { break }
            seen |= word
            index += 8
        }
        return index
    }

    /// The same for the encoder's escapes: also `/` and DEL.
    static func skipUnescapedBytes(_ bytes: UnsafeBufferPointer<UInt8>, from index: Int) -> Int {
        var index = index
        while index + 16 <= bytes.count {
            let pair = load16(bytes, index)
            let stop = zeroBytes(pair ^ splat(0x22)) | zeroBytes(pair ^ splat(0x5C)) | zeroBytes(pair ^ splat(0x2F))
                | zeroBytes(pair ^ splat(0x7F)) | belowBytes(pair, 0x20)
            if stop[0] | stop[1] != 0 { break }
            index += 16
        }
        while index + 8 <= bytes.count {
            let word = load(bytes, index)
            let stop = matches(word, equalTo: 0x22) | matches(word, equalTo: 0x5C) | matches(word, equalTo: 0x2F)
                | matches(word, equalTo: 0x7F) | matches(word, below: 0x20)
            if stop != 0 { break }
            index += 8
        }
        return index
    }

    /// A string of `bytes`, or `nil` when they are not valid UTF-8. ASCII, the common case,
    /// takes the stdlib's non-generic path (`String(validating:)` looks up generic metadata per
    /// call).
    static func makeString(validating bytes: UnsafeBufferPointer<UInt8>) -> String? {
        if isASCII(bytes) { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Whether every byte is below 128, eight at a time (also deflate's literal count).
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        var seenPair = SIMD2<UInt64>()
        while index + 16 <= bytes.count {
            seenPair |= load16(bytes, index)
            index += 16
        }
        var seen: UInt64 = seenPair[0] | seenPair[1]
        while index + 8 <= bytes.count {
            seen |= load(bytes, index)
            index += 8
        }
        while index < bytes.count {
            seen |= UInt64(bytes[index])
            index += 1
        }
        return seen & highs == 0
    }

    static func encodeString(_ string: String, into out: inout [UInt8]) {
        var string = string
        string.withUTF8 { encodeString(utf8: $0, into: &out) }
    }

    /// Copies runs of bytes that need no escape in one go.
    static func encodeString(utf8 bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + bytes.count + 2)
        out.append(UInt8(ascii: "\""))
        needsEscape.withUnsafeBufferPointer { needsEscape in
            var runStart = 0
            var index = 0
            let count = bytes.count
            while index < count {
                index = skipUnescapedBytes(bytes, from: index)
                guard index < count else { break }
                let byte = bytes[index]
                if needsEscape[Int(byte)] == 0 {
                    index += 1
                    continue
                }
                if runStart < index { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index])) }
                switch byte {
                case UInt8(ascii: "\""): out.append(0x5C); out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C); out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x5C); out.append(0x2F)
                case 0x08: out.append(0x5C); out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(0x5C); out.append(UInt8(ascii: "f"))
                case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
                case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
                default:
                    out.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    out.append(hex[Int(byte >> 4)])
                    out.append(hex[Int(byte & 0x0F)])
                }
                index += 1
                runStart = index
            }
            if runStart < count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<count])) }
        }
        out.append(UInt8(ascii: "\""))
    }

    // MARK: decoding

    static func decode<Bytes: Collection>(_ bytes: Bytes) -> SessionValue? where Bytes.Element == UInt8 {
        if let value = bytes.withContiguousStorageIfAvailable({ decode(buffer: $0) }) { return value }
        return Array(bytes).withUnsafeBufferPointer { decode(buffer: $0) }
    }

    /// Parses a whole JSON text; `nil` if it is malformed or has anything after the value.
    static func decode(buffer: UnsafeBufferPointer<UInt8>) -> SessionValue? {
        var parser = Parser(bytes: buffer)
        guard let value = parser.value(depth: 0) else { return nil }
        parser.skipWhitespace()
        guard parser.position == parser.bytes.count else { return nil }
        return value
    }

    /// A recursive-descent parser over a buffer that outlives it (only used inside `decode`).
    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) -> SessionValue? {
            guard depth <= SessionJSON.maximumDepth else { return nil }
            skipWhitespace()
            guard position < bytes.count else { return nil }
            switch bytes[position] {
            case UInt8(ascii: "{"): return object(depth: depth)
            case UInt8(ascii: "["): return array(depth: depth)
            case UInt8(ascii: "\""): return string().map(SessionValue.string)
            case UInt8(ascii: "t"): return literal("true", .bool(true))
            case UInt8(ascii: "f"): return literal("false", .bool(false))
            case UInt8(ascii: "n"): return literal("null", .null)
            default: return number()
            }
        }

        mutating func literal(_ text: StaticString, _ value: SessionValue) -> SessionValue? {
            let count = text.utf8CodeUnitCount
            guard bytes.count - position >= count else { return nil }
            let matches = text.withUTF8Buffer { expected in
                (0..<count).allSatisfy { bytes[position + $0] == expected[$0] }
            }
            guard matches else { return nil }
            position += count
            return value
        }

        mutating func object(depth: Int) -> SessionValue? {
            position += 1
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object([:])
            }
            // room for a few members at once (an empty dictionary reallocated at its first
            // and second insertions)
            var members = [String: SessionValue](minimumCapacity: 4)
            while true {
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\""), let key = string() else { return nil }
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { return nil }
                position += 1
                guard let member = value(depth: depth + 1) else { return nil }
                members[key] = member
                skipWhitespace()
                guard position < bytes.count else { return nil }
                if bytes[position] == UInt8(ascii: ",") {
                    position += 1
                } else if bytes[position] == UInt8(ascii: "}") {
                    position += 1
                    return .object(members)
                } else {
                    return nil
                }
            }
        }

        mutating func array(depth: Int) -> SessionValue? {
            position += 1
            var elements: [SessionValue] = []
            // the session's arrays are short (entries, [data, audience, subject], the stored
            // [ciphertext, info]): one allocation instead of one per doubling
            elements.reserveCapacity(4)
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                guard let element = value(depth: depth + 1) else { return nil }
                elements.append(element)
                skipWhitespace()
                guard position < bytes.count else { return nil }
                if bytes[position] == UInt8(ascii: ",") {
                    position += 1
                } else if bytes[position] == UInt8(ascii: "]") {
                    position += 1
                    return .array(elements)
                } else {
                    return nil
                }
            }
        }

        mutating func string() -> String? {
            position += 1
            // the common case: no escapes before the closing quote, one validated copy (and
            // for ASCII, known from the scan, the stdlib's ASCII path without a second check)
            var seen: UInt64 = 0
            var end = SessionJSON.skipPlainBytes(bytes, from: position, seen: &seen)
            while end < bytes.count {
                let byte = bytes[end]
                if byte == UInt8(ascii: "\"") {
                    let run = UnsafeBufferPointer(rebasing: bytes[position..<end])
                    let text = seen & SessionJSON.highs == 0
                        ? String(decoding: run, as: UTF8.self)
                        : String(validating: run, as: UTF8.self)
                    position = end + 1
                    return text
                }
                if byte == UInt8(ascii: "\\") || byte < 0x20 { break }
                seen |= UInt64(byte)
                end += 1
            }
            var out: [UInt8] = []
            out.reserveCapacity(end - position + 16)
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return out.withUnsafeBufferPointer { SessionJSON.makeString(validating: $0) }
                case UInt8(ascii: "\\"):
                    guard position < bytes.count else { return nil }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"),
                                  bytes[position + 1] == UInt8(ascii: "u")
                            else { return nil }
                            position += 2
                            guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            return nil
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { return nil }
                        out.append(contentsOf: Array(String(Character(unicode)).utf8))
                    default:
                        return nil
                    }
                case 0x00..<0x20:
                    return nil
                default:
                    out.append(byte)
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard bytes.count - position >= 4 else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                position += 1
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }

        mutating func number() -> SessionValue? {
            let start = position
            if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard digits(leadingZeroAllowed: false) else { return nil }
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                position += 1
                guard digits(leadingZeroAllowed: true) else { return nil }
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                    position += 1
                }
                guard digits(leadingZeroAllowed: true) else { return nil }
            }
            // an integer of at most 15 digits is exact in a Double: no text, no strtod
            let digitsStart = bytes[start] == UInt8(ascii: "-") ? start + 1 : start
            if position - digitsStart <= 15, !bytes[digitsStart..<position].contains(where: { $0 < UInt8(ascii: "0") || $0 > UInt8(ascii: "9") }) {
                var value = 0
                for index in digitsStart..<position { value = value &* 10 &+ Int(bytes[index] &- UInt8(ascii: "0")) }
                // -0 stays a negative zero, as strtod reads it
                return .number(digitsStart > start ? -Double(value) : Double(value))
            }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            guard let number = Double(text), number.isFinite else { return nil }
            return .number(number)
        }

        mutating func digits(leadingZeroAllowed: Bool) -> Bool {
            let start = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                position += 1
            }
            let count = position - start
            guard count > 0 else { return false }
            if !leadingZeroAllowed, count > 1, bytes[start] == UInt8(ascii: "0") { return false }
            return true
        }
    }
}
