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
        // where repeated `append`s cost more than the shard lookup itself.
        return String(unsafeUninitializedCapacity: count) { buffer in
            var offset = 0
            func copy(_ part: String) {
                // Native strings lend their bytes without a copy of the string (no retain);
                // others (bridged) are made contiguous first.
                let done: Void? = part.utf8.withContiguousStorageIfAvailable { bytes in
                    guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
                    buffer.baseAddress!.advanced(by: offset).initialize(from: base, count: bytes.count)
                    offset += bytes.count
                }
                if done == nil {
                    for byte in part.utf8 {
                        buffer[offset] = byte
                        offset += 1
                    }
                }
            }
            func colon() {
                buffer[offset] = UInt8(ascii: ":")
                offset += 1
            }
            if hasPrefix {
                copy(prefix)
                colon()
            }
            copy(name)
            colon()
            copy(key)
            if hasSuffix {
                colon()
                copy(suffix)
            }
            return offset
        }
    }

    /// The key of an (audience, subject) index: `[prefix:]name:audience:subject[:suffix]`.
    public func indexKey(name: String, audience: String, subject: String) -> String {
        recordKey(name: name, key: audience + ":" + subject)
    }
}
