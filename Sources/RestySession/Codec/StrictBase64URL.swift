/// base64url without padding, decoded strictly: only the 64 alphabet characters, no `=`, no
/// impossible lengths, and the unused low bits of the last character must be zero. So every
/// change to an encoded cookie changes the decoded bytes or is rejected; no two texts decode
/// to the same header.
enum StrictBase64URL {
    /// Alphabet character → 6-bit value; 0xFF for every other byte.
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, char) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8.enumerated() {
            table[Int(char)] = UInt8(index)
        }
        return table
    }()

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Each 12-bit value → its two characters, the first in the low byte (8 KiB): three bytes
    /// become four characters in two lookups.
    private static let pairs: [UInt16] = (0..<4096).map { value in
        UInt16(alphabet[value >> 6]) | UInt16(alphabet[value & 0x3F]) << 8
    }

    /// Character → its 6 bits already in place in the three bytes of a little-endian word, one
    /// table per position in a group of four; bit 24 set for every byte outside the alphabet.
    /// A group is the OR of four lookups: no shifts, one validity bit.
    private static let positioned: [UInt32] = {
        var tables = [UInt32](repeating: invalidBit, count: 4 * 256)
        for (index, char) in alphabet.enumerated() {
            let value = UInt32(index)
            tables[Int(char)] = value << 2
            tables[256 + Int(char)] = value >> 4 | (value & 0x0F) << 12
            tables[512 + Int(char)] = (value >> 2) << 8 | (value & 0x03) << 22
            tables[768 + Int(char)] = value << 16
        }
        return tables
    }()
    private static let invalidBit: UInt32 = 1 << 24

    /// The number of characters `count` bytes encode to (no padding): ceil(4n/3).
    static func encodedCount(_ count: Int) -> Int { (count * 4 + 2) / 3 }

    /// `bytes` as base64url without padding.
    static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        let count = encodedCount(bytes.count)
        guard count > 0 else { return "" }
        return String(unsafeUninitializedCapacity: count) { out in
            encode(bytes, into: out.baseAddress!)
            return count
        }
    }

    /// `bytes` as base64url without padding.
    static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { encode($0) }
    }

    /// Writes the `encodedCount(bytes.count)` characters of `bytes` to `out`. Six bytes → eight
    /// characters per step (one 8-byte load, four pair lookups, one 8-byte store), then three
    /// bytes → four, then the tail.
    static func encode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) {
        guard let input = bytes.baseAddress else { return }
        let count = bytes.count
        pairs.withUnsafeBufferPointer { pairs in
            let pairs = pairs.baseAddress!
            let output = UnsafeMutableRawPointer(out)
            var i = 0
            var o = 0
            // an 8-byte load for 6 bytes: stop while 8 remain
            while i + 8 <= count {
                let word = UInt64(bigEndian: input.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let c0 = UInt64(pairs[Int(truncatingIfNeeded: word >> 52)])
                let c1 = UInt64(pairs[Int(truncatingIfNeeded: (word >> 40) & 0xFFF)])
                let c2 = UInt64(pairs[Int(truncatingIfNeeded: (word >> 28) & 0xFFF)])
                let c3 = UInt64(pairs[Int(truncatingIfNeeded: (word >> 16) & 0xFFF)])
                output.storeBytes(of: (c0 | c1 << 16 | c2 << 32 | c3 << 48).littleEndian, toByteOffset: o, as: UInt64.self)
                i += 6
                o += 8
            }
            while i + 3 <= count {
                let value = Int(input.load(fromByteOffset: i, as: UInt8.self)) << 16
                    | Int(input.load(fromByteOffset: i + 1, as: UInt8.self)) << 8
                    | Int(input.load(fromByteOffset: i + 2, as: UInt8.self))
                let chars = UInt32(pairs[value >> 12]) | UInt32(pairs[value & 0xFFF]) << 16
                output.storeBytes(of: chars.littleEndian, toByteOffset: o, as: UInt32.self)
                i += 3
                o += 4
            }
            switch count - i {
            case 1:
                let value = Int(input.load(fromByteOffset: i, as: UInt8.self)) << 4
                output.storeBytes(of: UInt16(pairs[value]).littleEndian, toByteOffset: o, as: UInt16.self)
            case 2:
                let value = Int(input.load(fromByteOffset: i, as: UInt8.self)) << 10
                    | Int(input.load(fromByteOffset: i + 1, as: UInt8.self)) << 2
                output.storeBytes(of: UInt16(pairs[value >> 6]).littleEndian, toByteOffset: o, as: UInt16.self)
                out[o + 2] = UInt8(truncatingIfNeeded: pairs[(value & 0x3F) << 6])
            default:
                break
            }
        }
    }

    static func decode<Bytes: Collection>(_ text: Bytes) -> [UInt8]? where Bytes.Element == UInt8 {
        if let decoded = text.withContiguousStorageIfAvailable({ decode(buffer: $0) }) { return decoded }
        return Array(text).withUnsafeBufferPointer { decode(buffer: $0) }
    }

    /// Whether `byte` is one of the 64 characters.
    static func isAlphabet(_ byte: UInt8) -> Bool {
        reverse.withUnsafeBufferPointer { $0[Int(byte)] != 0xFF }
    }

    /// The number of bytes `count` characters decode to; `nil` for an impossible length.
    static func decodedCount(_ count: Int) -> Int? {
        let remainder = count % 4
        guard remainder != 1 else { return nil }
        return count / 4 * 3 + (remainder == 0 ? 0 : remainder - 1)
    }

    static func decode(buffer text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard let outputCount = decodedCount(text.count) else { return nil }
        var valid = true
        let output = [UInt8](unsafeUninitializedCapacity: outputCount) { out, initialized in
            valid = decode(buffer: text, into: UnsafeMutableRawBufferPointer(out))
            initialized = valid ? outputCount : 0
        }
        return valid ? output : nil
    }

    /// Decodes `text` into `out`, which must hold exactly `decodedCount(text.count)` bytes;
    /// whether `text` was valid. Eight characters → six bytes per step (two groups of four,
    /// each the OR of four positioned lookups, one 8-byte store), then four → three while a
    /// 4-byte store fits, then byte stores; the tail (2 or 3 characters) checked for non-zero
    /// unused bits. `out` may hold anything afterwards when `text` was invalid.
    static func decode(buffer text: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableRawBufferPointer) -> Bool {
        guard let outputCount = decodedCount(text.count) else { return false }
        precondition(out.count == outputCount, "the output must hold the decoded bytes exactly")
        guard let input = text.baseAddress, let output = out.baseAddress else { return true }
        let remainder = text.count % 4
        let fullGroups = text.count / 4
        return positioned.withUnsafeBufferPointer { tables in
            let t0 = tables.baseAddress!, t1 = t0 + 256, t2 = t0 + 512, t3 = t0 + 768
            @inline(__always) func lookup(_ at: Int) -> UInt32 {
                t0[Int(input[at])] | t1[Int(input[at + 1])] | t2[Int(input[at + 2])] | t3[Int(input[at + 3])]
            }
            var group = 0
            var bad: UInt32 = 0
            // two groups per step while an 8-byte store stays inside the output
            while group + 2 <= fullGroups, group * 3 + 8 <= outputCount {
                let first = lookup(group * 4), second = lookup(group * 4 + 4)
                bad |= first | second
                let word = UInt64(first & 0xFF_FFFF) | UInt64(second & 0xFF_FFFF) << 24
                output.storeBytes(of: word.littleEndian, toByteOffset: group * 3, as: UInt64.self)
                group += 2
            }
            while group < fullGroups, group * 3 + 4 <= outputCount {
                let word = lookup(group * 4)
                bad |= word
                output.storeBytes(of: word.littleEndian, toByteOffset: group * 3, as: UInt32.self)
                group += 1
            }
            while group < fullGroups {
                let word = lookup(group * 4)
                bad |= word
                out[group * 3] = UInt8(truncatingIfNeeded: word)
                out[group * 3 + 1] = UInt8(truncatingIfNeeded: word >> 8)
                out[group * 3 + 2] = UInt8(truncatingIfNeeded: word >> 16)
                group += 1
            }
            if remainder >= 2 {
                let at = fullGroups * 4
                var word = t0[Int(input[at])] | t1[Int(input[at + 1])]
                if remainder == 3 { word |= t2[Int(input[at + 2])] }
                bad |= word
                let written = fullGroups * 3
                out[written] = UInt8(truncatingIfNeeded: word)
                // the bits after the last whole byte must be zero
                if remainder == 2 {
                    if word & 0xFF00 != 0 { bad |= invalidBit }
                } else {
                    out[written + 1] = UInt8(truncatingIfNeeded: word >> 8)
                    if word & 0xFF_0000 != 0 { bad |= invalidBit }
                }
            }
            return bad & invalidBit == 0
        }
    }
}
