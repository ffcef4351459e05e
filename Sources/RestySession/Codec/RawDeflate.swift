/// An encoder of raw DEFLATE streams (RFC 1951, no wrapper): greedy LZ77 matching over a
/// 32 KiB window, emitted as one block with the fixed Huffman codes. Any raw-deflate
/// decoder (zlib with `windowBits = -15`, as lua-resty-session uses) reads it.
///
/// The session core compares the result with the input's size and keeps the smaller, as
/// lua-resty-session does, so incompressible data costs nothing; ``deflate(_:ifSmallerThan:)``
/// sizes the block before writing it and gives up when it would not be smaller.
///
/// Runs on raw buffers with precomputed (bit-reversed) codes. Like LZ4, it searches less often
/// the longer it goes without finding a match (every second position after 32 misses in a
/// row, every third after 64, …), which makes incompressible input (random ids, ciphertext,
/// base64) cheap while costing almost nothing on text that repeats itself.
enum RawDeflate {
    private static let windowSize = 32_768
    private static let minimumMatch = 3
    private static let maximumMatch = 258
    private static let maximumHashBits = 15
    private static let maximumChainLength = 64
    /// One more byte skipped per 32 misses in a row.
    private static let missesPerSkipShift = 5

    /// Compresses `input` into a single final fixed-Huffman block.
    static func deflate(_ input: [UInt8]) -> [UInt8] {
        compress(input, limit: .max)!
    }

    /// Compresses `input`, or returns `nil` once the output would be `limit` bytes or more.
    static func deflate(_ input: [UInt8], ifSmallerThan limit: Int) -> [UInt8]? {
        compress(input, limit: limit)
    }

    // MARK: codes (RFC 1951 §3.2.5–3.2.6), bit-reversed for an LSB-first writer

    /// Literal/length symbol → `reversedCode << 8 | length`.
    private static let literalCodes: [UInt32] = (0..<288).map { symbol in
        let (code, length): (Int, Int) = switch symbol {
        case 0..<144: (0x30 + symbol, 8)
        case 144..<256: (0x190 + symbol - 144, 9)
        case 256..<280: (symbol - 256, 7)
        default: (0xC0 + symbol - 280, 8)
        }
        return UInt32(reversed(code, length: length)) << 8 | UInt32(length)
    }

    /// Match length (index = length) → `extraValue << 16 | lengthSymbolIndex`; 0 below 3.
    private static let lengthCodes: [UInt32] = (0...maximumMatch).map { length in
        guard length >= minimumMatch else { return 0 }
        var index = RawInflate.Tables.lengthBase.count - 1
        while RawInflate.Tables.lengthBase[index] > length { index -= 1 }
        return UInt32(length - RawInflate.Tables.lengthBase[index]) << 16 | UInt32(index)
    }

    /// Distance code index of `distance - 1` for distances up to 256, and of
    /// `256 + (distance - 1) >> 7` above (every base above 256 is 1 + a multiple of 128).
    private static let distanceCodes: [UInt8] = (0..<512).map { slot in
        let distance = slot < 256 ? slot + 1 : ((slot - 256) << 7) + 1
        guard slot < 256 || slot >= 258 else { return 0 }
        var index = RawInflate.Tables.distanceBase.count - 1
        while RawInflate.Tables.distanceBase[index] > distance { index -= 1 }
        return UInt8(index)
    }

    /// The 5-bit distance codes, bit-reversed.
    private static let reversedDistanceCodes: [UInt32] = (0..<30).map { UInt32(reversed($0, length: 5)) }

    private static let lengthExtraBits: [UInt32] = RawInflate.Tables.lengthExtra.map(UInt32.init)
    private static let distanceBases: [UInt32] = RawInflate.Tables.distanceBase.map(UInt32.init)
    private static let distanceExtraBits: [UInt32] = RawInflate.Tables.distanceExtra.map(UInt32.init)

    private static func reversed(_ code: Int, length: Int) -> Int {
        var result = 0
        for bit in 0..<length where code & (1 << (length - 1 - bit)) != 0 { result |= 1 << bit }
        return result
    }

    // MARK: compression

    /// A match found by the LZ77 pass.
    private struct Match {
        var position: Int32
        var length: Int32
        var distance: Int32
    }

    /// Two passes: the LZ77 pass finds the matches and adds up the exact size of the block
    /// with the fixed codes; only when that is under `limit` are the bits written.
    /// Incompressible input so costs one light scan and no output.
    private static func compress(_ input: [UInt8], limit: Int) -> [UInt8]? {
        let count = input.count
        // a match covers at least 3 bytes
        let matches = UnsafeMutablePointer<Match>.allocate(capacity: count / minimumMatch + 1)
        defer { matches.deallocate() }
        return input.withUnsafeBufferPointer { source -> [UInt8]? in
            let (matchCount, bits) = findMatches(source, into: matches)
            let size = (bits + 7) / 8
            guard size < limit else { return nil }
            return [UInt8](unsafeUninitializedCapacity: size + 8) { buffer, initialized in
                literalCodes.withUnsafeBufferPointer { literals in
                    var writer = BitWriter(base: buffer.baseAddress!)
                    writer.write(0b011, bits: 3)  // BFINAL = 1, BTYPE = 01 (fixed Huffman)
                    emit(source, matches: UnsafeBufferPointer(start: matches, count: matchCount), literals: literals, into: &writer)
                    let end = literals[256]
                    writer.write(end >> 8, bits: end & 0xFF)
                    initialized = writer.finish()
                    assert(initialized == size)
                }
            }
        }
    }

    /// The LZ77 pass: greedy matches into `matches`; returns their number and the size of
    /// the whole block in bits.
    private static func findMatches(_ source: UnsafeBufferPointer<UInt8>, into matches: UnsafeMutablePointer<Match>) -> (count: Int, bits: Int) {
        let count = source.count
        // header + end-of-block code
        var bits = 3 + 7
        guard count > 0 else { return (0, bits) }
        // A table about the input's size: session data is a few KiB, and filling a 32 Ki-entry
        // table for each cookie costs more than the matching itself.
        let hashBits = min(maximumHashBits, max(8, Int.bitWidth - count.leadingZeroBitCount))
        let hashSize = 1 << hashBits
        let hashShift = 32 - hashBits
        let head = UnsafeMutablePointer<Int32>.allocate(capacity: hashSize)
        head.initialize(repeating: -1, count: hashSize)
        // only positions that were inserted are ever read back, so no initialization needed
        let previous = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        defer {
            head.deallocate()
            previous.deallocate()
        }
        let bytes = source.baseAddress!

        @inline(__always) func hash(_ position: Int) -> Int {
            let value = UInt32(bytes[position]) | UInt32(bytes[position + 1]) << 8 | UInt32(bytes[position + 2]) << 16
            return Int((value &* 2_654_435_761) &>> UInt32(hashShift))
        }
        // Literals 0–143 take 8 bits, 144–255 take 9. They are counted once at the end, not
        // byte by byte: the bytes that no match covers, plus one bit for each of those that is
        // 144 or more (there are none in ASCII input, found a word at a time).
        let hasHighBytes = !SessionJSON.isASCII(source)
        @inline(__always) func highBytes(_ range: Range<Int>) -> Int {
            guard hasHighBytes else { return 0 }
            var high = 0
            for index in range where bytes[index] >= 144 { high += 1 }
            return high
        }
        var matchedBytes = 0
        var matchedHighBytes = 0

        let lastHashable = count - minimumMatch  // a position needs 3 bytes to be hashed
        var matchCount = 0
        var position = 0
        var misses = 0
        while position < count {
            var bestLength = 0
            var bestDistance = 0
            if position <= lastHashable {
                let slot = hash(position)
                let first = head[slot]
                var candidate = Int(first)
                previous[position] = first
                head[slot] = Int32(truncatingIfNeeded: position)
                var chain = maximumChainLength
                let longest = min(maximumMatch, count - position)
                while candidate >= 0, position - candidate <= windowSize, chain > 0 {
                    // a longer match must at least agree at the current best length
                    if bytes[candidate + bestLength] == bytes[position + bestLength] {
                        var length = 0
                        while length < longest, bytes[candidate + length] == bytes[position + length] { length += 1 }
                        if length > bestLength {
                            bestLength = length
                            bestDistance = position - candidate
                            if length == longest { break }
                        }
                    }
                    candidate = Int(previous[candidate])
                    chain -= 1
                }
            }
            if bestLength >= minimumMatch {
                matches[matchCount] = Match(
                    position: Int32(truncatingIfNeeded: position),
                    length: Int32(truncatingIfNeeded: bestLength),
                    distance: Int32(truncatingIfNeeded: bestDistance)
                )
                matchCount += 1
                let lengthIndex = Int(lengthCodes[bestLength] & 0xFFFF)
                bits += Int(literalCodes[257 + lengthIndex] & 0xFF) + Int(lengthExtraBits[lengthIndex])
                bits += 5 + Int(distanceExtraBits[distanceIndex(bestDistance)])
                let end = position + bestLength
                matchedBytes += bestLength
                matchedHighBytes += highBytes(position..<end)
                var next = position + 1
                while next < end, next <= lastHashable {
                    let slot = hash(next)
                    previous[next] = head[slot]
                    head[slot] = Int32(truncatingIfNeeded: next)
                    next += 1
                }
                position = end
                misses = 0
            } else {
                misses &+= 1
                // no match for a while: take the next few bytes as literals without searching.
                // (Wrapping arithmetic and a shift: the checked form, with a signed division,
                // made each probe of incompressible input ~40 % slower.)
                position = min(position &+ 1 &+ (misses &>> missesPerSkipShift), count)
            }
        }
        bits += 8 * (count - matchedBytes) + highBytes(0..<count) - matchedHighBytes
        return (matchCount, bits)
    }

    @inline(__always)
    private static func distanceIndex(_ distance: Int) -> Int {
        Int(distance <= 256 ? distanceCodes[distance - 1] : distanceCodes[256 + ((distance - 1) >> 7)])
    }

    /// Writes the literals between the matches, and the matches.
    private static func emit(
        _ source: UnsafeBufferPointer<UInt8>,
        matches: UnsafeBufferPointer<Match>,
        literals: UnsafeBufferPointer<UInt32>,
        into writer: inout BitWriter
    ) {
        var position = 0
        for match in matches {
            let matchStart = Int(match.position)
            while position < matchStart {
                let code = literals[Int(source[position])]
                writer.write(code >> 8, bits: code & 0xFF)
                position += 1
            }
            let length = Int(match.length)
            let lengthCode = lengthCodes[length]
            let lengthIndex = Int(lengthCode & 0xFFFF)
            let symbol = literals[257 + lengthIndex]
            writer.write(symbol >> 8, bits: symbol & 0xFF)
            writer.write(lengthCode >> 16, bits: lengthExtraBits[lengthIndex])
            let distance = Int(match.distance)
            let index = distanceIndex(distance)
            writer.write(reversedDistanceCodes[index], bits: 5)
            writer.write(UInt32(distance) - distanceBases[index], bits: distanceExtraBits[index])
            position += length
        }
        while position < source.count {
            let code = literals[Int(source[position])]
            writer.write(code >> 8, bits: code & 0xFF)
            position += 1
        }
    }

    /// Bits written least significant first into a buffer the caller sized.
    struct BitWriter {
        private let base: UnsafeMutablePointer<UInt8>
        private(set) var byteCount = 0
        private var buffer: UInt64 = 0
        private var bitCount: UInt32 = 0

        init(base: UnsafeMutablePointer<UInt8>) { self.base = base }

        /// Writes the low `bits` (≤ 16) bits of `value`.
        @inline(__always)
        mutating func write(_ value: UInt32, bits: UInt32) {
            buffer |= UInt64(value & ((1 &<< bits) &- 1)) &<< UInt64(bitCount)
            bitCount &+= bits
            if bitCount >= 32 {
                UnsafeMutableRawPointer(base + byteCount).storeBytes(of: UInt32(truncatingIfNeeded: buffer).littleEndian, as: UInt32.self)
                byteCount &+= 4
                buffer &>>= 32
                bitCount &-= 32
            }
        }

        /// Flushes the last partial byte; returns the number of bytes written.
        mutating func finish() -> Int {
            while bitCount > 0 {
                base[byteCount] = UInt8(truncatingIfNeeded: buffer)
                byteCount += 1
                buffer >>= 8
                bitCount = bitCount >= 8 ? bitCount - 8 : 0
            }
            return byteCount
        }
    }
}
