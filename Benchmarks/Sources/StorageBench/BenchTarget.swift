import Hummingbird
import SessionStorage

/// What the load generator drives: one storage, or a reference to compare it with.
protocol BenchTarget: Sendable {
    /// Stores `value` under `key` for `ttl` seconds.
    nonisolated(nonsending) func set(key: String, value: String, ttl: Int, now: Int) async throws
    /// Reads `key`.
    nonisolated(nonsending) func get(key: String, now: Int) async throws -> String?
    /// Stores a session with rotation and two index pairs (the session core's write path).
    nonisolated(nonsending) func setRotating(key: String, oldKey: String, value: String, ttl: Int, now: Int, metadata: SessionMetadata) async throws
    /// Lists a subject's sessions.
    nonisolated(nonsending) func readMetadata(audience: String, subject: String, now: Int) async throws -> Int
}

/// Any storage of this project.
struct StoreTarget: BenchTarget {
    let store: any SessionStore

    // The wrappers of both sides are inlined into the load loop (no async frame of their own):
    // what is measured is the store's call and the reference's call.
    @inline(__always)
    nonisolated(nonsending) func set(key: String, value: String, ttl: Int, now: Int) async throws {
        try await store.set(name: "session", key: key, value: value, ttl: ttl, currentTime: now)
    }

    @inline(__always)
    nonisolated(nonsending) func get(key: String, now: Int) async throws -> String? {
        try await store.get(name: "session", key: key, currentTime: now)
    }

    nonisolated(nonsending) func setRotating(key: String, oldKey: String, value: String, ttl: Int, now: Int, metadata: SessionMetadata) async throws {
        try await store.set(
            name: "session", key: key, value: value, ttl: ttl, currentTime: now, oldKey: oldKey, staleTTL: 10,
            metadata: metadata)
    }

    nonisolated(nonsending) func readMetadata(audience: String, subject: String, now: Int) async throws -> Int {
        try await store.readMetadata(name: "session", audience: audience, subject: subject, currentTime: now).count
    }
}

/// Hummingbird's `MemoryPersistDriver` (an actor), the reference for the memory store.
struct HummingbirdMemoryTarget: BenchTarget {
    let driver = MemoryPersistDriver()

    @inline(__always)
    nonisolated(nonsending) func set(key: String, value: String, ttl: Int, now: Int) async throws {
        try await driver.set(key: "session:" + key, value: value, expires: .seconds(ttl))
    }

    @inline(__always)
    nonisolated(nonsending) func get(key: String, now: Int) async throws -> String? {
        try await driver.get(key: "session:" + key, as: String.self)
    }

    nonisolated(nonsending) func setRotating(key: String, oldKey: String, value: String, ttl: Int, now: Int, metadata: SessionMetadata) async throws {
        try await driver.set(key: "session:" + key, value: value, expires: .seconds(ttl))
    }

    nonisolated(nonsending) func readMetadata(audience: String, subject: String, now: Int) async throws -> Int { 0 }
}

/// The memory zone alone, without the store's validation, naming and instrumentation: shows
/// what the store layer costs on top of the zone.
struct ZoneTarget: BenchTarget {
    let zone = MemoryZone(name: "bench-zone", capacity: 512 << 20)

    nonisolated(nonsending) func set(key: String, value: String, ttl: Int, now: Int) async throws {
        try zone.set("session:" + key, value: value, expiresAt: now + ttl, now: now)
    }

    nonisolated(nonsending) func get(key: String, now: Int) async throws -> String? {
        zone.get("session:" + key, now: now)
    }

    nonisolated(nonsending) func setRotating(key: String, oldKey: String, value: String, ttl: Int, now: Int, metadata: SessionMetadata) async throws {
        try zone.set("session:" + key, value: value, expiresAt: now + ttl, now: now)
    }

    nonisolated(nonsending) func readMetadata(audience: String, subject: String, now: Int) async throws -> Int { 0 }
}

/// No storage at all: what the benchmark loop itself costs per operation (clock read, latency
/// record, key choice and key string, the call).
struct NoopTarget: BenchTarget {
    @inline(never) nonisolated(nonsending) func set(key: String, value: String, ttl: Int, now: Int) async throws {}

    @inline(never) nonisolated(nonsending) func get(key: String, now: Int) async throws -> String? { nil }

    nonisolated(nonsending) func setRotating(key: String, oldKey: String, value: String, ttl: Int, now: Int, metadata: SessionMetadata) async throws {}

    nonisolated(nonsending) func readMetadata(audience: String, subject: String, now: Int) async throws -> Int { 0 }
}
