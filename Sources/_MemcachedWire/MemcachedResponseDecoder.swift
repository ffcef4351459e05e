import NIOCore

/// Decodes server replies: meta replies, `stats` replies and error lines.
///
/// Returns `nil` for "need more bytes". Hard limits: a reply line may be at most
/// ``maximumLineLength`` bytes, a value at most ``maximumValueLength`` bytes, and a `stats`
/// reply at most ``maximumStatistics`` lines; past them decoding fails with
/// ``MemcachedClientError/Code/protocolError`` (or `valueTooLarge` for the value).
public struct MemcachedResponseDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = MemcachedResponse

    /// The longest reply line accepted, CRLF excluded.
    public let maximumLineLength: Int
    /// The largest value accepted in a `VA` reply.
    public let maximumValueLength: Int
    /// The most `STAT` lines accepted in one `stats` reply.
    public let maximumStatistics: Int

    private var statistics: [String: String]?

    /// Creates a decoder with the given limits.
    public init(maximumValueLength: Int = 64 << 20, maximumLineLength: Int = 8192, maximumStatistics: Int = 4096) {
        self.maximumValueLength = maximumValueLength
        self.maximumLineLength = maximumLineLength
        self.maximumStatistics = maximumStatistics
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> MemcachedResponse? {
        while true {
            guard let lineLength = try lineLength(in: buffer) else { return nil }
            let consumed = lineLength + 2

            // The common case first: a meta reply (`HD …`, `VA …`), parsed in place in one
            // pass (no copy of the line).
            if self.statistics == nil {
                switch try decodeMetaInPlace(lineLength: lineLength, buffer: &buffer) {
                case .decoded(let response): return response
                case .needMore: return nil
                case .notMeta: break
                }
            }
            let line = buffer.getBytes(at: buffer.readerIndex, length: lineLength)!

            if let statistics = self.statistics {
                // inside a stats reply: STAT lines until END
                if line == Array("END".utf8) {
                    buffer.moveReaderIndex(forwardBy: consumed)
                    self.statistics = nil
                    return .stats(statistics)
                }
                try addStatistic(line)
                buffer.moveReaderIndex(forwardBy: consumed)
                continue
            }

            if line.starts(with: "STAT ".utf8) {
                self.statistics = [:]
                try addStatistic(line)
                buffer.moveReaderIndex(forwardBy: consumed)
                continue
            }
            if line == Array("END".utf8) {
                // an empty stats reply
                buffer.moveReaderIndex(forwardBy: consumed)
                return .stats([:])
            }
            if let error = Self.errorReply(line) {
                buffer.moveReaderIndex(forwardBy: consumed)
                return .error(error)
            }
            return try decodeMeta(line: line, consumed: consumed, buffer: &buffer)
        }
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MemcachedResponse? {
        try decode(buffer: &buffer)
    }

    /// The length of the first line (without CRLF), `nil` if no full line arrived yet.
    private func lineLength(in buffer: ByteBuffer) throws -> Int? {
        let maximumLineLength = self.maximumLineLength
        let found: Int? = try buffer.withUnsafeReadableBytes { bytes in
            let limit = min(bytes.count, maximumLineLength + 2)
            guard let newline = UnsafeRawBufferPointer(rebasing: bytes[..<limit]).firstIndex(of: UInt8(ascii: "\n")) else {
                return nil
            }
            guard newline >= 1, bytes[newline - 1] == UInt8(ascii: "\r") else {
                throw MemcachedClientError(.protocolError, message: "reply line not terminated by CRLF")
            }
            return newline - 1
        }
        if let found { return found }
        if buffer.readableBytes >= maximumLineLength + 2 {
            throw MemcachedClientError(.protocolError, message: "reply line longer than \(maximumLineLength) bytes")
        }
        return nil
    }

    private mutating func addStatistic(_ line: [UInt8]) throws {
        guard line.starts(with: "STAT ".utf8) else {
            throw MemcachedClientError(.protocolError, message: "unexpected line in a stats reply")
        }
        guard (statistics?.count ?? 0) < maximumStatistics else {
            throw MemcachedClientError(.protocolError, message: "stats reply longer than \(maximumStatistics) lines")
        }
        let text = String(decoding: line.dropFirst(5), as: UTF8.self)
        if let space = text.firstIndex(of: " ") {
            statistics?[String(text[..<space])] = String(text[text.index(after: space)...])
        } else {
            statistics?[text] = ""
        }
    }

    private static func errorReply(_ line: [UInt8]) -> MemcachedErrorReply? {
        for kind in [MemcachedErrorReply.Kind.serverError, .clientError, .error] {
            let keyword = Array(kind.rawValue.utf8)
            guard line.starts(with: keyword) else { continue }
            if line.count == keyword.count {
                return MemcachedErrorReply(kind: kind, message: "")
            }
            if line[keyword.count] == UInt8(ascii: " ") {
                return MemcachedErrorReply(kind: kind, message: String(decoding: line[(keyword.count + 1)...], as: UTF8.self))
            }
        }
        return nil
    }

    /// The status of a line that starts with a meta status and a space (or is only the
    /// status); `nil` for anything else.
    private static func metaStatus(_ line: UnsafeRawBufferPointer) -> MemcachedMetaResponse.Status? {
        guard line.count >= 2, line.count == 2 || line[2] == UInt8(ascii: " ") else { return nil }
        switch (line[0], line[1]) {
        case (UInt8(ascii: "H"), UInt8(ascii: "D")): return .headerOnly
        case (UInt8(ascii: "V"), UInt8(ascii: "A")): return .value
        case (UInt8(ascii: "E"), UInt8(ascii: "N")): return .miss
        case (UInt8(ascii: "N"), UInt8(ascii: "F")): return .notFound
        case (UInt8(ascii: "N"), UInt8(ascii: "S")): return .notStored
        case (UInt8(ascii: "E"), UInt8(ascii: "X")): return .exists
        case (UInt8(ascii: "M"), UInt8(ascii: "N")): return .noOp
        default: return nil
        }
    }

    private enum InPlace {
        case decoded(MemcachedResponse)
        case needMore
        case notMeta
    }

    /// A meta reply (a line starting with a known status and a space), read in place: its
    /// tokens are parsed straight from the buffer's bytes and its value is a slice of it.
    private func decodeMetaInPlace(lineLength: Int, buffer: inout ByteBuffer) throws -> InPlace {
        let consumed = lineLength + 2
        let maximumValueLength = self.maximumValueLength
        // (status, flags, value length); nil: not a meta line; value length -1: need more bytes
        let parsed: (MemcachedMetaResponse.Status, MemcachedResponseFlags, Int?)? = try buffer.withUnsafeReadableBytes { bytes in
            let line = UnsafeRawBufferPointer(rebasing: bytes[..<lineLength])
            guard let status = Self.metaStatus(line) else { return nil }
            var index = 2
            func nextToken() -> Slice<UnsafeRawBufferPointer>? {
                while index < line.count, line[index] == UInt8(ascii: " ") { index += 1 }
                guard index < line.count else { return nil }
                let start = index
                while index < line.count, line[index] != UInt8(ascii: " ") { index += 1 }
                return line[start..<index]
            }
            var size: Int?
            if status == .value {
                guard let sizeToken = nextToken(), let length = Self.integer(sizeToken), length >= 0 else {
                    throw MemcachedClientError(.protocolError, message: "VA reply without a valid size")
                }
                guard length <= maximumValueLength else {
                    throw MemcachedClientError(
                        .valueTooLarge, message: "reply value of \(length) bytes exceeds the client limit of \(maximumValueLength)")
                }
                guard bytes.count >= consumed + length + 2 else { return (status, MemcachedResponseFlags(), -1) }
                guard bytes[consumed + length] == UInt8(ascii: "\r"), bytes[consumed + length + 1] == UInt8(ascii: "\n") else {
                    throw MemcachedClientError(.protocolError, message: "value not terminated by CRLF")
                }
                size = length
            }
            var flags = MemcachedResponseFlags()
            while let token = nextToken() {
                try Self.parseFlag(token, into: &flags)
            }
            return (status, flags, size)
        }
        guard let (status, flags, size) = parsed else { return .notMeta }
        var value: ByteBuffer?
        var total = consumed
        if let size {
            if size < 0 { return .needMore }
            value = buffer.getSlice(at: buffer.readerIndex + consumed, length: size)
            total += size + 2
        }
        buffer.moveReaderIndex(forwardBy: total)
        return .decoded(.meta(MemcachedMetaResponse(status: status, flags: flags, value: value)))
    }

    private func decodeMeta(line: [UInt8], consumed: Int, buffer: inout ByteBuffer) throws -> MemcachedResponse? {
        var tokens = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)[...]
        guard let code = tokens.popFirst(),
              let status = MemcachedMetaResponse.Status(rawValue: String(decoding: code, as: UTF8.self))
        else {
            throw MemcachedClientError(.protocolError, message: "unknown reply from the server")
        }
        var value: ByteBuffer?
        var total = consumed
        if status == .value {
            guard let sizeToken = tokens.popFirst(), let size = Self.integer(sizeToken), size >= 0 else {
                throw MemcachedClientError(.protocolError, message: "VA reply without a valid size")
            }
            guard size <= maximumValueLength else {
                throw MemcachedClientError(.valueTooLarge, message: "reply value of \(size) bytes exceeds the client limit of \(maximumValueLength)")
            }
            guard buffer.readableBytes >= consumed + size + 2 else { return nil }
            let dataStart = buffer.readerIndex + consumed
            guard buffer.getInteger(at: dataStart + size, as: UInt8.self) == UInt8(ascii: "\r"),
                  buffer.getInteger(at: dataStart + size + 1, as: UInt8.self) == UInt8(ascii: "\n")
            else {
                throw MemcachedClientError(.protocolError, message: "value not terminated by CRLF")
            }
            value = buffer.getSlice(at: dataStart, length: size)
            total += size + 2
        }
        var flags = MemcachedResponseFlags()
        for token in tokens {
            try Self.parseFlag(token, into: &flags)
        }
        buffer.moveReaderIndex(forwardBy: total)
        return .meta(MemcachedMetaResponse(status: status, flags: flags, value: value))
    }

    private static func parseFlag<Token: Collection<UInt8>>(_ token: Token, into flags: inout MemcachedResponseFlags) throws {
        guard let first = token.first else { return }
        let rest = token.dropFirst()
        func number<T: FixedWidthInteger>(_: T.Type) throws -> T {
            guard let value = Self.decimal(rest, as: T.self) else {
                throw MemcachedClientError(.protocolError, message: "malformed '\(Character(Unicode.Scalar(first)))' flag in a reply")
            }
            return value
        }
        switch first {
        case UInt8(ascii: "O"): flags.opaque = String(decoding: rest, as: UTF8.self)
        case UInt8(ascii: "c"): flags.cas = try number(UInt64.self)
        case UInt8(ascii: "t"): flags.ttl = try number(Int.self)
        case UInt8(ascii: "f"): flags.clientFlags = try number(UInt32.self)
        case UInt8(ascii: "s"): flags.size = try number(Int.self)
        case UInt8(ascii: "k"): flags.key = String(decoding: rest, as: UTF8.self)
        case UInt8(ascii: "h"): flags.hitBefore = try number(Int.self) != 0
        case UInt8(ascii: "l"): flags.lastAccess = try number(Int.self)
        case UInt8(ascii: "W"): flags.won = true
        case UInt8(ascii: "X"): flags.stale = true
        case UInt8(ascii: "Z"): flags.winTokenSent = true
        case UInt8(ascii: "b"): flags.base64Key = true
        default: break  // flags added by newer servers are ignored
        }
    }

    /// A decimal integer with an optional sign (`-1`, `+5`), `nil` when malformed or out of
    /// range for `T`.
    static func decimal<Digits: Collection<UInt8>, T: FixedWidthInteger>(_ digits: Digits, as _: T.Type) -> T? {
        var index = digits.startIndex
        guard index != digits.endIndex else { return nil }
        var negative = false
        if digits[index] == UInt8(ascii: "-") || digits[index] == UInt8(ascii: "+") {
            negative = digits[index] == UInt8(ascii: "-")
            if negative && !T.isSigned { return nil }
            index = digits.index(after: index)
            guard index != digits.endIndex else { return nil }
        }
        var value: T = 0
        while index != digits.endIndex {
            let digit = digits[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (shifted, overflowed) = value.multipliedReportingOverflow(by: 10)
            let (next, carried) =
                negative ? shifted.subtractingReportingOverflow(T(digit)) : shifted.addingReportingOverflow(T(digit))
            guard !overflowed, !carried else { return nil }
            value = next
            index = digits.index(after: index)
        }
        return value
    }

    private static func integer<Digits: Collection<UInt8>>(_ bytes: Digits) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return bytes.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }
}
