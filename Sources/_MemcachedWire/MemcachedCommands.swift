import NIOCore

/// Anything that runs memcached requests: a ``MemcachedConnection`` or a ``MemcachedClient``.
/// The typed commands below are built on ``execute(_:)``.
public protocol MemcachedCommands: Sendable {
    /// Sends one request and returns its reply. Error replies are thrown as
    /// ``MemcachedClientError``; nothing is sent when the key is invalid.
    nonisolated(nonsending) func execute(_ request: MemcachedRequest) async throws -> MemcachedResponse
}

/// An item read by ``MemcachedCommands/get(_:)``.
public struct MemcachedItem: Sendable, Hashable {
    /// The value.
    public var value: ByteBuffer
    /// The client flags stored with it.
    public var clientFlags: UInt32
    /// Its CAS token, for ``MemcachedCommands/compareAndSwap(_:value:cas:expiration:clientFlags:)``.
    public var cas: UInt64
    /// Its remaining TTL in seconds; `nil` when it never expires.
    public var ttl: Int?

    /// The value as a string (invalid UTF-8 is repaired).
    public var string: String { String(buffer: value) }
}

/// The outcome of a compare-and-swap.
public enum MemcachedCASResult: Sendable, Hashable {
    /// Stored.
    case stored
    /// Someone changed the item since its CAS token was read.
    case exists
    /// The item is gone.
    case notFound
}

/// The remaining lifetime of an item.
public enum MemcachedTTL: Sendable, Hashable {
    /// It never expires.
    case never
    /// It expires in this many seconds.
    case seconds(Int)
}

extension MemcachedCommands {
    /// Reads an item with its flags, CAS token and TTL (`mg <key> v f c t`); `nil` on a miss.
    public nonisolated(nonsending) func get(_ key: String) async throws -> MemcachedItem? {
        let meta = try await meta(.metaGet(key: key, flags: [.returnValue, .returnClientFlags, .returnCAS, .returnTTL]))
        switch meta.status {
        case .value:
            let ttl = meta.flags.ttl.flatMap { $0 < 0 ? nil : $0 }
            return MemcachedItem(
                value: meta.value ?? ByteBuffer(),
                clientFlags: meta.flags.clientFlags ?? 0,
                cas: meta.flags.cas ?? 0,
                ttl: ttl
            )
        case .miss:
            return nil
        default:
            throw Self.unexpected(meta)
        }
    }

    /// Stores an item unconditionally (`ms <key> <len> T F`).
    public nonisolated(nonsending) func set(_ key: String, value: ByteBuffer, expiration: MemcachedExpiration, clientFlags: UInt32 = 0) async throws {
        let meta = try await meta(.metaSet(key: key, value: value, flags: [.ttl(expiration), .clientFlags(clientFlags)]))
        guard meta.status == .headerOnly else { throw Self.unexpected(meta) }
    }

    /// Stores an item only if the key is absent (`ms … ME`); `false` if it exists.
    public nonisolated(nonsending) func add(_ key: String, value: ByteBuffer, expiration: MemcachedExpiration, clientFlags: UInt32 = 0) async throws -> Bool {
        let meta = try await meta(
            .metaSet(key: key, value: value, flags: [.ttl(expiration), .clientFlags(clientFlags), .setMode(.add)])
        )
        switch meta.status {
        case .headerOnly: return true
        case .notStored: return false
        default: throw Self.unexpected(meta)
        }
    }

    /// Appends to an existing item, atomically on the server (`ms … MA`); `false` if the key
    /// is absent. The item keeps its TTL.
    public nonisolated(nonsending) func append(_ key: String, value: ByteBuffer) async throws -> Bool {
        let meta = try await meta(.metaSet(key: key, value: value, flags: [.setMode(.append)]))
        switch meta.status {
        case .headerOnly: return true
        case .notStored, .notFound: return false
        default: throw Self.unexpected(meta)
        }
    }

    /// Stores an item only if its CAS token still is `cas` (`ms … C<cas>`).
    public func compareAndSwap(
        _ key: String,
        value: ByteBuffer,
        cas: UInt64,
        expiration: MemcachedExpiration,
        clientFlags: UInt32 = 0
    ) async throws -> MemcachedCASResult {
        let meta = try await meta(
            .metaSet(key: key, value: value, flags: [.ttl(expiration), .clientFlags(clientFlags), .compareCAS(cas)])
        )
        switch meta.status {
        case .headerOnly: return .stored
        case .exists: return .exists
        case .notFound, .notStored: return .notFound
        default: throw Self.unexpected(meta)
        }
    }

    /// Deletes an item (`md`); `false` if it was absent.
    @discardableResult
    public nonisolated(nonsending) func delete(_ key: String) async throws -> Bool {
        let meta = try await meta(.metaDelete(key: key, flags: []))
        switch meta.status {
        case .headerOnly: return true
        case .notFound: return false
        default: throw Self.unexpected(meta)
        }
    }

    /// Deletes an item only if its CAS token still is `cas` (`md … C<cas>`).
    public nonisolated(nonsending) func compareAndDelete(_ key: String, cas: UInt64) async throws -> MemcachedCASResult {
        let meta = try await meta(.metaDelete(key: key, flags: [.compareCAS(cas)]))
        switch meta.status {
        case .headerOnly: return .stored
        case .exists: return .exists
        case .notFound: return .notFound
        default: throw Self.unexpected(meta)
        }
    }

    /// Sets a new expiration on an existing item (`mg <key> T`); `false` if it is absent.
    @discardableResult
    public nonisolated(nonsending) func touch(_ key: String, expiration: MemcachedExpiration) async throws -> Bool {
        let meta = try await meta(.metaGet(key: key, flags: [.ttl(expiration)]))
        switch meta.status {
        case .headerOnly: return true
        case .miss: return false
        default: throw Self.unexpected(meta)
        }
    }

    /// The remaining lifetime of an item (`mg <key> t`); `nil` if it is absent.
    public nonisolated(nonsending) func remainingTTL(_ key: String) async throws -> MemcachedTTL? {
        let meta = try await meta(.metaGet(key: key, flags: [.returnTTL]))
        switch meta.status {
        case .headerOnly:
            guard let ttl = meta.flags.ttl else { throw Self.unexpected(meta) }
            return ttl < 0 ? .never : .seconds(ttl)
        case .miss:
            return nil
        default:
            throw Self.unexpected(meta)
        }
    }

    /// Increments a counter (`ma <key> v D<delta>`); `nil` if it is absent.
    public nonisolated(nonsending) func increment(_ key: String, by delta: UInt64 = 1) async throws -> UInt64? {
        let meta = try await meta(.metaArithmetic(key: key, flags: [.returnValue, .delta(delta)]))
        switch meta.status {
        case .value:
            guard let value = meta.value.flatMap({ UInt64(String(buffer: $0).trimmingSpaces) }) else {
                throw Self.unexpected(meta)
            }
            return value
        case .notFound:
            return nil
        default:
            throw Self.unexpected(meta)
        }
    }

    /// Round trip with no effect (`mn`).
    public nonisolated(nonsending) func noOp() async throws {
        let meta = try await meta(.metaNoOp)
        guard meta.status == .noOp else { throw Self.unexpected(meta) }
    }

    /// The server's statistics (`stats` or `stats <group>`).
    public nonisolated(nonsending) func stats(_ group: String? = nil) async throws -> [String: String] {
        switch try await execute(.stats(group: group)) {
        case .stats(let statistics):
            return statistics
        case .error(let reply):
            throw reply.clientError
        case .meta:
            throw MemcachedClientError(.protocolError, message: "a meta reply to stats")
        }
    }

    /// Runs a meta request and returns its meta reply (error replies are thrown).
    public nonisolated(nonsending) func meta(_ request: MemcachedRequest) async throws -> MemcachedMetaResponse {
        switch try await execute(request) {
        case .meta(let meta):
            return meta
        case .error(let reply):
            throw reply.clientError
        case .stats:
            throw MemcachedClientError(.protocolError, message: "a stats reply to a meta request")
        }
    }

    static func unexpected(_ meta: MemcachedMetaResponse) -> MemcachedClientError {
        MemcachedClientError(.protocolError, message: "unexpected reply status \(meta.status.rawValue)")
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        var text = self[...]
        while text.last == " " { text.removeLast() }
        return text
    }
}
