import NIOCore

/// One reply of the server, as decoded from the wire.
public enum MemcachedResponse: Sendable, Hashable {
    /// A meta reply (`HD`, `VA`, `EN`, `NF`, `NS`, `EX`, `MN`).
    case meta(MemcachedMetaResponse)
    /// The `STAT name value` lines of a `stats` reply, up to `END`.
    case stats([String: String])
    /// `ERROR`, `CLIENT_ERROR <message>` or `SERVER_ERROR <message>`.
    case error(MemcachedErrorReply)
}

/// A meta reply: its status, the flags the server returned, and the value of a `VA` reply.
public struct MemcachedMetaResponse: Sendable, Hashable {
    /// The two-letter status.
    public enum Status: String, Sendable, Hashable {
        /// `HD`: success with no value.
        case headerOnly = "HD"
        /// `VA`: success with a value.
        case value = "VA"
        /// `EN`: a get missed.
        case miss = "EN"
        /// `NF`: not found.
        case notFound = "NF"
        /// `NS`: not stored.
        case notStored = "NS"
        /// `EX`: the CAS token did not match.
        case exists = "EX"
        /// `MN`: the answer to `mn`.
        case noOp = "MN"
    }

    /// The status.
    public var status: Status
    /// The flags returned.
    public var flags: MemcachedResponseFlags
    /// The data block of a `VA` reply.
    public var value: ByteBuffer?

    /// Creates a reply.
    public init(status: Status, flags: MemcachedResponseFlags = .init(), value: ByteBuffer? = nil) {
        self.status = status
        self.flags = flags
        self.value = value
    }
}

/// The flags a meta reply carries, parsed.
public struct MemcachedResponseFlags: Sendable, Hashable {
    /// `O`: the opaque token the request carried.
    public var opaque: String?
    /// `c`: the CAS token.
    public var cas: UInt64?
    /// `t`: the remaining TTL in seconds; `-1` when the item never expires.
    public var ttl: Int?
    /// `f`: the client flags.
    public var clientFlags: UInt32?
    /// `s`: the value's size.
    public var size: Int?
    /// `k`: the key.
    public var key: String?
    /// `h`: whether the item was hit before.
    public var hitBefore: Bool?
    /// `l`: seconds since the last access.
    public var lastAccess: Int?
    /// `W`: this client won the right to recache.
    public var won = false
    /// `X`: the item is stale.
    public var stale = false
    /// `Z`: another client already won.
    public var winTokenSent = false
    /// `b`: the returned key is base64.
    public var base64Key = false

    /// Creates an empty set of flags.
    public init(opaque: String? = nil, cas: UInt64? = nil, ttl: Int? = nil, clientFlags: UInt32? = nil, size: Int? = nil) {
        self.opaque = opaque
        self.cas = cas
        self.ttl = ttl
        self.clientFlags = clientFlags
        self.size = size
    }
}

/// An error reply of the server.
public struct MemcachedErrorReply: Sendable, Hashable {
    /// Which error line it was.
    public enum Kind: String, Sendable, Hashable {
        /// `ERROR`: an unknown command.
        case error = "ERROR"
        /// `CLIENT_ERROR`: the request was malformed.
        case clientError = "CLIENT_ERROR"
        /// `SERVER_ERROR`: the server could not carry the request out.
        case serverError = "SERVER_ERROR"
    }

    /// Which error line it was.
    public var kind: Kind
    /// The text after the keyword (may be empty).
    public var message: String

    /// Creates an error reply.
    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    /// The typed error for this reply: `SERVER_ERROR object too large for cache` becomes
    /// ``MemcachedClientError/Code/valueTooLarge``.
    public var clientError: MemcachedClientError {
        switch kind {
        case .error:
            return MemcachedClientError(.unknownCommand, message: "the server does not know the command", serverMessage: message)
        case .clientError:
            return MemcachedClientError(.clientError, message: "the server rejected the request", serverMessage: message)
        case .serverError:
            if message.contains("too large") {
                return MemcachedClientError(.valueTooLarge, message: "the value is larger than the server's item size limit", serverMessage: message)
            }
            return MemcachedClientError(.serverError, message: "the server failed to carry out the request", serverMessage: message)
        }
    }
}
