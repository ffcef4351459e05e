/// A decoder of raw DEFLATE streams (RFC 1951, no zlib or gzip wrapper), the format
/// lua-resty-session writes with `windowBits = -15` when a payload exceeds
/// `compression_threshold`.
///
/// Written for untrusted input: every read is bounds-checked, Huffman tables are validated
/// (over-subscribed or incomplete code sets are rejected where RFC 1951 forbids them), back
/// references may not reach before the start of the output, and the output is capped by
/// `limit`. Any problem is a thrown ``RawInflate/Failure``, never a trap.
enum RawInflate {
    /// Why a stream could not be inflated.
    enum Failure: Error, Hashable {
        case truncated
        case invalidBlockType
        case storedLengthMismatch
        case invalidCodeLengths
        case invalidSymbol
        case invalidDistance
        case outputLimitExceeded
    }

    /// Inflates `input`; bytes after the final block are ignored (as zlib does).
    static func inflate(_ input: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        var reader = BitReader(bytes: input)
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, max(64, input.count * 4)))
        var final = false
        while !final {
            final = try reader.bits(1) == 1
            switch try reader.bits(2) {
            case 0:
                try stored(&reader, into: &output, limit: limit)
            case 1:
                try codes(&reader, into: &output, limit: limit, lengths: Tables.fixedLengths, distances: Tables.fixedDistances)
            case 2:
                let (lengths, distances) = try dynamicTables(&reader)
                try codes(&reader, into: &output, limit: limit, lengths: lengths, distances: distances)
            default:
                throw .invalidBlockType
            }
        }
        return output
    }

    // MARK: blocks

    private static func stored(_ reader: inout BitReader, into output: inout [UInt8], limit: Int) throws(Failure) {
        reader.alignToByte()
        let length = try reader.bits(16)
        let complement = try reader.bits(16)
        guard length == (~complement & 0xFFFF) else { throw .storedLengthMismatch }
        guard output.count + length <= limit else { throw .outputLimitExceeded }
        try reader.copyBytes(length, into: &output)
    }

    private static func codes(
        _ reader: inout BitReader,
        into output: inout [UInt8],
        limit: Int,
        lengths: Huffman,
        distances: Huffman
    ) throws(Failure) {
        while true {
            let symbol = try lengths.decode(&reader)
            if symbol < 256 {
                guard output.count < limit else { throw .outputLimitExceeded }
                output.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                let index = symbol - 257
                guard index < Tables.lengthBase.count else { throw .invalidSymbol }
                let length = Tables.lengthBase[index] + (try reader.bits(Tables.lengthExtra[index]))
                let distanceSymbol = try distances.decode(&reader)
                guard distanceSymbol < Tables.distanceBase.count else { throw .invalidSymbol }
                let distance = Tables.distanceBase[distanceSymbol] + (try reader.bits(Tables.distanceExtra[distanceSymbol]))
                guard distance <= output.count else { throw .invalidDistance }
                guard output.count + length <= limit else { throw .outputLimitExceeded }
                var from = output.count - distance
                for _ in 0..<length {
                    output.append(output[from])
                    from += 1
                }
            }
        }
    }

    private static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    private static func dynamicTables(_ reader: inout BitReader) throws(Failure) -> (Huffman, Huffman) {
        let literalCount = try reader.bits(5) + 257
        let distanceCount = try reader.bits(5) + 1
        let codeLengthCount = try reader.bits(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else { throw .invalidCodeLengths }

        var codeLengthLengths = [Int](repeating: 0, count: 19)
        for index in 0..<codeLengthCount {
            codeLengthLengths[codeLengthOrder[index]] = try reader.bits(3)
        }
        let codeLengthCode = try Huffman(lengths: codeLengthLengths[...], allowIncomplete: false)

        var lengths = [Int](repeating: 0, count: literalCount + distanceCount)
        var index = 0
        while index < lengths.count {
            let symbol = try codeLengthCode.decode(&reader)
            if symbol < 16 {
                lengths[index] = symbol
                index += 1
                continue
            }
            var value = 0
            let repeatCount: Int
            switch symbol {
            case 16:
                guard index > 0 else { throw .invalidCodeLengths }
                value = lengths[index - 1]
                repeatCount = 3 + (try reader.bits(2))
            case 17:
                repeatCount = 3 + (try reader.bits(3))
            default:
                repeatCount = 11 + (try reader.bits(7))
            }
            guard index + repeatCount <= lengths.count else { throw .invalidCodeLengths }
            for _ in 0..<repeatCount {
                lengths[index] = value
                index += 1
            }
        }
        guard lengths[256] != 0 else { throw .invalidCodeLengths }
        // An incomplete literal/length code is only allowed when it has a single code (RFC 1951
        // permits one distance code of one bit; zlib accepts incomplete sets of one code).
        let literalLengths = lengths[0..<literalCount]
        let distanceLengths = lengths[literalCount...]
        let literal = try Huffman(
            lengths: literalLengths,
            allowIncomplete: literalLengths.count(where: { $0 != 0 }) == 1
        )
        let distance = try Huffman(
            lengths: distanceLengths,
            allowIncomplete: distanceLengths.count(where: { $0 != 0 }) <= 1
        )
        return (literal, distance)
    }

    // MARK: bits

    struct BitReader {
        let bytes: [UInt8]
        var position = 0
        var buffer: UInt32 = 0
        var count = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        /// Reads `n` (0...16) bits, least significant first.
        mutating func bits(_ n: Int) throws(Failure) -> Int {
            while count < n {
                guard position < bytes.count else { throw .truncated }
                buffer |= UInt32(bytes[position]) << UInt32(count)
                position += 1
                count += 8
            }
            let value = Int(buffer & ((UInt32(1) << UInt32(n)) - 1))
            buffer >>= UInt32(n)
            count -= n
            return value
        }

        /// Drops the bits left in the current byte (fewer than 8 are ever buffered).
        mutating func alignToByte() {
            buffer = 0
            count = 0
        }

        mutating func copyBytes(_ n: Int, into output: inout [UInt8]) throws(Failure) {
            guard n <= bytes.count - position else { throw .truncated }
            output.append(contentsOf: bytes[position..<(position + n)])
            position += n
        }
    }

    /// A canonical Huffman code as counts per length and symbols in code order; decoded one
    /// bit at a time (payloads are at most a few tens of kilobytes).
    struct Huffman {
        var counts = [Int](repeating: 0, count: 16)
        var symbols: [Int]

        init(lengths: ArraySlice<Int>, allowIncomplete: Bool) throws(Failure) {
            for length in lengths { counts[length] += 1 }
            var left = 1
            for length in 1..<16 {
                left <<= 1
                left -= counts[length]
                guard left >= 0 else { throw .invalidCodeLengths }
            }
            if left > 0 && !allowIncomplete { throw .invalidCodeLengths }
            var offsets = [Int](repeating: 0, count: 16)
            for length in 1..<15 { offsets[length + 1] = offsets[length] + counts[length] }
            symbols = [Int](repeating: 0, count: lengths.count)
            for (symbol, length) in lengths.enumerated() where length != 0 {
                symbols[offsets[length]] = symbol
                offsets[length] += 1
            }
        }

        func decode(_ reader: inout BitReader) throws(Failure) -> Int {
            var code = 0
            var first = 0
            var index = 0
            for length in 1..<16 {
                code |= try reader.bits(1)
                let count = counts[length]
                if code - first < count { return symbols[index + code - first] }
                index += count
                first += count
                first <<= 1
                code <<= 1
            }
            throw .invalidSymbol
        }
    }

    enum Tables {
        static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
        static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
        static let distanceBase = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
            4097, 6145, 8193, 12289, 16385, 24577,
        ]
        static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

        /// The fixed literal/length code lengths of RFC 1951 §3.2.6.
        static let fixedLiteralLengths: [Int] = (0..<288).map { symbol in
            switch symbol {
            case 0..<144: 8
            case 144..<256: 9
            case 256..<280: 7
            default: 8
            }
        }

        // Complete codes: construction cannot fail.
        static let fixedLengths = try! Huffman(lengths: fixedLiteralLengths[...], allowIncomplete: false)
        static let fixedDistances = try! Huffman(lengths: [Int](repeating: 5, count: 30)[...], allowIncomplete: true)
    }
}
