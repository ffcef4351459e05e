import NIOCore

/// Decodes RESP2 and RESP3 values from a byte stream.
///
/// A `NIOSingleStepByteToMessageDecoder`: ``decode(buffer:)`` returns `nil` while the next
/// value is incomplete and consumes nothing then, so a value split over any number of reads is
/// decoded once it is whole. Malformed input and input over the hard limits throw a
/// ``RESPDecodingError``; the connection must then be closed, as its framing is lost.
///
/// RESP3 attributes (`|`) are read and dropped; the value they annotate is returned.
public struct RESPDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    public typealias InboundOut = RESPValue

    /// Hard limits on what the decoder accepts.
    public struct Limits: Sendable, Hashable {
        /// The deepest nesting of aggregates (arrays, maps, sets, pushes, attributes).
        public var maximumDepth: Int
        /// The longest bulk string, blob error or verbatim string, in bytes (Redis's own
        /// `proto-max-bulk-len` defaults to 512 MiB).
        public var maximumBulkLength: Int
        /// The most elements one aggregate may declare (a map counts its pairs).
        public var maximumAggregateCount: Int
        /// The longest line of a simple string, error, number or header, in bytes.
        public var maximumLineLength: Int

        /// Creates limits.
        public init(
            maximumDepth: Int = 32,
            maximumBulkLength: Int = 512 * 1024 * 1024,
            maximumAggregateCount: Int = 16 * 1024 * 1024,
            maximumLineLength: Int = 64 * 1024
        ) {
            self.maximumDepth = maximumDepth
            self.maximumBulkLength = maximumBulkLength
            self.maximumAggregateCount = maximumAggregateCount
            self.maximumLineLength = maximumLineLength
        }
    }

    /// The limits this decoder enforces.
    public let limits: Limits

    /// Creates a decoder.
    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        var copy = buffer
        guard let value = try Self.parse(&copy, depth: 0, limits: limits) else {
            return nil
        }
        buffer.moveReaderIndex(to: copy.readerIndex)
        return value
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try decode(buffer: &buffer)
    }

    // MARK: parsing

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// Parses one value from `buffer`, moving its reader index past it; `nil` when incomplete
    /// (the reader index is then meaningless: the caller discards the copy).
    private static func parse(_ buffer: inout ByteBuffer, depth: Int, limits: Limits) throws -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return try readLine(&buffer, limits: limits).map { .simpleString($0) }
        case UInt8(ascii: "-"):
            return try readLine(&buffer, limits: limits).map { .error(RESPError(message: String(buffer: $0))) }
        case UInt8(ascii: ":"):
            guard let line = try readLine(&buffer, limits: limits) else { return nil }
            return .integer(try integer(line))
        case UInt8(ascii: "$"):
            guard let length = try readLength(&buffer, limits: limits, allowNull: true) else { return nil }
            guard length >= 0 else { return .bulkString(nil) }
            return try readBlob(&buffer, length: length, limits: limits).map { .bulkString($0) }
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
            guard let count = try readCount(&buffer, limits: limits, allowNull: type == UInt8(ascii: "*")) else {
                return nil
            }
            guard count >= 0 else { return .array(nil) }
            guard let elements = try readElements(&buffer, count: count, depth: depth, limits: limits) else {
                return nil
            }
            switch type {
            case UInt8(ascii: "*"): return .array(elements)
            case UInt8(ascii: "~"): return .set(elements)
            default: return .push(elements)
            }
        case UInt8(ascii: "%"), UInt8(ascii: "|"):
            guard let count = try readCount(&buffer, limits: limits, allowNull: false) else { return nil }
            guard let elements = try readElements(&buffer, count: count * 2, depth: depth, limits: limits) else {
                return nil
            }
            if type == UInt8(ascii: "|") {
                // An attribute annotates the value that follows it; this client has no use for
                // it. It counts as a level, so a chain of attributes cannot recurse unbounded.
                return try parse(&buffer, depth: depth + 1, limits: limits)
            }
            var entries: [RESPMapEntry] = []
            entries.reserveCapacity(count)
            var index = 0
            while index < elements.count {
                entries.append(RESPMapEntry(key: elements[index], value: elements[index + 1]))
                index += 2
            }
            return .map(entries)
        case UInt8(ascii: "_"):
            guard let line = try readLine(&buffer, limits: limits) else { return nil }
            guard line.readableBytes == 0 else { throw RESPDecodingError(.malformedNull) }
            return .null
        case UInt8(ascii: ","):
            guard let line = try readLine(&buffer, limits: limits) else { return nil }
            return .double(try double(line))
        case UInt8(ascii: "#"):
            guard let line = try readLine(&buffer, limits: limits) else { return nil }
            switch line.readableBytesView.first {
            case UInt8(ascii: "t") where line.readableBytes == 1: return .boolean(true)
            case UInt8(ascii: "f") where line.readableBytes == 1: return .boolean(false)
            default: throw RESPDecodingError(.malformedBoolean)
            }
        case UInt8(ascii: "("):
            guard let line = try readLine(&buffer, limits: limits) else { return nil }
            let text = String(buffer: line)
            let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                throw RESPDecodingError(.malformedNumber)
            }
            return .bigNumber(text)
        case UInt8(ascii: "!"):
            guard let length = try readLength(&buffer, limits: limits, allowNull: false) else { return nil }
            return try readBlob(&buffer, length: length, limits: limits).map { .error(RESPError(message: String(buffer: $0))) }
        case UInt8(ascii: "="):
            guard let length = try readLength(&buffer, limits: limits, allowNull: false) else { return nil }
            guard var blob = try readBlob(&buffer, length: length, limits: limits) else { return nil }
            guard length >= 4, let format = blob.readString(length: 3), blob.readInteger(as: UInt8.self) == UInt8(ascii: ":")
            else {
                throw RESPDecodingError(.malformedVerbatimString)
            }
            return .verbatimString(format: format, text: blob)
        default:
            throw RESPDecodingError(.unknownType)
        }
    }

    private static func readElements(
        _ buffer: inout ByteBuffer,
        count: Int,
        depth: Int,
        limits: Limits
    ) throws -> [RESPValue]? {
        guard depth + 1 <= limits.maximumDepth else { throw RESPDecodingError(.depthExceeded) }
        var elements: [RESPValue] = []
        // Reserve no more than what the bytes at hand could hold: a declared count is no promise.
        elements.reserveCapacity(min(count, buffer.readableBytes / 3 + 1))
        for _ in 0..<count {
            guard let element = try parse(&buffer, depth: depth + 1, limits: limits) else { return nil }
            elements.append(element)
        }
        return elements
    }

    /// The bytes up to the next CRLF (exclusive), consuming the CRLF.
    private static func readLine(_ buffer: inout ByteBuffer, limits: Limits) throws -> ByteBuffer? {
        let view = buffer.readableBytesView
        guard let crIndex = view.firstIndex(of: cr) else {
            if view.count > limits.maximumLineLength { throw RESPDecodingError(.lineTooLong) }
            return nil
        }
        let length = crIndex - view.startIndex
        if length > limits.maximumLineLength { throw RESPDecodingError(.lineTooLong) }
        guard buffer.readableBytes >= length + 2 else { return nil }
        guard buffer.getInteger(at: crIndex + 1, as: UInt8.self) == lf else {
            throw RESPDecodingError(.missingCRLF)
        }
        let line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    private static func readLength(_ buffer: inout ByteBuffer, limits: Limits, allowNull: Bool) throws -> Int? {
        guard let line = try readLine(&buffer, limits: limits) else { return nil }
        let value = try integer(line)
        if value == -1 && allowNull { return -1 }
        guard value >= 0 else { throw RESPDecodingError(.invalidLength) }
        guard value <= limits.maximumBulkLength else { throw RESPDecodingError(.bulkTooLong) }
        return Int(value)
    }

    private static func readCount(_ buffer: inout ByteBuffer, limits: Limits, allowNull: Bool) throws -> Int? {
        guard let line = try readLine(&buffer, limits: limits) else { return nil }
        if line.readableBytesView.first == UInt8(ascii: "?") {
            // RESP3 streamed aggregates: Redis never sends them.
            throw RESPDecodingError(.unsupportedStreaming)
        }
        let value = try integer(line)
        if value == -1 && allowNull { return -1 }
        guard value >= 0 else { throw RESPDecodingError(.invalidLength) }
        guard value <= limits.maximumAggregateCount else { throw RESPDecodingError(.aggregateTooLarge) }
        return Int(value)
    }

    private static func readBlob(_ buffer: inout ByteBuffer, length: Int, limits: Limits) throws -> ByteBuffer? {
        guard buffer.readableBytes >= length + 2 else { return nil }
        let blob = buffer.readSlice(length: length)!
        guard buffer.readInteger(as: UInt8.self) == cr, buffer.readInteger(as: UInt8.self) == lf else {
            throw RESPDecodingError(.missingCRLF)
        }
        return blob
    }

    private static func integer(_ line: ByteBuffer) throws -> Int64 {
        let view = line.readableBytesView
        guard !view.isEmpty, view.count <= 20 else { throw RESPDecodingError(.malformedNumber) }
        var index = view.startIndex
        var negative = false
        if view[index] == UInt8(ascii: "-") || view[index] == UInt8(ascii: "+") {
            negative = view[index] == UInt8(ascii: "-")
            index += 1
            guard index < view.endIndex else { throw RESPDecodingError(.malformedNumber) }
        }
        var result: Int64 = 0
        while index < view.endIndex {
            let byte = view[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                throw RESPDecodingError(.malformedNumber)
            }
            let digit = Int64(byte - UInt8(ascii: "0"))
            let (times10, overflow1) = result.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = negative ? times10.subtractingReportingOverflow(digit) : times10.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { throw RESPDecodingError(.malformedNumber) }
            result = sum
            index += 1
        }
        return result
    }

    private static func double(_ line: ByteBuffer) throws -> Double {
        let text = String(buffer: line)
        switch text {
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        case "nan", "-nan": return .nan
        default:
            guard let value = Double(text), !text.isEmpty else { throw RESPDecodingError(.malformedNumber) }
            return value
        }
    }
}

/// Bytes that are not valid RESP, or a value over the decoder's limits.
///
/// The connection's framing is lost after this error: the connection is closed.
public struct RESPDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong with the input.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case unknownType
            case malformedNumber
            case malformedNull
            case malformedBoolean
            case malformedVerbatimString
            case missingCRLF
            case invalidLength
            case lineTooLong
            case bulkTooLong
            case aggregateTooLarge
            case depthExceeded
            case unsupportedStreaming
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The first byte of a value is not a RESP2 or RESP3 type.
        public static let unknownType = Code(.unknownType)
        /// An integer, length, double or big number is not a number (or overflows).
        public static let malformedNumber = Code(.malformedNumber)
        /// A RESP3 null with content.
        public static let malformedNull = Code(.malformedNull)
        /// A RESP3 boolean other than `t` or `f`.
        public static let malformedBoolean = Code(.malformedBoolean)
        /// A verbatim string without its `xxx:` format.
        public static let malformedVerbatimString = Code(.malformedVerbatimString)
        /// A line or blob not terminated by CRLF.
        public static let missingCRLF = Code(.missingCRLF)
        /// A negative length other than the null marker `-1`.
        public static let invalidLength = Code(.invalidLength)
        /// A line over ``RESPDecoder/Limits/maximumLineLength``.
        public static let lineTooLong = Code(.lineTooLong)
        /// A blob over ``RESPDecoder/Limits/maximumBulkLength``.
        public static let bulkTooLong = Code(.bulkTooLong)
        /// An aggregate over ``RESPDecoder/Limits/maximumAggregateCount``.
        public static let aggregateTooLarge = Code(.aggregateTooLarge)
        /// Aggregates nested deeper than ``RESPDecoder/Limits/maximumDepth``.
        public static let depthExceeded = Code(.depthExceeded)
        /// A RESP3 streamed aggregate or string (`*?`), which this client does not accept.
        public static let unsupportedStreaming = Code(.unsupportedStreaming)

        public var description: String { base.rawValue }
    }

    /// What was wrong.
    public var code: Code

    /// Creates an error.
    public init(_ code: Code) {
        self.code = code
    }

    public var description: String { "RESPDecodingError(\(code))" }
}
