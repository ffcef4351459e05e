import SessionStorage
import SessionStorageConformance
import Testing

@Suite("Memory zone")
struct MemoryZoneTests {
    @Test func zonesAreSharedByName() async throws {
        let a = MemorySessionStore(configuration: .init(zone: "shared-zone-test"))
        let b = MemorySessionStore(configuration: .init(zone: "shared-zone-test", capacity: 1 << 20))
        #expect(a.zone === b.zone)
        try await a.set(name: "session", key: "K", value: "from a", ttl: 60, currentTime: 1000)
        #expect(try await b.get(name: "session", key: "K", currentTime: 1000) == "from a")
        let other = MemorySessionStore(configuration: .init(zone: "another-zone-test"))
        #expect(try await other.get(name: "session", key: "K", currentTime: 1000) == nil)
    }

    @Test func leastRecentlyUsedEntriesAreEvictedWhenFull() throws {
        let zone = MemoryZone(name: "lru", capacity: 1 << 20)
        #expect(zone.shardCount == 1)
        let value = String(repeating: "x", count: 1000)
        try zone.set("first", value: value, expiresAt: 100, now: 0)
        try zone.set("second", value: value, expiresAt: 100, now: 0)
        // Reading "first" makes "second" the least recently used.
        #expect(zone.get("first", now: 1) == value)
        for index in 0..<2000 { try zone.set("filler\(index)", value: value, expiresAt: 100, now: 1) }
        #expect(zone.usedBytes <= zone.capacity)
        #expect(zone.get("second", now: 1) == nil)
        #expect(zone.get("filler1999", now: 1) == value)
    }

    /// The address of a string's UTF-8 bytes (nil for a small string stored inline).
    private static func storageAddress(_ string: String) -> UnsafeRawPointer? {
        string.utf8.withContiguousStorageIfAvailable { UnsafeRawPointer($0.baseAddress) } ?? nil
    }

    @Test func zoneStoresItsOwnCopyOfEachValue() throws {
        let zone = MemoryZone(name: "copies", capacity: 4 << 20)
        // One caller string stored under two keys: the zone holds a copy per entry, not the
        // caller's storage (whose reference count every core reading either key would update).
        let value = String(decoding: Array(repeating: UInt8(ascii: "v"), count: 1024), as: UTF8.self)
        let callerBytes = try #require(Self.storageAddress(value))
        try zone.set("a", value: value, expiresAt: 100, now: 0)
        try zone.set("b", value: value, expiresAt: 100, now: 0)
        let a = try #require(zone.get("a", now: 1))
        let b = try #require(zone.get("b", now: 1))
        #expect(a == value && b == value)
        let aBytes = try #require(Self.storageAddress(a))
        let bBytes = try #require(Self.storageAddress(b))
        #expect(aBytes != callerBytes && bBytes != callerBytes && aBytes != bBytes)
        // Overwriting keeps a copy too, with the new content; non-ASCII bytes survive exactly.
        let replaced = String(repeating: "é", count: 600)
        try zone.set("a", value: replaced, expiresAt: 100, now: 0)
        let again = try #require(zone.get("a", now: 1))
        #expect(again == replaced)
        #expect(Array(again.utf8) == Array(replaced.utf8))
        #expect(Self.storageAddress(again) != Self.storageAddress(replaced))
        // Short values are stored whole as well.
        try zone.set("c", value: "short", expiresAt: 100, now: 0)
        #expect(zone.get("c", now: 1) == "short")
        try zone.set("d", value: "", expiresAt: 100, now: 0)
        #expect(zone.get("d", now: 1) == "")
    }

    @Test func recentlyReadEntrySurvivesEviction() throws {
        let zone = MemoryZone(name: "lru-read", capacity: 1 << 20)
        let value = String(repeating: "y", count: 10_000)
        try zone.set("hot", value: value, expiresAt: 1000, now: 0)
        for index in 0..<500 {
            try zone.set("cold\(index)", value: value, expiresAt: 1000, now: 0)
            #expect(zone.get("hot", now: 0) == value)
        }
        #expect(zone.usedBytes <= zone.capacity)
    }

    /// The eviction is an approximate LRU (a CLOCK): what it guarantees is that entries read
    /// since the hand last passed them outlive entries never read, that the newest entries
    /// outlive the oldest, and that the byte capacity holds exactly after every write.
    @Test func readEntriesAndNewestEntriesSurviveAFill() throws {
        let zone = MemoryZone(name: "clock", capacity: 1 << 20)
        #expect(zone.shardCount == 1)
        let value = String(repeating: "c", count: 1000)
        let entrySize = "cold0000".utf8.count + value.utf8.count + MemoryZone.entryOverhead
        for index in 0..<20 { try zone.set("hot\(index)", value: value, expiresAt: 100, now: 0) }
        for index in 0..<3000 {
            try zone.set("cold\(1000 + index)", value: value, expiresAt: 100, now: 0)
            // Exactly within the capacity, and (once full) no more evicted than needed for the
            // new entry.
            #expect(zone.usedBytes <= zone.capacity)
            if index >= 1000 { #expect(zone.usedBytes > zone.capacity - 2 * entrySize) }
            if index % 10 == 0 {
                for hot in 0..<20 { #expect(zone.get("hot\(hot)", now: 1) == value) }
            }
        }
        for hot in 0..<20 { #expect(zone.get("hot\(hot)", now: 1) == value, "read entries survive") }
        for index in 2900..<3000 { #expect(zone.get("cold\(1000 + index)", now: 1) == value, "newest entries survive") }
        for index in 0..<100 { #expect(zone.get("cold\(1000 + index)", now: 1) == nil, "oldest entries go first") }
        // The entry just written is never the one evicted for it, even when it is as large as
        // the shard: it then evicts everything else.
        let large = String(repeating: "L", count: zone.maximumEntrySize - "large".utf8.count - MemoryZone.entryOverhead)
        try zone.set("large", value: large, expiresAt: 100, now: 1)
        #expect(zone.get("large", now: 1) == large)
        #expect(zone.count == 1 && zone.usedBytes == zone.capacity)
    }

    @Test func overwriteReusesTheZonesStorageOnlyWhenNoReaderHoldsIt() throws {
        let zone = MemoryZone(name: "overwrite", capacity: 4 << 20)
        let first = String(repeating: "a", count: 1024)
        try zone.set("k", value: first, expiresAt: 100, now: 0)
        let storedBytes: UnsafeRawPointer
        do {
            let held = try #require(zone.get("k", now: 1))
            let heldBytes = try #require(Self.storageAddress(held))
            // A reader holds the stored value: the overwrite must not write into it.
            let second = String(repeating: "b", count: 1024)
            try zone.set("k", value: second, expiresAt: 100, now: 0)
            #expect(held == first)
            #expect(Self.storageAddress(held) == heldBytes)
            let stored = try #require(zone.get("k", now: 1))
            #expect(stored == second)
            storedBytes = try #require(Self.storageAddress(stored))
            #expect(storedBytes != heldBytes)
            #expect(Self.storageAddress(second) != storedBytes, "a copy, not the caller's storage")
        }
        // No reader now (the zone's copy is the only reference): the same storage is reused,
        // for a value of another size and with non-ASCII bytes.
        let third = String(repeating: "é", count: 400) + "z"
        try zone.set("k", value: third, expiresAt: 100, now: 0)
        do {
            let again = try #require(zone.get("k", now: 1))
            #expect(Self.storageAddress(again) == storedBytes)
            #expect(again == third && Array(again.utf8) == Array(third.utf8) && again.count == 401)
            #expect(Self.storageAddress(again) != Self.storageAddress(third), "not the caller's storage")
            #expect(zone.usedBytes == "k".utf8.count + third.utf8.count + MemoryZone.entryOverhead)
        }
        // Back to ASCII in the same storage.
        let fourth = String(repeating: "d", count: 700)
        try zone.set("k", value: fourth, expiresAt: 100, now: 0)
        do {
            let ascii = try #require(zone.get("k", now: 1))
            #expect(ascii == fourth && ascii.count == 700 && Self.storageAddress(ascii) == storedBytes)
        }
        // Larger than the storage, or far smaller: a new copy.
        let larger = String(repeating: "e", count: 2000)
        try zone.set("k", value: larger, expiresAt: 100, now: 0)
        do {
            let grown = try #require(zone.get("k", now: 1))
            #expect(grown == larger && Self.storageAddress(grown) != storedBytes)
        }
        try zone.set("k", value: "short", expiresAt: 100, now: 0)
        #expect(zone.get("k", now: 1) == "short")
        #expect(zone.usedBytes == "k".utf8.count + "short".utf8.count + MemoryZone.entryOverhead)
    }

    /// Overwrites in place must never change a value a reader already holds: readers and
    /// writers of the same few keys on several threads, every value read must be one writer's
    /// whole value (one repeated byte, its length), never a mix.
    @Test func concurrentOverwritesNeverChangeAValueAlreadyRead() async throws {
        let zone = MemoryZone(name: "overwrite-race", capacity: 16 << 20)
        let letters = Array("abcdefgh".utf8)
        let torn = await withTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var torn = 0
                    let byte = letters[task]
                    let value = String(decoding: Array(repeating: byte, count: 1000 + task * 3), as: UTF8.self)
                    for round in 0..<4000 {
                        let key = "session:shared-key-\(round % 4)"
                        if round % 3 == 0 {
                            try? zone.set(key, value: value, expiresAt: 100, now: 0)
                        } else if let read = zone.get(key, now: 1) {
                            // Hold the read value across other tasks' writes, then check it.
                            await Task.yield()
                            let bytes = Array(read.utf8)
                            guard let first = bytes.first, let writer = letters.firstIndex(of: first),
                                bytes.count == 1000 + writer * 3, bytes.allSatisfy({ $0 == first })
                            else {
                                torn += 1
                                continue
                            }
                        }
                    }
                    return torn
                }
            }
            return await group.reduce(0, +)
        }
        #expect(torn == 0)
        #expect(zone.usedBytes <= zone.capacity && zone.count == 4)
    }

    @Test func valueLargerThanTheZoneIsATypedError() async throws {
        let zone = MemoryZone(name: "small", capacity: 1 << 20)
        let store = MemorySessionStore(zone: zone)
        await #expect {
            try await store.set(name: "session", key: "K", value: String(repeating: "z", count: 2 << 20), ttl: 60, currentTime: 1)
        } throws: { error in
            (error as? SessionStoreError)?.code == .valueTooLarge
                && !"\(error)".contains("zzzz")
        }
        #expect(zone.count == 0)
    }

    @Test func shardsScaleWithCapacity() {
        #expect(MemoryZone(name: "a", capacity: 1 << 20).shardCount == 1)
        #expect(MemoryZone(name: "b", capacity: 10 << 20).shardCount == 4)
        #expect(MemoryZone(name: "c", capacity: 64 << 20).shardCount == 16)
        #expect(MemoryZone(name: "d", capacity: 1 << 30).shardCount == 16)
    }

    @Test func everyShardHoldsItsOwnEntries() throws {
        let zone = MemoryZone(name: "shards", capacity: 64 << 20)
        #expect(zone.shardCount == 16)
        for index in 0..<2000 { try zone.set("session:key-\(index)", value: "v\(index)", expiresAt: 100, now: 1) }
        #expect(zone.count == 2000)
        for index in 0..<2000 { #expect(zone.get("session:key-\(index)", now: 1) == "v\(index)") }
        #expect(zone.usedBytes > 2000 * MemoryZone.entryOverhead)
        #expect(zone.sweep(now: 100) == 2000)
        #expect(zone.count == 0)
        try zone.set("session:again", value: "v", expiresAt: 100, now: 1)
        zone.removeAll()
        #expect(zone.count == 0 && zone.usedBytes == 0)
    }

    @Test func expiredEntriesAreNotReturnedAndAreSwept() throws {
        let zone = MemoryZone(name: "sweep", capacity: 8 << 20)
        for index in 0..<100 { try zone.set("short\(index)", value: "v", expiresAt: 50, now: 0) }
        for index in 0..<10 { try zone.set("long\(index)", value: "v", expiresAt: 500, now: 0) }
        #expect(zone.get("short1", now: 50) == nil)
        #expect(zone.count == 109)
        #expect(zone.sweep(now: 50) == 99)
        #expect(zone.count == 10)
        #expect(zone.get("long3", now: 499) == "v")
    }

    @Test func expireNoLaterNeverLengthens() throws {
        let zone = MemoryZone(name: "expire", capacity: 8 << 20)
        try zone.set("k", value: "v", expiresAt: 100, now: 0)
        zone.expireNoLater("k", expiresAt: 500, now: 0)
        #expect(zone.expiry(of: "k", now: 0) == 100)
        zone.expireNoLater("k", expiresAt: 20, now: 0)
        #expect(zone.expiry(of: "k", now: 0) == 20)
        #expect(zone.get("k", now: 20) == nil)
    }

    @Test func indexStaysBoundedUnderRotation() async throws {
        let zone = MemoryZone(name: "bounded", capacity: 8 << 20)
        let store = MemorySessionStore(zone: zone)
        let metadata = try SessionMetadata(audience: "app", subject: "alice")
        var key = SessionStoreConformance.randomKey()
        try await store.set(name: "session", key: key, value: "v", ttl: 600, currentTime: 1000, metadata: metadata)
        for step in 0..<1000 {
            let next = SessionStoreConformance.randomKey()
            try await store.set(
                name: "session", key: next, value: "v", ttl: 600, currentTime: 1000 + step, oldKey: key, metadata: metadata)
            key = next
        }
        let index = try #require(zone.get("session:app:alice", now: 2000))
        #expect(SessionIndexCodec.entryCount(index) <= 2 * 1 + 16 + 2)
        #expect(try await store.readMetadata(name: "session", audience: "app", subject: "alice", currentTime: 2000) == [key: 2599])
        // The index expires with its latest member.
        #expect(zone.expiry(of: "session:app:alice", now: 2000) == 2599)
    }

    @Test func indexLivesAsLongAsItsLatestMember() async throws {
        let zone = MemoryZone(name: "index-expiry", capacity: 8 << 20)
        let store = MemorySessionStore(zone: zone)
        let metadata = try SessionMetadata(audience: "app", subject: "bob")
        let long = SessionStoreConformance.randomKey()
        let short = SessionStoreConformance.randomKey()
        try await store.set(name: "session", key: long, value: "v", ttl: 1000, currentTime: 0, metadata: metadata)
        try await store.set(name: "session", key: short, value: "v", ttl: 10, currentTime: 0, metadata: metadata)
        #expect(zone.expiry(of: "session:app:bob", now: 0) == 1000)
        #expect(try await store.readMetadata(name: "session", audience: "app", subject: "bob", currentTime: 500) == [long: 1000])
    }

    @Test func rememberRotationPolicyKeepStale() async throws {
        let store = MemorySessionStore(
            configuration: .init(rememberRotation: .keepStale), zone: MemoryZone(name: "keep", capacity: 8 << 20))
        try await store.set(name: "remember", key: "OLD", value: "old", ttl: 600, currentTime: 0)
        try await store.set(
            name: "remember", key: "NEW", value: "new", ttl: 600, currentTime: 0, oldKey: "OLD", staleTTL: 10, remember: true)
        #expect(try await store.get(name: "remember", key: "OLD", currentTime: 9) == "old")
        #expect(try await store.get(name: "remember", key: "OLD", currentTime: 10) == nil)
    }

    @Test func sweeperRunsOnTheInjectedClock() async throws {
        let zone = MemoryZone(name: "sweeper", capacity: 8 << 20)
        try zone.set("a", value: "v", expiresAt: 100, now: 0)
        try zone.set("b", value: "v", expiresAt: 300, now: 0)
        let clock = ManualClock()
        let wallClock = WallClock(now: 0)
        let sweeper = MemoryZoneSweeper(zone: zone, interval: .seconds(60), clock: clock, now: { wallClock.now })
        let task = Task { try await sweeper.run() }
        await clock.waitForSleepers(1)
        #expect(zone.count == 2)
        wallClock.now = 200
        clock.advance(by: .seconds(60))
        await clock.waitForSleepers(1)
        #expect(zone.count == 1)
        #expect(zone.get("b", now: 200) == "v")
        wallClock.now = 400
        clock.advance(by: .seconds(59))
        await Task.yield()
        #expect(zone.count == 1, "no sweep before the interval passed")
        clock.advance(by: .seconds(1))
        await clock.waitForSleepers(1)
        #expect(zone.count == 0)
        task.cancel()
        try await task.value
    }
}

/// A settable wall clock for the sweeper's notion of "now".
final class WallClock: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLockLike()
    private var value: Int
    init(now: Int) { value = now }
    var now: Int {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

import Synchronization

final class NSLockLike: Sendable {
    private let mutex = Mutex(())
    func withLock<T>(_ body: () -> T) -> T { mutex.withLock { _ in body() } }
}
