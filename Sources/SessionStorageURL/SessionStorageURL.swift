/// A storage URL split into its parts: `scheme://[user[:password]@]host[:port][,host[:port]…][/path][?name=value&…]`.
///
/// Several hosts separated by commas are allowed (Sentinel, memcached, cluster seeds), IPv6
/// hosts go in brackets, and every part is percent-decoded. The password is kept for the
/// store's configuration but never shown: ``description`` and ``redacted`` print `***`.
///
///     let url = try SessionStorageURL("redis://app:s3cret@127.0.0.1:6379/2?prefix=sessions")
///     url.scheme        // "redis"
///     url.hosts         // [127.0.0.1:6379]
///     url.path          // "2"
///     url.query["prefix"] // "sessions"
public struct SessionStorageURL: Sendable, Hashable, CustomStringConvertible {
    /// One `host[:port]` of the authority.
    public struct Host: Sendable, Hashable, CustomStringConvertible {
        /// The host name or address (IPv6 without its brackets).
        public var name: String
        /// The port, when the URL gives one.
        public var port: Int?

        /// Creates a host.
        public init(name: String, port: Int? = nil) {
            self.name = name
            self.port = port
        }

        public var description: String {
            let host = name.contains(":") ? "[\(name)]" : name
            return port.map { "\(host):\($0)" } ?? host
        }
    }

    /// The scheme, lower-cased (`redis`, `memory`, …).
    public var scheme: String
    /// The user of the user information, percent-decoded.
    public var user: String?
    /// The password of the user information, percent-decoded; never printed.
    public var password: String?
    /// The hosts of the authority, in order.
    public var hosts: [Host]
    /// The path without its leading `/`, percent-decoded (`""` when absent).
    public var path: String
    /// The query parameters, percent-decoded (`+` is a space). A name given twice is an error.
    public var query: [String: String]

    /// Parses a storage URL.
    ///
    /// - Throws: ``SessionStorageURLError/Code/malformedURL`` when the text is not a URL of
    ///   this shape; the error never holds the text itself.
    public init(_ text: String) throws(SessionStorageURLError) {
        guard let schemeEnd = text.range(of: "://") else {
            throw SessionStorageURLError(.malformedURL, message: "a storage URL starts with scheme://")
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard let first = scheme.unicodeScalars.first, ("a"..."z").contains(first),
            scheme.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || "+-.".unicodeScalars.contains($0) })
        else {
            throw SessionStorageURLError(.malformedURL, message: "the scheme is not a valid URL scheme", parameter: "scheme")
        }
        var rest = text[schemeEnd.upperBound...]
        guard !rest.contains("#") else {
            throw SessionStorageURLError(.malformedURL, message: "a storage URL has no fragment", parameter: "fragment")
        }
        var queryText: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            queryText = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var pathText: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            pathText = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var authority = rest
        var user: String?
        var password: String?
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decode(userInfo[..<colon], part: "user")
                password = try Self.decode(userInfo[userInfo.index(after: colon)...], part: "password")
            } else {
                user = try Self.decode(userInfo, part: "user")
            }
            if user?.isEmpty == true { user = nil }
        }
        var hosts: [Host] = []
        if !authority.isEmpty {
            for item in authority.split(separator: ",", omittingEmptySubsequences: false) {
                hosts.append(try Self.host(item))
            }
        }
        var query: [String: String] = [:]
        if !queryText.isEmpty {
            for pair in queryText.split(separator: "&") {
                let name: String
                let value: String
                if let equals = pair.firstIndex(of: "=") {
                    name = try Self.decode(pair[..<equals], part: "query", plusIsSpace: true)
                    value = try Self.decode(pair[pair.index(after: equals)...], part: "query", plusIsSpace: true)
                } else {
                    name = try Self.decode(pair, part: "query", plusIsSpace: true)
                    value = ""
                }
                guard !name.isEmpty else {
                    throw SessionStorageURLError(.malformedURL, message: "a query parameter has no name", parameter: "query")
                }
                guard query[name] == nil else {
                    throw SessionStorageURLError(.invalidParameter, message: "the parameter is given twice", parameter: name)
                }
                query[name] = value
            }
        }
        self.scheme = scheme
        self.user = user
        self.password = password
        self.hosts = hosts
        self.path = try Self.decode(pathText, part: "path")
        self.query = query
    }

    /// The URL with the password replaced by `***`, and the values of secret-looking query
    /// parameters (`pass`, `secret`, `token`, `key`, `auth` in the name) and of parameters with odd names too.
    public var redacted: String {
        var text = scheme + "://"
        if let user {
            text += Self.encode(user)
            if password != nil { text += ":***" }
            text += "@"
        } else if password != nil {
            text += ":***@"
        }
        text += hosts.map(\.description).joined(separator: ",")
        if !path.isEmpty { text += "/" + Self.encode(path) }
        if !query.isEmpty {
            text += "?" + query.keys.sorted().map { name in
                let safe = SessionStorageURLParameters.safeName(name)
                guard safe == name else { return "\(safe)=***" }
                return "\(name)=\(Self.isSecret(name) ? "***" : Self.encode(query[name]!))"
            }.joined(separator: "&")
        }
        return text
    }

    /// Whether a query parameter's value is redacted like the password: names with `pass`,
    /// `secret`, `token`, `key` or `auth` in them (`sentinel_password`, …).
    static func isSecret(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return ["pass", "secret", "token", "key", "auth"].contains { lowered.contains($0) }
    }

    /// The redacted URL (``redacted``).
    public var description: String { redacted }

    // MARK: parsing

    private static func host(_ text: Substring) throws(SessionStorageURLError) -> Host {
        var name: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw SessionStorageURLError(.malformedURL, message: "an IPv6 host lacks its closing bracket", parameter: "host")
            }
            name = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw SessionStorageURLError(.malformedURL, message: "unexpected text after an IPv6 host", parameter: "host")
                }
                portText = after.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            name = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            name = text
        }
        guard !name.isEmpty else {
            throw SessionStorageURLError(.malformedURL, message: "a host is empty", parameter: "host")
        }
        var port: Int?
        if let portText {
            guard let value = Int(portText), (1...65_535).contains(value) else {
                throw SessionStorageURLError(.invalidParameter, message: "a port must be a number from 1 to 65535", parameter: "port")
            }
            port = value
        }
        return Host(name: try decode(name, part: "host"), port: port)
    }

    static func decode(_ text: Substring, part: String, plusIsSpace: Bool = false) throws(SessionStorageURLError) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw SessionStorageURLError(.malformedURL, message: "a percent escape is not two hex digits", parameter: part)
                }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw SessionStorageURLError(.malformedURL, message: "a percent-decoded part is not UTF-8", parameter: part)
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    static func encode(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            let scalar = Unicode.Scalar(byte)
            if byte < 0x80, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-._~/".unicodeScalars.contains(scalar) {
                result.unicodeScalars.append(scalar)
            } else {
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                result.unicodeScalars.append("%")
                result.unicodeScalars.append(hex[Int(byte >> 4)])
                result.unicodeScalars.append(hex[Int(byte & 0x0F)])
            }
        }
        return result
    }
}
