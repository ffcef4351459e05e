/// An encoder of raw DEFLATE streams (RFC 1951, no wrapper): greedy LZ77 matching over a
/// 32 KiB window, emitted as one block with the fixed Huffman codes. Any raw-deflate
/// decoder (zlib with `windowBits = -15`, as lua-resty-session uses) reads it.
///
/// The session core compares the result with the input's size and keeps the smaller, as
/// lua-resty-session does, so incompressible data costs nothing.
enum RawDeflate {
    private static let windowSize = 32_768
    private static let minimumMatch = 3
    private static let maximumMatch = 258
    private static let maximumHashBits = 15
    private static let maximumChainLength = 64

    /// Compresses `input` into a single final fixed-Huffman block.
    static func deflate(_ input: [UInt8]) -> [UInt8] {
        var writer = BitWriter()
        writer.reserve(input.count / 2 + 16)
        writer.write(1, count: 1)  // BFINAL
        writer.write(1, count: 2)  // BTYPE = 01, fixed Huffman

        let count = input.count
        // A table about the input's size: session data is a few KiB, and filling a 32 Ki-entry
        // table for each cookie cost more than the matching itself.
        let hashBits = min(maximumHashBits, max(8, Int.bitWidth - count.leadingZeroBitCount))
        let hashSize = 1 << hashBits
        var head = [Int32](repeating: -1, count: hashSize)
        var previous = [Int32](repeating: -1, count: count)

        func hash(at position: Int) -> Int {
            let value = (Int(input[position]) << 10) ^ (Int(input[position + 1]) << 5) ^ Int(input[position + 2])
            return (value &* 2_654_435_761) >> 7 & (hashSize - 1)
        }
        func insert(at position: Int) {
            guard position + minimumMatch <= count else { return }
            let slot = hash(at: position)
            previous[position] = head[slot]
            head[slot] = Int32(position)
        }

        var position = 0
        while position < count {
            var bestLength = 0
            var bestDistance = 0
            if position + minimumMatch <= count {
                var candidate = Int(head[hash(at: position)])
                var chain = maximumChainLength
                let limit = min(maximumMatch, count - position)
                while candidate >= 0, position - candidate <= windowSize, chain > 0 {
                    var length = 0
                    while length < limit, input[candidate + length] == input[position + length] { length += 1 }
                    if length > bestLength {
                        bestLength = length
                        bestDistance = position - candidate
                        if length == limit { break }
                    }
                    candidate = Int(previous[candidate])
                    chain -= 1
                }
            }
            if bestLength >= minimumMatch {
                writeLength(bestLength, &writer)
                writeDistance(bestDistance, &writer)
                for offset in 0..<bestLength { insert(at: position + offset) }
                position += bestLength
            } else {
                writeLiteral(Int(input[position]), &writer)
                insert(at: position)
                position += 1
            }
        }
        writeLiteral(256, &writer)
        return writer.finish()
    }

    // MARK: fixed codes (RFC 1951 §3.2.6)

    private static func writeLiteral(_ symbol: Int, _ writer: inout BitWriter) {
        switch symbol {
        case 0..<144: writer.writeCode(0x30 + symbol, length: 8)
        case 144..<256: writer.writeCode(0x190 + symbol - 144, length: 9)
        case 256..<280: writer.writeCode(symbol - 256, length: 7)
        default: writer.writeCode(0xC0 + symbol - 280, length: 8)
        }
    }

    private static func writeLength(_ length: Int, _ writer: inout BitWriter) {
        var index = RawInflate.Tables.lengthBase.count - 1
        while RawInflate.Tables.lengthBase[index] > length { index -= 1 }
        writeLiteral(257 + index, &writer)
        writer.write(length - RawInflate.Tables.lengthBase[index], count: RawInflate.Tables.lengthExtra[index])
    }

    private static func writeDistance(_ distance: Int, _ writer: inout BitWriter) {
        var index = RawInflate.Tables.distanceBase.count - 1
        while RawInflate.Tables.distanceBase[index] > distance { index -= 1 }
        writer.writeCode(index, length: 5)
        writer.write(distance - RawInflate.Tables.distanceBase[index], count: RawInflate.Tables.distanceExtra[index])
    }

    struct BitWriter {
        private var bytes: [UInt8] = []
        private var buffer: UInt64 = 0
        private var count = 0

        mutating func reserve(_ capacity: Int) { bytes.reserveCapacity(capacity) }

        /// Writes `count` bits of `value`, least significant first (extra bits, headers).
        mutating func write(_ value: Int, count bits: Int) {
            guard bits > 0 else { return }
            buffer |= UInt64(value & ((1 << bits) - 1)) << UInt64(count)
            count += bits
            while count >= 8 {
                bytes.append(UInt8(truncatingIfNeeded: buffer))
                buffer >>= 8
                count -= 8
            }
        }

        /// Writes a Huffman code, most significant bit first.
        mutating func writeCode(_ code: Int, length: Int) {
            var reversed = 0
            for bit in 0..<length where code & (1 << (length - 1 - bit)) != 0 { reversed |= 1 << bit }
            write(reversed, count: length)
        }

        mutating func finish() -> [UInt8] {
            if count > 0 { bytes.append(UInt8(truncatingIfNeeded: buffer)) }
            buffer = 0
            count = 0
            return bytes
        }
    }
}
