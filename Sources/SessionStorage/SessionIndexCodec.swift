/// The index encoding of the Memcached and memory backends, byte-compatible with
/// lua-resty-session.
///
/// An index is one string holding a sequence of entries, each either `KEY:EXP;` or `KEY;`.
/// EXP is the expiry time packed as 5 bytes unsigned little-endian, then base64url without
/// padding (7 characters). `KEY;` is a tombstone that cancels earlier entries of that key.
/// Reading walks the entries in order: a later entry for a key replaces an earlier one; an
/// entry whose EXP ≤ current time, and a tombstone, drop the key.
public enum SessionIndexCodec {
    /// The largest expiry representable in 5 bytes.
    public static let maximumExpiry = (1 << 40) - 1

    /// `KEY:EXP;`
    public static func entry(key: String, expiry: Int) -> String {
        key + ":" + encodeExpiry(expiry) + ";"
    }

    /// `KEY;`
    public static func tombstone(key: String) -> String {
        key + ";"
    }

    /// The 7-character base64url form of an expiry (5 bytes, little-endian).
    public static func encodeExpiry(_ expiry: Int) -> String {
        let value = UInt64(max(0, min(expiry, maximumExpiry)))
        var bytes = [UInt8](repeating: 0, count: 5)
        for index in 0..<5 { bytes[index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
        return Base64URL.encode(bytes)
    }

    /// Decodes a 7-character expiry; `nil` when it is not one.
    public static func decodeExpiry<S: StringProtocol>(_ text: S) -> Int? {
        guard text.utf8.count == 7, let bytes = Base64URL.decode(text), bytes.count == 5 else { return nil }
        var value = 0
        for (index, byte) in bytes.enumerated() { value |= Int(byte) << (8 * index) }
        return value
    }

    /// One decoded entry.
    public enum Entry: Sendable, Hashable {
        /// `KEY:EXP;`
        case live(key: String, expiry: Int)
        /// `KEY;`
        case tombstone(key: String)

        /// The entry's session key.
        public var key: String {
            switch self {
            case .live(let key, _), .tombstone(let key): key
            }
        }
    }

    /// Splits an index string into its entries; unparseable fragments are skipped.
    public static func entries(_ index: String) -> [Entry] {
        var result: [Entry] = []
        for raw in index.utf8.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: true) {
            guard let fragment = String(raw) else { continue }
            if let colon = fragment.lastIndex(of: ":") {
                let key = fragment[..<colon]
                let expiry = fragment[fragment.index(after: colon)...]
                guard !key.isEmpty, let value = decodeExpiry(expiry) else { continue }
                result.append(.live(key: String(key), expiry: value))
            } else {
                result.append(.tombstone(key: fragment))
            }
        }
        return result
    }

    /// The live sessions of an index at `currentTime`: key → expiry.
    public static func live(_ index: String, currentTime: Int) -> [String: Int] {
        live(entries: entries(index), currentTime: currentTime)
    }

    /// The live sessions of decoded entries at `currentTime`: key → expiry.
    public static func live(entries: [Entry], currentTime: Int) -> [String: Int] {
        var result: [String: Int] = [:]
        for entry in entries {
            switch entry {
            case .live(let key, let expiry):
                if expiry > currentTime { result[key] = expiry } else { result[key] = nil }
            case .tombstone(let key):
                result[key] = nil
            }
        }
        return result
    }

    /// The compacted form of a set of live sessions: one `KEY:EXP;` entry each, sorted by
    /// expiry then key (deterministic), and the latest expiry (0 when empty).
    public static func compact(_ live: [String: Int]) -> (index: String, latestExpiry: Int) {
        let sorted = live.sorted { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }
        var index = ""
        index.reserveCapacity(sorted.count * 52)
        for (key, expiry) in sorted { index += entry(key: key, expiry: expiry) }
        return (index, sorted.last?.value ?? 0)
    }

    /// The number of entries in an index string (its `;` count), a cheap measure of its length.
    public static func entryCount(_ index: String) -> Int {
        index.utf8.reduce(0) { $1 == UInt8(ascii: ";") ? $0 + 1 : $0 }
    }
}

/// base64url without padding (RFC 4648 §5), as lua-resty-session uses it.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = UInt8(index) }
        return table
    }()

    /// Encodes bytes without padding.
    public static func encode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        if let encoded = bytes.withContiguousStorageIfAvailable({ encode(buffer: $0) }) {
            return encoded
        }
        return Array(bytes).withUnsafeBufferPointer { encode(buffer: $0) }
    }

    /// Encodes bytes without padding (the concrete entry point: no generic dispatch per byte).
    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { encode(buffer: $0) }
    }

    /// Writes the text straight into the string's storage, one table lookup per character.
    private static func encode(buffer input: UnsafeBufferPointer<UInt8>) -> String {
        let count = (input.count * 4 + 2) / 3
        guard count > 0 else { return "" }
        return alphabet.withUnsafeBufferPointer { table in
            String(unsafeUninitializedCapacity: count) { out in
                var i = 0
                var o = 0
                let whole = input.count - input.count % 3
                while i < whole {
                    let b0 = input[i], b1 = input[i + 1], b2 = input[i + 2]
                    out[o] = table[Int(b0 >> 2)]
                    out[o + 1] = table[Int(((b0 & 0x03) << 4) | (b1 >> 4))]
                    out[o + 2] = table[Int(((b1 & 0x0F) << 2) | (b2 >> 6))]
                    out[o + 3] = table[Int(b2 & 0x3F)]
                    i += 3
                    o += 4
                }
                switch input.count - whole {
                case 1:
                    let b0 = input[i]
                    out[o] = table[Int(b0 >> 2)]
                    out[o + 1] = table[Int((b0 & 0x03) << 4)]
                    o += 2
                case 2:
                    let b0 = input[i], b1 = input[i + 1]
                    out[o] = table[Int(b0 >> 2)]
                    out[o + 1] = table[Int(((b0 & 0x03) << 4) | (b1 >> 4))]
                    out[o + 2] = table[Int((b1 & 0x0F) << 2)]
                    o += 3
                default:
                    break
                }
                return o
            }
        }
    }

    /// Decodes base64url without padding (trailing `=` tolerated); `nil` on any other character
    /// or an impossible length.
    public static func decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        var chars = Array(text.utf8)
        while chars.last == UInt8(ascii: "=") { chars.removeLast() }
        if chars.count % 4 == 1 { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = 0
        for char in chars {
            let value = reverse[Int(char)]
            if value == 0xFF { return nil }
            buffer = (buffer << 6) | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        return out
    }
}
