import NIOCore

/// One command of memcached's meta protocol (plus `stats`), as sent on the wire.
///
/// The connection adds an opaque token (`O…`) to every meta command itself, so responses of
/// pipelined requests are matched to their requests.
public enum MemcachedRequest: Sendable, Hashable {
    /// `mg <key> <flags>*`
    case metaGet(key: String, flags: [MemcachedRequestFlag])
    /// `ms <key> <datalen> <flags>*` followed by the value.
    case metaSet(key: String, value: ByteBuffer, flags: [MemcachedRequestFlag])
    /// `md <key> <flags>*`
    case metaDelete(key: String, flags: [MemcachedRequestFlag])
    /// `ma <key> <flags>*`
    case metaArithmetic(key: String, flags: [MemcachedRequestFlag])
    /// `mn`: answered by `MN`.
    case metaNoOp
    /// `stats` or `stats <group>`; answered by `STAT name value` lines and `END`.
    case stats(group: String?)

    /// The key the command works on (`nil` for `mn` and `stats`).
    public var key: String? {
        switch self {
        case .metaGet(let key, _), .metaSet(let key, _, _), .metaDelete(let key, _), .metaArithmetic(let key, _):
            return key
        case .metaNoOp, .stats:
            return nil
        }
    }

    /// The command's name on the wire (`mg`, `ms`, …), for logs.
    public var commandName: String {
        switch self {
        case .metaGet: "mg"
        case .metaSet: "ms"
        case .metaDelete: "md"
        case .metaArithmetic: "ma"
        case .metaNoOp: "mn"
        case .stats: "stats"
        }
    }

    /// Validates the key (and the stats group) so nothing malformed ever reaches the wire.
    public func validate() throws {
        if let key { try MemcachedKey.validate(key) }
        if case .stats(let group?) = self {
            guard !group.isEmpty, group.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
                throw MemcachedClientError(.invalidKey, message: "stats group must be one word")
            }
        }
    }
}

/// A flag of a meta command: one character and an optional token.
///
/// Created only through the static members, so a token can never hold a space or a line break.
public struct MemcachedRequestFlag: Sendable, Hashable, CustomStringConvertible {
    /// The flag character.
    public let character: Character
    /// The token written right after the character, if any.
    public let token: String?

    private init(_ character: Character, _ token: String? = nil) {
        self.character = character
        self.token = token
    }

    /// `v`: return the value.
    public static let returnValue = MemcachedRequestFlag("v")
    /// `c`: return the CAS token.
    public static let returnCAS = MemcachedRequestFlag("c")
    /// `f`: return the client flags.
    public static let returnClientFlags = MemcachedRequestFlag("f")
    /// `t`: return the remaining TTL in seconds (`-1` for none).
    public static let returnTTL = MemcachedRequestFlag("t")
    /// `s`: return the value's size.
    public static let returnSize = MemcachedRequestFlag("s")
    /// `k`: return the key.
    public static let returnKey = MemcachedRequestFlag("k")
    /// `u`: do not bump the item in the LRU.
    public static let noLRUBump = MemcachedRequestFlag("u")
    /// `I`: invalidate (with `C`: mark stale instead of failing).
    public static let invalidate = MemcachedRequestFlag("I")

    /// `T<seconds>`: set the TTL (for `mg`: touch).
    public static func ttl(_ expiration: MemcachedExpiration) -> MemcachedRequestFlag {
        MemcachedRequestFlag("T", String(expiration.wireValue))
    }

    /// `N<seconds>`: create the item on a miss with this TTL.
    public static func vivify(_ expiration: MemcachedExpiration) -> MemcachedRequestFlag {
        MemcachedRequestFlag("N", String(expiration.wireValue))
    }

    /// `C<cas>`: only act when the item's CAS token still is `cas`.
    public static func compareCAS(_ cas: UInt64) -> MemcachedRequestFlag {
        MemcachedRequestFlag("C", String(cas))
    }

    /// `F<flags>`: the client flags to store.
    public static func clientFlags(_ flags: UInt32) -> MemcachedRequestFlag {
        MemcachedRequestFlag("F", String(flags))
    }

    /// `D<delta>`: the delta of `ma`.
    public static func delta(_ delta: UInt64) -> MemcachedRequestFlag {
        MemcachedRequestFlag("D", String(delta))
    }

    /// `J<value>`: the initial value of `ma` when it creates the item.
    public static func initialValue(_ value: UInt64) -> MemcachedRequestFlag {
        MemcachedRequestFlag("J", String(value))
    }

    /// `M<mode>` of `ms`.
    public static func setMode(_ mode: SetMode) -> MemcachedRequestFlag {
        MemcachedRequestFlag("M", mode.rawValue)
    }

    /// `M<mode>` of `ma`.
    public static func arithmeticMode(_ mode: ArithmeticMode) -> MemcachedRequestFlag {
        MemcachedRequestFlag("M", mode.rawValue)
    }

    /// The modes of `ms`.
    public enum SetMode: String, Sendable, Hashable {
        /// `S`: set (the default).
        case set = "S"
        /// `E`: add, store only if absent.
        case add = "E"
        /// `A`: append to an existing item.
        case append = "A"
        /// `P`: prepend to an existing item.
        case prepend = "P"
        /// `R`: replace, store only if present.
        case replace = "R"
    }

    /// The modes of `ma`.
    public enum ArithmeticMode: String, Sendable, Hashable {
        /// `I`: increment.
        case increment = "I"
        /// `D`: decrement (stops at 0).
        case decrement = "D"
    }

    /// The flag as written on the wire, e.g. `T60`.
    public var description: String { String(character) + (token ?? "") }
}

/// When an item expires.
public enum MemcachedExpiration: Sendable, Hashable {
    /// Never (exptime 0).
    case never
    /// This many seconds from now (1 ... 30 days; memcached reads larger numbers as Unix times).
    case seconds(Int)
    /// At this Unix time (seconds).
    case unixTime(Int)

    /// The longest relative expiration memcached accepts (30 days).
    public static let maximumRelativeSeconds = 60 * 60 * 24 * 30

    /// `seconds` from `now`: relative when it fits in 30 days, else the absolute Unix time
    /// `now + seconds` (so it is not misread as a date in 1970).
    public static func after(_ seconds: Int, now: Int) -> MemcachedExpiration {
        seconds <= maximumRelativeSeconds ? .seconds(seconds) : .unixTime(now + seconds)
    }

    /// The number written on the wire.
    var wireValue: Int {
        switch self {
        case .never:
            return 0
        case .seconds(let seconds):
            // 0 would mean "never": the shortest expiration that expires is 1 second; a
            // negative number expires at once.
            return seconds <= 0 ? -1 : min(seconds, Self.maximumRelativeSeconds)
        case .unixTime(let time):
            return time <= Self.maximumRelativeSeconds ? -1 : time
        }
    }
}
