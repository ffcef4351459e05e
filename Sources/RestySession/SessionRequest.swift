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
        for header in cookieHeaders {
            for pair in Self.pairs(header) where pair.name == name {
                return String(pair.value)
            }
        }
        return nil
    }

    /// The `Cookie` header without the cookies whose names `shouldRemove` accepts; `nil` when
    /// nothing is left. Used to keep session cookies from reaching an upstream service.
    public func cookieHeader(removing shouldRemove: (Substring) -> Bool) -> String? {
        var kept: [String] = []
        for header in cookieHeaders {
            for pair in Self.pairs(header) where !shouldRemove(pair.name) {
                kept.append(pair.hasValue ? "\(pair.name)=\(pair.value)" : String(pair.name))
            }
        }
        return kept.isEmpty ? nil : kept.joined(separator: "; ")
    }

    static func pairs(_ header: String) -> [(name: Substring, value: Substring, hasValue: Bool)] {
        var result: [(name: Substring, value: Substring, hasValue: Bool)] = []
        for part in header.split(separator: ";", omittingEmptySubsequences: true) {
            let trimmed = part.trimmingSpaces
            guard !trimmed.isEmpty else { continue }
            if let equals = trimmed.firstIndex(of: "=") {
                let name = trimmed[..<equals].trimmingSpaces
                let value = trimmed[trimmed.index(after: equals)...].trimmingSpaces
                guard !name.isEmpty else { continue }
                result.append((name, value, true))
            } else {
                result.append((trimmed, "", false))
            }
        }
        return result
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var slice = self
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return slice
    }
}
