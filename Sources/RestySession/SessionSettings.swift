import Logging
import SessionStorage

/// The configuration resolved once per manager: keys derived, cookie names and attributes
/// built, durations in seconds. Immutable, shared by every session of the manager.
final class SessionSettings: Sendable {
    static let maximumTTL = 34_560_000
    static let maximumCookieSize = 4096
    static let maximumCookies = 9

    let configuration: SessionManager.Configuration
    let key: SessionKey
    let fallbackKeys: [SessionKey]
    let storage: (any SessionStore)?
    let clock: SessionClock
    let random: SessionRandom
    let logger: Logger

    let cookieName: String
    let rememberCookieName: String
    /// `; Path=/; SameSite=Lax; HttpOnly` and the like.
    let cookieAttributes: String
    let bindFlags: SessionFlags
    let rememberIterations: Int?

    let staleTTL: Int
    let idlingTimeout: Int
    let rollingTimeout: Int
    let absoluteTimeout: Int
    let rememberRollingTimeout: Int
    let rememberAbsoluteTimeout: Int
    let touchThreshold: Int

    init(
        configuration: SessionManager.Configuration,
        storage: (any SessionStore)?,
        clock: SessionClock,
        random: SessionRandom,
        logger: Logger
    ) throws {
        self.configuration = configuration
        self.storage = storage
        self.clock = clock
        self.random = random
        self.logger = logger

        // Keys: an explicit ikm, else sha256(secret), else (development only) a random key.
        if let ikm = configuration.ikm {
            guard ikm.count == 32 else { throw SessionError(.invalidConfiguration, message: "ikm must be 32 bytes") }
            key = SessionKey(ikm: ikm)
        } else if let secret = configuration.secret {
            guard !secret.isEmpty else { throw SessionError(.invalidConfiguration, message: "secret must not be empty") }
            key = SessionKey(ikm: SessionCrypto.sha256(secret.utf8))
        } else {
            switch configuration.environment {
            case .production:
                throw SessionError(
                    .missingSecret,
                    message: "no secret or ikm configured; set one, or use the development environment"
                )
            case .development:
                logger.warning(
                    "no session secret configured: using a random key; sessions will not survive a restart or reach another process"
                )
                key = SessionKey(ikm: SessionCrypto.sha256(random.bytes(32)))
            }
        }
        if !configuration.ikmFallbacks.isEmpty {
            guard configuration.ikmFallbacks.allSatisfy({ $0.count == 32 }) else {
                throw SessionError(.invalidConfiguration, message: "every ikm fallback must be 32 bytes")
            }
            fallbackKeys = configuration.ikmFallbacks.map { SessionKey(ikm: $0) }
        } else {
            fallbackKeys = configuration.secretFallbacks.map { SessionKey(ikm: SessionCrypto.sha256($0.utf8)) }
        }

        // Cookie names and attributes (lua-resty-session `new()`).
        var cookieName = configuration.cookieName
        var rememberCookieName = configuration.rememberCookieName
        var path = configuration.cookiePath
        var domain = configuration.cookieDomain
        var secure = configuration.cookieSecure ?? false
        switch configuration.cookiePrefix {
        case .host:
            cookieName = "__Host-" + cookieName
            rememberCookieName = "__Host-" + rememberCookieName
            path = "/"
            domain = nil
            secure = true
        case .secure:
            cookieName = "__Secure-" + cookieName
            rememberCookieName = "__Secure-" + rememberCookieName
            secure = true
        case nil:
            if configuration.cookieSameSite == .none { secure = true }
        }
        if configuration.cookieSameParty == true {
            guard configuration.cookieSameSite != .strict else {
                throw SessionError(.invalidConfiguration, message: "SameParty cookies cannot use SameSite=Strict")
            }
            secure = true
        }
        for name in [configuration.cookieName, configuration.rememberCookieName] {
            guard Self.isToken(name) else {
                throw SessionError(.invalidConfiguration, message: "cookie names must be non-empty RFC 6265 tokens")
            }
        }
        guard cookieName != rememberCookieName else {
            throw SessionError(.invalidConfiguration, message: "the session and remember cookies need different names")
        }
        guard Self.isAttributeValue(path), domain.map(Self.isAttributeValue) ?? true else {
            throw SessionError(.invalidConfiguration, message: "cookie path and domain must not contain ';' or control characters")
        }
        var attributes = ""
        if let domain, !domain.isEmpty, domain != "localhost" { attributes += "; Domain=\(domain)" }
        attributes += "; Path=\(path); SameSite=\(configuration.cookieSameSite.rawValue)"
        if let priority = configuration.cookiePriority { attributes += "; Priority=\(priority.rawValue)" }
        if configuration.cookieSameParty == true { attributes += "; SameParty" }
        if configuration.cookiePartitioned == true { attributes += "; Partitioned" }
        if secure { attributes += "; Secure" }
        if configuration.cookieHTTPOnly { attributes += "; HttpOnly" }
        self.cookieName = cookieName
        self.rememberCookieName = rememberCookieName
        self.cookieAttributes = attributes

        bindFlags = SessionFlags(rawValue: configuration.bind.rawValue)
        rememberIterations = configuration.rememberSafety.iterations

        typealias C = SessionManager.Configuration
        staleTTL = try C.seconds(configuration.staleTTL, "staleTTL")
        idlingTimeout = try C.seconds(configuration.idlingTimeout, "idlingTimeout")
        rollingTimeout = try C.seconds(configuration.rollingTimeout, "rollingTimeout")
        absoluteTimeout = try C.seconds(configuration.absoluteTimeout, "absoluteTimeout")
        rememberRollingTimeout = try C.seconds(configuration.rememberRollingTimeout, "rememberRollingTimeout")
        rememberAbsoluteTimeout = try C.seconds(configuration.rememberAbsoluteTimeout, "rememberAbsoluteTimeout")
        touchThreshold = try C.seconds(configuration.touchThreshold, "touchThreshold")
        guard configuration.compressionThreshold >= 0 else {
            throw SessionError(.invalidConfiguration, message: "compressionThreshold must not be negative")
        }
        guard !configuration.audience.isEmpty else {
            throw SessionError(.invalidConfiguration, message: "audience must not be empty")
        }
    }

    /// RFC 6265 `token`: visible ASCII except separators.
    static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            byte > 0x20 && byte < 0x7F && !"()<>@,;:\\\"/[]?={}".utf8.contains(byte)
        }
    }

    static func isAttributeValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F && $0 != UInt8(ascii: ";") }
    }

    // MARK: storage keys and the index

    /// `base64url(sid)`, or `base64url(sha256(sid))` with `hashStorageKey`.
    func storageKey(sid: SessionID) -> String {
        sid.withUnsafeBytes { sid in
            configuration.hashStorageKey ? Base64URL.encode(SessionCrypto.sha256(sid)) : Base64URL.encode(sid)
        }
    }

    /// An audience as the index stores it: base64url.
    func indexAudience(_ audience: String) -> String {
        Base64URL.encode(Array(audience.utf8))
    }

    /// A subject as the index stores it: base64url, or with `hashSubject` the base64url of
    /// the first 16 bytes of its SHA-256.
    func indexSubject(_ subject: String) -> String {
        configuration.hashSubject
            ? Base64URL.encode(SessionCrypto.sha256(subject.utf8).prefix(16))
            : Base64URL.encode(Array(subject.utf8))
    }

    func indexMetadata(audience: String, subject: String) throws -> SessionMetadata {
        guard !audience.isEmpty, !subject.isEmpty else {
            throw SessionError(.invalidConfiguration, message: "audience and subject must not be empty")
        }
        // Both encodings of a non-empty string are non-empty, so this cannot fail.
        return try SessionMetadata(audience: indexAudience(audience), subject: indexSubject(subject))
    }

    func requireIndexedStore() throws -> any SessionStore {
        guard let storage else {
            throw SessionError(.storageRequired, message: "listing and revoking sessions needs a storage backend")
        }
        guard configuration.storeMetadata else {
            throw SessionError(.storageRequired, message: "listing and revoking sessions needs storeMetadata")
        }
        return storage
    }

    /// The storage TTL of a record saved at `currentTime` (lua-resty-session `get_store_ttl`,
    /// called here with its arguments in the right order, so the remaining absolute lifetime
    /// shortens the TTL).
    func storeTTL(remember: Bool, currentTime: Int, creationTime: Int, rollingOffset: Int) -> Int {
        var ttl = Self.maximumTTL
        let rolling = remember ? rememberRollingTimeout : rollingTimeout
        if rolling > 0 && rolling < Self.maximumTTL { ttl = rolling }
        ttl -= currentTime - creationTime - rollingOffset
        let absolute = remember ? rememberAbsoluteTimeout : absoluteTimeout
        if absolute > 0 && absolute < Self.maximumTTL {
            ttl = min(absolute - (currentTime - creationTime), ttl)
        }
        return min(max(ttl, 1), Self.maximumTTL)
    }

    /// How many cookies a payload of `dataSize` characters needs (lua-resty-session
    /// `calculate_cookie_chunks`), `nil` beyond nine.
    static func chunkCount(nameSize: Int, dataSize: Int) -> Int? {
        let total = maximumCookieSize * maximumCookies
        var needed = nameSize + 1 + SessionCookieHeader.encodedSize + dataSize
        if needed > total { return nil }
        if needed <= maximumCookieSize { return 1 }
        for index in 2...maximumCookies {
            needed += nameSize + 2
            if needed > total { return nil }
            if needed <= maximumCookieSize * index { return index }
        }
        return nil
    }
}
