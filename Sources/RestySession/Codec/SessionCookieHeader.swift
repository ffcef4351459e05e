import SessionStorage

/// The 82-byte binary header of a lua-resty-session 4.x cookie (COOKIE.md §2).
///
///     [type 1][flags 2][sid 32][creation time 5][rolling offset 4][data size 3][tag 16][idling offset 3][mac 16]
///
/// All integers unsigned little-endian.
struct SessionCookieHeader: Sendable, Hashable {
    static let size = 82
    static let encodedSize = 110
    /// Bytes 0..<47: the AES-GCM additional authenticated data.
    static let tagOffset = 47
    /// Bytes 0..<63: what `touch()` keeps.
    static let touchOffset = 63
    /// Bytes 0..<66: the MAC input.
    static let macOffset = 66

    static let cookieType: UInt8 = 1
    static let maximumCreationTime = (1 << 40) - 1
    static let maximumRollingOffset = (1 << 32) - 1
    static let maximumIdlingOffset = (1 << 24) - 1
    static let maximumDataSize = (1 << 24) - 1

    var flags: SessionFlags
    var sid: SessionID
    var creationTime: Int
    var rollingOffset: Int
    var dataSize: Int
    var tag: HeaderBytes16
    var idlingOffset: Int
    var mac: HeaderBytes16

    /// Runs `body` with the 82 header bytes, written into a buffer on the stack (the AAD is
    /// its first 47 bytes, the MAC input its first 66: no array for either).
    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        var storage = Self.emptyStorage
        return try Swift.withUnsafeMutableBytes(of: &storage) { raw in
            raw[0] = Self.cookieType
            Self.store(Int(flags.rawValue), size: 2, at: 1, into: raw)
            sid.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: raw[3..<35]).copyMemory(from: $0) }
            Self.store(creationTime, size: 5, at: 35, into: raw)
            Self.store(rollingOffset, size: 4, at: 40, into: raw)
            Self.store(dataSize, size: 3, at: 44, into: raw)
            tag.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: raw[47..<63]).copyMemory(from: $0) }
            Self.store(idlingOffset, size: 3, at: 63, into: raw)
            mac.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: raw[66..<82]).copyMemory(from: $0) }
            return try body(UnsafeRawBufferPointer(rebasing: raw[0..<Self.size]))
        }
    }

    /// Runs `body` with the first 47 bytes (type ‖ flags ‖ sid ‖ creation ‖ rolling ‖ data
    /// size): the AES-GCM additional data.
    func withAdditionalData<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<Self.tagOffset])) }
    }

    /// 88 bytes on the stack for the 82 of a header.
    private typealias Storage = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    private static let emptyStorage: Storage = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    /// All 82 bytes.
    var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The 110-character base64url form.
    var encoded: String { withUnsafeBytes { StrictBase64URL.encode($0) } }

    init(
        flags: SessionFlags,
        sid: SessionID,
        creationTime: Int,
        rollingOffset: Int,
        dataSize: Int,
        tag: HeaderBytes16 = HeaderBytes16(),
        idlingOffset: Int = 0,
        mac: HeaderBytes16 = HeaderBytes16()
    ) {
        self.flags = flags
        self.sid = sid
        self.creationTime = creationTime
        self.rollingOffset = rollingOffset
        self.dataSize = dataSize
        self.tag = tag
        self.idlingOffset = idlingOffset
        self.mac = mac
    }

    /// Parses 82 header bytes; `nil` if the length or the cookie type is wrong.
    init?(bytes: [UInt8]) {
        guard let header = bytes.withUnsafeBytes({ SessionCookieHeader(raw: $0) }) else { return nil }
        self = header
    }

    /// Parses 82 header bytes in place; `nil` if the length or the cookie type is wrong.
    init?(raw bytes: UnsafeRawBufferPointer) {
        guard bytes.count == Self.size, bytes[0] == Self.cookieType else { return nil }
        flags = SessionFlags(rawValue: UInt16(Self.unpack(bytes, at: 1, size: 2)))
        sid = SessionID(copying: UnsafeRawBufferPointer(rebasing: bytes[3..<35]))
        creationTime = Self.unpack(bytes, at: 35, size: 5)
        rollingOffset = Self.unpack(bytes, at: 40, size: 4)
        dataSize = Self.unpack(bytes, at: 44, size: 3)
        tag = HeaderBytes16(copying: UnsafeRawBufferPointer(rebasing: bytes[47..<63]))
        idlingOffset = Self.unpack(bytes, at: 63, size: 3)
        mac = HeaderBytes16(copying: UnsafeRawBufferPointer(rebasing: bytes[66..<82]))
    }

    /// Why the first 110 characters of a cookie are not a header.
    enum ParseFailure: Error {
        /// Not 110 characters of strict base64url.
        case invalidEncoding
        /// Not a cookie of type 1.
        case invalidType
    }

    /// Decodes and parses the 110-character base64url form (no array on the way).
    static func parse(encoded text: UnsafeBufferPointer<UInt8>) -> Result<SessionCookieHeader, ParseFailure> {
        guard text.count == encodedSize else { return .failure(.invalidEncoding) }
        var storage = emptyStorage
        return withUnsafeMutableBytes(of: &storage) { raw in
            let bytes = UnsafeMutableRawBufferPointer(rebasing: raw[0..<size])
            guard StrictBase64URL.decode(buffer: text, into: bytes) else { return .failure(.invalidEncoding) }
            guard let header = SessionCookieHeader(raw: UnsafeRawBufferPointer(bytes)) else { return .failure(.invalidType) }
            return .success(header)
        }
    }

    static func store(_ value: Int, size: Int, at offset: Int, into bytes: UnsafeMutableRawBufferPointer) {
        var value = UInt64(clamping: value)
        for index in offset..<(offset + size) {
            bytes[index] = UInt8(truncatingIfNeeded: value)
            value >>= 8
        }
    }

    static func unpack(_ bytes: UnsafeRawBufferPointer, at offset: Int, size: Int) -> Int {
        var value = 0
        for index in 0..<size { value |= Int(bytes[offset + index]) << (8 * index) }
        return value
    }

    /// The number of base64url characters (no padding) of `count` bytes: ceil(4n/3).
    static func base64Size(_ count: Int) -> Int { (count * 4 + 2) / 3 }
}

/// The flags field of the header (COOKIE.md §2).
struct SessionFlags: OptionSet, Sendable, Hashable {
    let rawValue: UInt16

    static let storage = SessionFlags(rawValue: 0x0001)
    static let forget = SessionFlags(rawValue: 0x0002)
    static let deflate = SessionFlags(rawValue: 0x0010)
    static let bindIP = SessionFlags(rawValue: 0x0100)
    static let bindScheme = SessionFlags(rawValue: 0x0200)
    static let bindUserAgent = SessionFlags(rawValue: 0x0400)

    static let bindings: SessionFlags = [.bindIP, .bindScheme, .bindUserAgent]
}
