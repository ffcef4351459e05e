import Foundation
import Logging
import RedisSessionStorage
import RestySession
import SessionStorage
import Synchronization
import Testing

public let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Unix time the tests move by hand.
public final class TestTime: Sendable {
    private let value: Atomic<Int>
    public init(_ start: Int = Int(Date().timeIntervalSince1970)) { value = Atomic(start) }
    public var now: Int { value.load(ordering: .relaxed) }
    public func advance(_ seconds: Int) { value.add(seconds, ordering: .relaxed) }
    public var clock: SessionClock { SessionClock { self.now } }
}

/// The stores the adapter tests (Hummingbird and Vapor) run on.
public enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory
    case redis

    public var testDescription: String { rawValue }

    /// Runs `body` with a store of this backend (its pool running), keys under a fresh prefix.
    public func withStore<T: Sendable>(_ body: @Sendable (any SessionStore) async throws -> T) async throws -> T {
        let prefix = "adaptertest-\(UUID().uuidString.prefix(8))"
        switch self {
        case .memory:
            return try await body(MemorySessionStore(configuration: .init(prefix: prefix, zone: "adapter-tests"), logger: quiet))
        case .redis:
            let port = try #require(ProcessInfo.processInfo.environment["REDIS_PORT"].flatMap(Int.init), "REDIS_PORT is not set: start servers with scripts/services.sh")
            let store = RedisSessionStore(configuration: .init(prefix: prefix, port: port, connectTimeout: .seconds(5)), logger: quiet)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.run() }
                defer { group.cancelAll() }
                return try await body(store)
            }
        }
    }
}

/// `name=value` of a `Set-Cookie` value.
public func cookiePair(_ setCookie: String) -> String {
    String(setCookie.prefix { $0 != ";" })
}

/// Whether a `Set-Cookie` value expires the cookie.
public func isExpiring(_ setCookie: String) -> Bool {
    setCookie.contains("Max-Age=0") || setCookie.contains("Expires=Thu, 01 Jan 1970")
}
