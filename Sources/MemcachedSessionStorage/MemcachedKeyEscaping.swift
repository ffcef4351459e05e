/// The key escaping of lua-resty-memcached (`ngx.escape_uri`): RFC 3986 unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`) stay, every other byte of the UTF-8 form becomes `%XX`
/// with uppercase hex. So `sessions:session:K` is stored as `sessions%3Asession%3AK`, and
/// spaces and control characters never reach a memcached key.
public enum MemcachedKeyEscaping {
    /// The escaped form of `key`.
    public static func escape(_ key: String) -> String {
        escapeJoined(key, nil, nil, nil)
    }

    /// The escaped form of the non-`nil` parts joined by `:`, written in one pass (no joined
    /// string first): `escapeJoined(p, n, k, s)` equals `escape("p:n:k:s")`, each `:` becoming `%3A`.
    public static func escapeJoined(_ first: String?, _ second: String?, _ third: String?, _ fourth: String?) -> String {
        var parts = (first, second, third, fourth)
        let capacity =
            3 * ((first?.utf8.count ?? 0) + (second?.utf8.count ?? 0) + (third?.utf8.count ?? 0) + (fourth?.utf8.count ?? 0) + 3)
        return String(unsafeUninitializedCapacity: capacity) { target in
            var count = 0
            append(&parts.0, into: target, count: &count)
            append(&parts.1, into: target, count: &count)
            append(&parts.2, into: target, count: &count)
            append(&parts.3, into: target, count: &count)
            return count
        }
    }

    /// Escapes `part` into `target` at `count`, after a `%3A` when something was written already.
    @inline(__always)
    private static func append(_ part: inout String?, into target: UnsafeMutableBufferPointer<UInt8>, count: inout Int) {
        guard part != nil else { return }
        if count > 0 {
            target[count] = UInt8(ascii: "%")
            target[count + 1] = UInt8(ascii: "3")
            target[count + 2] = UInt8(ascii: "A")
            count += 3
        }
        part!.withUTF8 { source in
            for byte in source {
                if isUnreserved(byte) {
                    target[count] = byte
                    count += 1
                } else {
                    target[count] = UInt8(ascii: "%")
                    target[count + 1] = hexDigit(byte >> 4)
                    target[count + 2] = hexDigit(byte & 0x0F)
                    count += 3
                }
            }
        }
    }

    @inline(__always)
    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
    }

    /// Reverses ``escape(_:)``; `nil` for a malformed escape.
    public static func unescape(_ key: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = key.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
