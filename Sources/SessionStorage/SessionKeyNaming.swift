/// The key names of the key-value backends (Redis, Memcached, memory), exactly as
/// lua-resty-session's `utils.get_name` builds them: parts joined with `:`.
///
///     session record:  [prefix:]name:key[:suffix]
///     index record:    [prefix:]name:audience:subject[:suffix]
///
/// An empty prefix or suffix counts as absent.
public struct SessionKeyNaming: Sendable, Hashable {
    /// The optional first part of every key.
    public var prefix: String?
    /// The optional last part of every key.
    public var suffix: String?

    /// Creates a naming scheme; empty strings count as absent.
    public init(prefix: String? = nil, suffix: String? = nil) {
        self.prefix = prefix?.isEmpty == true ? nil : prefix
        self.suffix = suffix?.isEmpty == true ? nil : suffix
    }

    /// The key of a session record: `[prefix:]name:key[:suffix]`.
    public func recordKey(name: String, key: String) -> String {
        let prefix = prefix ?? ""
        let suffix = suffix ?? ""
        let hasPrefix = !prefix.isEmpty
        let hasSuffix = !suffix.isEmpty
        let count = prefix.utf8.count + name.utf8.count + key.utf8.count + suffix.utf8.count + 1
            + (hasPrefix ? 1 : 0) + (hasSuffix ? 1 : 0)
        // One allocation and plain byte copies: this runs on every operation of the memory store,
        // where repeated `append`s cost more than the shard lookup itself. A cursor passed
        // `inout` (not a variable captured by nested functions, which costs a dynamic
        // exclusivity check per access).
        return String(unsafeUninitializedCapacity: count) { buffer in
            let base = buffer.baseAddress!
            var offset = 0
            if hasPrefix {
                Self.copy(prefix, to: base, at: &offset)
                base[offset] = UInt8(ascii: ":")
                offset += 1
            }
            Self.copy(name, to: base, at: &offset)
            base[offset] = UInt8(ascii: ":")
            offset += 1
            Self.copy(key, to: base, at: &offset)
            if hasSuffix {
                base[offset] = UInt8(ascii: ":")
                offset += 1
                Self.copy(suffix, to: base, at: &offset)
            }
            return offset
        }
    }

    /// Copies `part`'s UTF-8 bytes to `base + offset` and advances `offset`.
    @inline(__always)
    private static func copy(_ part: String, to base: UnsafeMutablePointer<UInt8>, at offset: inout Int) {
        // Native strings lend their bytes without a copy of the string (no retain); others
        // (bridged) are copied byte by byte.
        let start = offset
        let copied: Int? = part.utf8.withContiguousStorageIfAvailable { bytes in
            if let source = bytes.baseAddress, !bytes.isEmpty {
                (base + start).initialize(from: source, count: bytes.count)
            }
            return bytes.count
        }
        if let copied {
            offset += copied
            return
        }
        for byte in part.utf8 {
            base[offset] = byte
            offset += 1
        }
    }

    /// The key of an (audience, subject) index: `[prefix:]name:audience:subject[:suffix]`.
    public func indexKey(name: String, audience: String, subject: String) -> String {
        recordKey(name: name, key: audience + ":" + subject)
    }
}
