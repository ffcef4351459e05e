#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The facts of an HTTP request the session core reads: its cookies and, for binding, the
/// client's address, the scheme and the user agent. Framework adapters fill it in.
public struct SessionRequest: Sendable, Hashable {
    /// The values of the request's `Cookie` headers, each `name=value; name2=value2`.
    public var cookieHeaders: [String]
    /// The client's address as the server sees it (nginx `$remote_addr`).
    public var remoteAddress: String?
    /// `http` or `https` (nginx `$scheme`).
    public var scheme: String?
    /// The `User-Agent` header.
    public var userAgent: String?

    /// Creates request facts.
    public init(cookieHeaders: [String] = [], remoteAddress: String? = nil, scheme: String? = nil, userAgent: String? = nil) {
        self.cookieHeaders = cookieHeaders
        self.remoteAddress = remoteAddress
        self.scheme = scheme
        self.userAgent = userAgent
    }

    /// Creates request facts from one `Cookie` header value.
    public init(cookieHeader: String?, remoteAddress: String? = nil, scheme: String? = nil, userAgent: String? = nil) {
        self.init(
            cookieHeaders: cookieHeader.map { [$0] } ?? [],
            remoteAddress: remoteAddress,
            scheme: scheme,
            userAgent: userAgent
        )
    }

    /// The value of the first cookie named `name` (as nginx's `$cookie_NAME`), or `nil`.
    public func cookie(named name: String) -> String? {
        var name = name
        return name.withUTF8 { wanted in
            for header in cookieHeaders {
                var header = header
                let found = header.withUTF8 { Self.firstValue(named: wanted, in: $0) }
                if let found { return found }
            }
            return nil
        }
    }

    /// One pass over a `Cookie` header with the rules of ``pairs(_:)``, no allocation until
    /// the value is found.
    static func firstValue(named wanted: UnsafeBufferPointer<UInt8>, in bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let count = bytes.count
        var start = 0
        while start <= count {
            // the next `;` (memchr: a session cookie's value is a kilobyte or more)
            var end = count
            if start < count, let found = memchr(bytes.baseAddress! + start, Int32(UInt8(ascii: ";")), count - start) {
                end = bytes.baseAddress!.distance(to: found.assumingMemoryBound(to: UInt8.self))
            }
            var lower = start
            var upper = end
            while lower < upper, bytes[lower] == 0x20 || bytes[lower] == 0x09 { lower += 1 }
            while upper > lower, bytes[upper - 1] == 0x20 || bytes[upper - 1] == 0x09 { upper -= 1 }
            var equals = lower
            while equals < upper, bytes[equals] != UInt8(ascii: "=") { equals += 1 }
            if equals < upper {
                var nameEnd = equals
                while nameEnd > lower, bytes[nameEnd - 1] == 0x20 || bytes[nameEnd - 1] == 0x09 { nameEnd -= 1 }
                if nameEnd - lower == wanted.count, nameEnd > lower,
                   memcmp(bytes.baseAddress! + lower, wanted.baseAddress!, wanted.count) == 0
                {
                    var valueStart = equals + 1
                    while valueStart < upper, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
                    return String(decoding: UnsafeBufferPointer(rebasing: bytes[valueStart..<upper]), as: UTF8.self)
                }
            } else if upper - lower == wanted.count, upper > lower,
                      memcmp(bytes.baseAddress! + lower, wanted.baseAddress!, wanted.count) == 0
            {
                return ""  // a part without `=`: the name, with an empty value
            }
            start = end + 1
        }
        return nil
    }

    /// The `Cookie` header without the cookies whose names `shouldRemove` accepts; `nil` when
    /// nothing is left. Used to keep session cookies from reaching an upstream service.
    public func cookieHeader(removing shouldRemove: (Substring) -> Bool) -> String? {
        var kept: [String] = []
        for header in cookieHeaders {
            let bytes = Array(header.utf8)
            for pair in Self.pairs(bytes) {
                let name = Substring(String(decoding: bytes[pair.name], as: UTF8.self))
                guard !shouldRemove(name) else { continue }
                kept.append(pair.hasValue ? "\(name)=\(String(decoding: bytes[pair.value], as: UTF8.self))" : String(name))
            }
        }
        return kept.isEmpty ? nil : kept.joined(separator: "; ")
    }

    /// The `name=value` pairs of a `Cookie` header, as byte ranges: parts split at `;`, spaces
    /// and tabs trimmed, the name ends at the first `=`; parts without a name are skipped.
    static func pairs(_ bytes: [UInt8]) -> [(name: Range<Int>, value: Range<Int>, hasValue: Bool)] {
        var result: [(name: Range<Int>, value: Range<Int>, hasValue: Bool)] = []
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: ";") { end += 1 }
            let part = trimmed(bytes, start..<end)
            if !part.isEmpty {
                var equals = part.lowerBound
                while equals < part.upperBound, bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                if equals < part.upperBound {
                    let name = trimmed(bytes, part.lowerBound..<equals)
                    if !name.isEmpty {
                        result.append((name, trimmed(bytes, (equals + 1)..<part.upperBound), true))
                    }
                } else {
                    result.append((part, part.upperBound..<part.upperBound, false))
                }
            }
            start = end + 1
        }
        return result
    }

    private static func trimmed(_ bytes: [UInt8], _ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound
        var upper = range.upperBound
        while lower < upper, bytes[lower] == 0x20 || bytes[lower] == 0x09 { lower += 1 }
        while upper > lower, bytes[upper - 1] == 0x20 || bytes[upper - 1] == 0x09 { upper -= 1 }
        return lower..<upper
    }
}

