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
    /// whether `text` was valid. Four characters → three bytes per step, on raw pointers; the
    /// tail (2 or 3 characters) checked for non-zero unused bits.
    static func decode(buffer text: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableRawBufferPointer) -> Bool {
        guard let outputCount = decodedCount(text.count) else { return false }
        precondition(out.count == outputCount, "the output must hold the decoded bytes exactly")
        let remainder = text.count % 4
        let fullGroups = text.count / 4
        return reverse.withUnsafeBufferPointer { table in
            var input = 0
            var written = 0
            var bad: UInt8 = 0
            for _ in 0..<fullGroups {
                let a = table[Int(text[input])], b = table[Int(text[input + 1])]
                let c = table[Int(text[input + 2])], d = table[Int(text[input + 3])]
                bad |= (a | b | c | d) & 0x80
                let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                out[written] = UInt8(truncatingIfNeeded: value >> 16)
                out[written + 1] = UInt8(truncatingIfNeeded: value >> 8)
                out[written + 2] = UInt8(truncatingIfNeeded: value)
                input += 4
                written += 3
            }
            if remainder >= 2 {
                let a = table[Int(text[input])], b = table[Int(text[input + 1])]
                let c = remainder == 3 ? table[Int(text[input + 2])] : 0
                bad |= (a | b | c) & 0x80
                let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c & 0x3F) << 6
                out[written] = UInt8(truncatingIfNeeded: value >> 16)
                // the bits after the last whole byte must be zero
                if remainder == 2 {
                    if value & 0xFFFF != 0 { bad |= 0x80 }
                } else {
                    out[written + 1] = UInt8(truncatingIfNeeded: value >> 8)
                    if value & 0xFF != 0 { bad |= 0x80 }
                }
                written += remainder - 1
            }
            return bad == 0
        }
    }
}
