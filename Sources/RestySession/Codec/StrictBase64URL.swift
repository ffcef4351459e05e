/// base64url without padding, decoded strictly: only the 64 alphabet characters, no `=`, no
/// impossible lengths, and the unused low bits of the last character must be zero. So every
/// change to an encoded cookie changes the decoded bytes or is rejected; no two texts decode
/// to the same header.
enum StrictBase64URL {
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, char) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8.enumerated() {
            table[Int(char)] = UInt8(index)
        }
        return table
    }()

    static func decode<Bytes: Collection>(_ text: Bytes) -> [UInt8]? where Bytes.Element == UInt8 {
        let remainder = text.count % 4
        guard remainder != 1 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(text.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = 0
        for char in text {
            let value = reverse[Int(char)]
            guard value != 0xFF else { return nil }
            buffer = (buffer << 6) | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        guard buffer & ((UInt32(1) << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }
}
