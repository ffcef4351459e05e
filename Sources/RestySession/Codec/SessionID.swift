/// A session id: the 32 random bytes of a cookie header (COOKIE.md §2), held inline.
///
/// A value, not an array: a header carries it without an allocation or a reference count, the
/// derived-key cache hashes and compares it as four words, and copying a session copies 32
/// bytes.
struct SessionID: Hashable, Sendable {
    static let size = 32

    private var words: (UInt64, UInt64, UInt64, UInt64)

    /// The id in `bytes`, which must hold exactly 32 bytes.
    init(copying bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == Self.size, "a session id has 32 bytes")
        words = (
            bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
            bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
            bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
            bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
        )
    }

    /// The id in `bytes`; `nil` unless they are exactly 32.
    init?(_ bytes: [UInt8]) {
        guard bytes.count == Self.size else { return nil }
        self = bytes.withUnsafeBytes { SessionID(copying: $0) }
    }

    /// Runs `body` with the id's 32 bytes.
    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        var words = words
        return try Swift.withUnsafeBytes(of: &words) { try body($0) }
    }

    /// The id's bytes as an array.
    var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The first eight bytes, as a word (what the derived-key cache picks a set from).
    var firstWord: UInt64 { words.0 }

    static func == (lhs: SessionID, rhs: SessionID) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2 && lhs.words.3 == rhs.words.3
    }

    /// The first eight bytes only: ids are random (the cache only holds ids this process
    /// issued or verified), so they spread as well as all 32, and the hasher stays seeded per
    /// dictionary; a quarter of SipHash's rounds per lookup.
    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
    }
}

/// 16 bytes held inline: a header's AES-GCM tag or MAC.
struct HeaderBytes16: Hashable, Sendable {
    static let size = 16

    private var words: (UInt64, UInt64) = (0, 0)

    /// Sixteen zero bytes.
    init() {}

    /// The 16 bytes in `bytes`, which must hold exactly 16.
    init(copying bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == Self.size, "16 bytes expected")
        words = (bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// The bytes of `bytes`; `nil` unless they are exactly 16.
    init?(_ bytes: [UInt8]) {
        guard bytes.count == Self.size else { return nil }
        self = bytes.withUnsafeBytes { HeaderBytes16(copying: $0) }
    }

    /// Runs `body` with the 16 bytes.
    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        var words = words
        return try Swift.withUnsafeBytes(of: &words) { try body($0) }
    }

    /// Runs `body` with the 16 bytes to write.
    mutating func withUnsafeMutableBytes<Result>(_ body: (UnsafeMutableRawBufferPointer) throws -> Result) rethrows -> Result {
        try Swift.withUnsafeMutableBytes(of: &words) { try body($0) }
    }

    /// Fills the 16 bytes from `body`, which gets a 16-byte buffer.
    static func filling(_ body: (UnsafeMutableRawBufferPointer) -> Void) -> HeaderBytes16 {
        var value = HeaderBytes16()
        value.withUnsafeMutableBytes(body)
        return value
    }

    /// The bytes as an array.
    var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Whether `self` and `other` are equal, in time that does not depend on where they differ
    /// (for MACs).
    func constantTimeEquals(_ other: HeaderBytes16) -> Bool {
        ((words.0 ^ other.words.0) | (words.1 ^ other.words.1)) == 0
    }

    static func == (lhs: HeaderBytes16, rhs: HeaderBytes16) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }
}
