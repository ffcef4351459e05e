extension SessionManager {
    /// The options of the session core, with lua-resty-session 4.x's defaults (COOKIE.md §11).
    public struct Configuration: Sendable, Hashable {
        /// Where the session core may run without a configured key.
        public enum Environment: Sendable, Hashable {
            /// A missing `secret` and `ikm` is an error (``SessionError/Code/missingSecret``).
            case production
            /// A missing key is replaced by a random one per ``SessionManager`` (cookies do not
            /// survive a restart or reach another process), with a warning in the log.
            case development
        }

        /// A cookie name prefix that browsers enforce (RFC 6265bis §4.1.3).
        public enum CookiePrefix: String, Sendable, Hashable {
            /// `__Host-`: forces `Secure`, `Path=/` and no `Domain`.
            case host = "__Host-"
            /// `__Secure-`: forces `Secure`.
            case secure = "__Secure-"
        }

        /// The `SameSite` attribute.
        public enum SameSite: String, Sendable, Hashable {
            /// `SameSite=Strict`.
            case strict = "Strict"
            /// `SameSite=Lax` (the default).
            case lax = "Lax"
            /// `SameSite=None`; forces `Secure`.
            case none = "None"
            /// `SameSite=Default`, as lua-resty-session writes it.
            case `default` = "Default"
        }

        /// The `Priority` attribute (a Chromium extension).
        public enum Priority: String, Sendable, Hashable {
            /// `Priority=Low`.
            case low = "Low"
            /// `Priority=Medium`.
            case medium = "Medium"
            /// `Priority=High`.
            case high = "High"
        }

        /// The key derivation cost of the remember cookie.
        public enum RememberSafety: String, Sendable, Hashable {
            /// HKDF, as for the session cookie.
            case none = "None"
            /// PBKDF2-HMAC-SHA256, 1 000 iterations.
            case low = "Low"
            /// PBKDF2-HMAC-SHA256, 10 000 iterations (the default).
            case medium = "Medium"
            /// PBKDF2-HMAC-SHA256, 100 000 iterations.
            case high = "High"
            /// PBKDF2-HMAC-SHA256, 1 000 000 iterations.
            case veryHigh = "Very High"

            /// The PBKDF2 iteration count, `nil` for HKDF.
            public var iterations: Int? {
                switch self {
                case .none: nil
                case .low: 1_000
                case .medium: 10_000
                case .high: 100_000
                case .veryHigh: 1_000_000
                }
            }
        }

        /// Request facts folded into the header MAC, so a cookie only opens from the same
        /// client address, scheme or user agent.
        public struct Bind: OptionSet, Sendable, Hashable {
            /// The flag bits as they appear in the cookie header (`0x0100`, `0x0200`, `0x0400`).
            public let rawValue: UInt16
            /// Creates a set from header flag bits.
            public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0700 }

            /// The client's address.
            public static let ip = Bind(rawValue: 0x0100)
            /// The request's scheme.
            public static let scheme = Bind(rawValue: 0x0200)
            /// The `User-Agent` header.
            public static let userAgent = Bind(rawValue: 0x0400)
        }

        /// Whether a missing key is an error (the default) or replaced by a random one.
        public var environment: Environment = .production
        /// The secret; its SHA-256 digest is the key material (`ikm`).
        public var secret: String?
        /// Older secrets: they open cookies, never sign new ones.
        public var secretFallbacks: [String] = []
        /// The 32-byte key material, given directly (takes precedence over `secret`).
        public var ikm: [UInt8]?
        /// Older key materials of 32 bytes each (take precedence over `secretFallbacks`).
        public var ikmFallbacks: [[UInt8]] = []

        /// The session cookie's name.
        public var cookieName = "session"
        /// `__Host-` or `__Secure-`, prepended to both cookie names.
        public var cookiePrefix: CookiePrefix?
        /// The `Path` attribute.
        public var cookiePath = "/"
        /// The `Domain` attribute (left out when empty or `localhost`).
        public var cookieDomain: String?
        /// The `HttpOnly` attribute.
        public var cookieHTTPOnly = true
        /// The `Secure` attribute; forced on by a prefix and by `SameSite=None`.
        public var cookieSecure: Bool?
        /// The `SameSite` attribute.
        public var cookieSameSite: SameSite = .lax
        /// The `Priority` attribute.
        public var cookiePriority: Priority?
        /// The `Partitioned` attribute (CHIPS).
        public var cookiePartitioned: Bool?
        /// The obsolete `SameParty` attribute, kept for parity; forces `Secure`.
        public var cookieSameParty: Bool?

        /// Whether sessions are persistent: a second, long-lived cookie restores the session.
        public var remember = false
        /// The remember cookie's name.
        public var rememberCookieName = "remember"
        /// The remember cookie's key derivation cost.
        public var rememberSafety: RememberSafety = .medium
        /// How long a remember cookie lives without being renewed (0 disables).
        public var rememberRollingTimeout: Duration = .seconds(604_800)
        /// How long a remember cookie can be renewed (0 disables).
        public var rememberAbsoluteTimeout: Duration = .seconds(2_592_000)

        /// The audience of new sessions.
        public var audience = "default"
        /// The subject of new sessions.
        public var subject: String?
        /// Whether all audiences of a cookie must share the current subject: others are
        /// dropped on save.
        public var enforceSameSubject = false

        /// How long a stored session stays readable under its previous id after a save.
        public var staleTTL: Duration = .seconds(10)
        /// How long a session may be unused (0 disables).
        public var idlingTimeout: Duration = .seconds(900)
        /// How long a session lives without being renewed by a save (0 disables).
        public var rollingTimeout: Duration = .seconds(3600)
        /// How long a session can be renewed at all (0 disables).
        public var absoluteTimeout: Duration = .seconds(86_400)
        /// `refresh()` touches the cookie only when it was last touched longer ago than this.
        public var touchThreshold: Duration = .seconds(60)
        /// JSON longer than this many bytes is deflated (0 disables).
        public var compressionThreshold = 1024

        /// Store sessions under a hash of their id, so the store alone cannot decrypt them.
        public var hashStorageKey = false
        /// Hash subjects in the per-user index (for personal data).
        public var hashSubject = false
        /// Keep the per-user index (audience, subject → session ids) in the store.
        public var storeMetadata = false
        /// Request facts bound into the MAC.
        public var bind: Bind = []
        /// Properties ``Session/requestHeaders()`` returns, to pass to an upstream service.
        public var requestHeaders: [SessionHeader] = []
        /// Properties ``Session/responseHeaders()`` returns, to send to the client.
        public var responseHeaders: [SessionHeader] = []

        /// A configuration with every default; set a `secret` (or `ikm`) before use.
        public init() {}

        /// A configuration with a secret.
        public init(secret: String) {
            self.secret = secret
        }
    }
}

extension SessionManager.Configuration: CustomStringConvertible {
    /// A summary without key material: secrets and ikms are only counted.
    public var description: String {
        var keys = secret != nil || ikm != nil ? "key: set" : "key: none"
        let fallbacks = max(secretFallbacks.count, ikmFallbacks.count)
        if fallbacks > 0 { keys += ", fallbacks: \(fallbacks)" }
        return "SessionManager.Configuration(\(keys), cookieName: \(cookieName), remember: \(remember), audience: \(audience))"
    }
}

extension SessionManager.Configuration {
    /// Whole seconds of a duration (fractions are dropped; negative durations are an error).
    static func seconds(_ duration: Duration, _ name: String) throws -> Int {
        let seconds = duration.components.seconds
        guard seconds >= 0 else {
            throw SessionError(.invalidConfiguration, message: "\(name) must not be negative")
        }
        return Int(seconds)
    }
}
