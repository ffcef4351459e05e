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
        // One allocation and plain byte copies: this runs on every operation of every backend.
        String(unsafeUninitializedCapacity: recordKeyCount(name: name, key: key)) { buffer in
            writeRecordKey(name: name, key: key, to: buffer.baseAddress!)
        }
    }

    /// Runs `body` with the bytes of ``recordKey(name:key:)`` in a temporary buffer (on the
    /// stack when small): the memory store looks keys up without making a string of them.
    @inline(__always)
    func withRecordKey<R>(name: String, key: String, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let count = recordKeyCount(name: name, key: key)
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { buffer in
            let written = writeRecordKey(name: name, key: key, to: buffer.baseAddress!)
            return try body(UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[..<written]))
        }
    }

    @inline(__always)
    private func recordKeyCount(name: String, key: String) -> Int {
        let prefixCount = prefix?.utf8.count ?? 0
        let suffixCount = suffix?.utf8.count ?? 0
        return prefixCount + name.utf8.count + key.utf8.count + suffixCount + 1
            + (prefixCount > 0 ? 1 : 0) + (suffixCount > 0 ? 1 : 0)
    }

    /// Writes `[prefix:]name:key[:suffix]` at `base` (room for ``recordKeyCount(name:key:)``
    /// bytes); returns the byte count. A cursor passed `inout` (not a variable captured by nested
    /// functions, which costs a dynamic exclusivity check per access).
    @inline(__always)
    private func writeRecordKey(name: String, key: String, to base: UnsafeMutablePointer<UInt8>) -> Int {
        var offset = 0
        if let prefix, !prefix.isEmpty {
            Self.copy(prefix, to: base, at: &offset)
            base[offset] = UInt8(ascii: ":")
            offset += 1
        }
        Self.copy(name, to: base, at: &offset)
        base[offset] = UInt8(ascii: ":")
        offset += 1
        Self.copy(key, to: base, at: &offset)
        if let suffix, !suffix.isEmpty {
            base[offset] = UInt8(ascii: ":")
            offset += 1
            Self.copy(suffix, to: base, at: &offset)
        }
        return offset
    }

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

    /// Runs `body` with the bytes of ``indexKey(name:audience:subject:)`` in a temporary buffer.
    @inline(__always)
    func withIndexKey<R>(name: String, audience: String, subject: String, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withRecordKey(name: name, key: audience + ":" + subject, body)
    }
}
