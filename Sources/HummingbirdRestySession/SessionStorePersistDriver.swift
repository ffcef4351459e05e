import Foundation
import Hummingbird
import SessionStorage

/// A Hummingbird `PersistDriver` on any `SessionStore` of this project, so Hummingbird's
/// persist framework and hummingbird-auth's `SessionMiddleware` keep their data on Redis,
/// memcached, MySQL, the memory store…
///
/// Each value is stored JSON-encoded as the record `key` of the cookie name ``name``, in an
/// envelope that also holds its expiry, so TTLs are honoured: the store drops the record when
/// it expires, `set` without `expires` keeps an existing record's expiry (as the protocol
/// requires), and `getWithTTL` returns the time left. A value set without any expiry is kept
/// for ``SessionStoreValidation/maximumTTL`` (400 days), the longest any store accepts, and
/// is reported with a `nil` TTL.
///
/// Keys are percent-encoded where the storage contract forbids a character (`:`, `;`) and
/// outside ASCII letters, digits and `-._~+/=`. `create` checks and then writes: two
/// concurrent `create`s of one key can both succeed (no store of the contract has an
/// "add if absent"); hummingbird-auth's session ids are random, so this does not arise there.
///
/// The driver runs no background work; a store that owns a pool is run as its own `Service`.
public struct SessionStorePersistDriver: PersistDriver {
    /// The store the values live in.
    public let store: any SessionStore
    /// The record name (the storage contract's cookie name) the values are stored under.
    public let name: String
    private let now: @Sendable () -> Int

    /// Creates a driver.
    ///
    /// - Parameters:
    ///   - store: any store of this project.
    ///   - name: the record name the values are stored under (default `persist`).
    ///   - now: the current Unix time in seconds.
    public init(
        store: any SessionStore,
        name: String = "persist",
        now: @escaping @Sendable () -> Int = { Int(Date().timeIntervalSince1970) }
    ) {
        self.store = store
        self.name = name
        self.now = now
    }

    struct Envelope<Object: Codable>: Codable {
        /// The expiry in Unix seconds; `nil` when the value was set without one.
        var expires: Int?
        var value: Object
    }

    /// Only the expiry, to keep it on a `set` without `expires`.
    struct ExpiryOnly: Decodable {
        var expires: Int?
    }

    public func create<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        let currentTime = now()
        guard try await store.get(name: name, key: Self.storageKey(key), currentTime: currentTime) == nil else {
            throw PersistError.duplicate
        }
        try await write(key: key, value: value, expiry: expires.map { currentTime + Self.seconds($0) }, currentTime: currentTime)
    }

    public func set<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        let currentTime = now()
        var expiry: Int?
        if let expires {
            expiry = currentTime + Self.seconds(expires)
        } else if let existing = try await store.get(name: name, key: Self.storageKey(key), currentTime: currentTime) {
            expiry = try? JSONDecoder().decode(ExpiryOnly.self, from: Data(existing.utf8)).expires
        }
        try await write(key: key, value: value, expiry: expiry, currentTime: currentTime)
    }

    public func get<Object: Codable & Sendable>(key: String, as type: Object.Type) async throws -> Object? {
        try await read(key: key, as: type)?.value
    }

    public func getWithTTL<Object: Codable & Sendable>(key: String, as type: Object.Type) async throws -> (object: Object, ttl: Duration?)? {
        guard let envelope = try await read(key: key, as: type) else { return nil }
        return (envelope.value, envelope.expires.map { .seconds(max(0, $0 - now())) })
    }

    public func remove(key: String) async throws {
        try await store.delete(name: name, key: Self.storageKey(key), currentTime: now())
    }

    // MARK: internals

    private func write<Object: Codable & Sendable>(key: String, value: Object, expiry: Int?, currentTime: Int) async throws {
        let ttl = expiry.map { $0 - currentTime } ?? SessionStoreValidation.maximumTTL
        let storageKey = Self.storageKey(key)
        guard ttl > 0 else {
            // Already expired: what a store would drop at once.
            try await store.delete(name: name, key: storageKey, currentTime: currentTime)
            return
        }
        let encoded = try JSONEncoder().encode(Envelope(expires: expiry, value: value))
        try await store.set(
            name: name, key: storageKey, value: String(decoding: encoded, as: UTF8.self),
            ttl: min(ttl, SessionStoreValidation.maximumTTL), currentTime: currentTime)
    }

    private func read<Object: Codable & Sendable>(key: String, as type: Object.Type) async throws -> Envelope<Object>? {
        let currentTime = now()
        guard let stored = try await store.get(name: name, key: Self.storageKey(key), currentTime: currentTime) else { return nil }
        let envelope: Envelope<Object>
        do {
            envelope = try JSONDecoder().decode(Envelope<Object>.self, from: Data(stored.utf8))
        } catch {
            throw PersistError.invalidConversion
        }
        if let expires = envelope.expires, expires <= currentTime { return nil }
        return envelope
    }

    /// Whole seconds of a duration, rounded up so a value never expires early; at least one.
    static func seconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) + (attoseconds > 0 ? 1 : 0))
    }

    /// The key as the storage contract accepts it.
    static func storageKey(_ key: String) -> String {
        var result = ""
        for byte in key.utf8 {
            let scalar = Unicode.Scalar(byte)
            if byte < 0x80, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-._~+/=".unicodeScalars.contains(scalar) {
                result.unicodeScalars.append(scalar)
            } else {
                let digits = Array("0123456789ABCDEF".unicodeScalars)
                result.unicodeScalars.append("%")
                result.unicodeScalars.append(digits[Int(byte >> 4)])
                result.unicodeScalars.append(digits[Int(byte & 0x0F)])
            }
        }
        return result.isEmpty ? "%" : result
    }
}
