import Foundation
import SessionStorage
import Vapor

/// A Vapor `AsyncSessionDriver` on any `SessionStore` of this project, so Vapor's own
/// `SessionsMiddleware` (and `req.session`) keep their sessions on Redis, memcached, MySQL,
/// the memory store…
///
/// A session is the record `id` of the cookie name ``name``, its data JSON-encoded, and lives
/// for ``ttl`` after each write (Vapor writes on every request that has a session, so the TTL
/// slides). Session ids are 32 random bytes in base64url; an id from a cookie that is not of
/// that shape reads as no session, so a forged cookie never reaches the store.
public struct SessionStoreSessionDriver: AsyncSessionDriver {
    /// The store the sessions live in.
    public let store: any SessionStore
    /// The record name (the storage contract's cookie name) the sessions are stored under.
    public let name: String
    /// How long a session lives after its last write.
    public let ttl: Duration
    private let now: @Sendable () -> Int

    /// Creates a driver.
    ///
    /// - Parameters:
    ///   - store: any store of this project.
    ///   - name: the record name (default `vapor`).
    ///   - ttl: how long a session lives after its last write (default one week, the lifetime of
    ///     Vapor's default session cookie); at most 400 days.
    ///   - now: the current Unix time in seconds.
    public init(
        store: any SessionStore,
        name: String = "vapor",
        ttl: Duration = .seconds(7 * 86_400),
        now: @escaping @Sendable () -> Int = { Int(Date().timeIntervalSince1970) }
    ) {
        self.store = store
        self.name = name
        self.ttl = ttl
        self.now = now
    }

    var ttlSeconds: Int {
        min(SessionStoreValidation.maximumTTL, max(1, Int(ttl.components.seconds)))
    }

    public func createSession(_ data: SessionData, for request: Request) async throws -> SessionID {
        let id = Self.makeID()
        try await write(id: id, data: data)
        return SessionID(string: id)
    }

    public func readSession(_ sessionID: SessionID, for request: Request) async throws -> SessionData? {
        guard Self.isValidID(sessionID.string) else { return nil }
        guard let stored = try await store.get(name: name, key: sessionID.string, currentTime: now()) else { return nil }
        return try JSONDecoder().decode(SessionData.self, from: Data(stored.utf8))
    }

    public func updateSession(_ sessionID: SessionID, to data: SessionData, for request: Request) async throws -> SessionID {
        guard Self.isValidID(sessionID.string) else { return try await createSession(data, for: request) }
        try await write(id: sessionID.string, data: data)
        return sessionID
    }

    public func deleteSession(_ sessionID: SessionID, for request: Request) async throws {
        guard Self.isValidID(sessionID.string) else { return }
        try await store.delete(name: name, key: sessionID.string, currentTime: now())
    }

    private func write(id: String, data: SessionData) async throws {
        let encoded = try JSONEncoder().encode(data)
        try await store.set(name: name, key: id, value: String(decoding: encoded, as: UTF8.self), ttl: ttlSeconds, currentTime: now())
    }

    /// 32 random bytes (from the system's generator), base64url without padding: 43 characters.
    static func makeID() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func isValidID(_ id: String) -> Bool {
        id.utf8.count == 43 && id.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                true
            default:
                false
            }
        }
    }
}
