import Synchronization

/// A named, bounded, in-process key-value zone: the Swift counterpart of nginx's
/// `lua_shared_dict sessions 10m` that lua-resty-session's shm backend uses.
///
/// Every ``MemorySessionStore`` in the process that names the same zone shares it
/// (``named(_:capacity:)``). The zone holds at most `capacity` bytes (keys, values and a fixed
/// per-entry overhead) and, when full, evicts entries not used recently: an approximate LRU (a
/// CLOCK) in which a read or a write gives its entry credit and an eviction hand sweeping the
/// shard removes expired entries and entries whose credit it has used up. Each entry has an
/// absolute expiry (Unix seconds); expired entries are never returned, are dropped when touched,
/// and are reclaimed by ``sweep(now:)``, which ``MemoryZoneSweeper`` runs as a `Service`.
///
/// The zone is split into shards, each with its own lock and eviction hand, so operations on
/// different keys scale across cores. An entry must fit into one shard:
/// ``maximumEntrySize`` is `capacity / shardCount` (shards are at least 2 MiB, at most 16 of them).
public final class MemoryZone: @unchecked Sendable {
    // @unchecked: the shard states live in a buffer owned by the zone (allocated in init, freed
    // in deinit, never reallocated); each is only ever accessed through its own Mutex. The buffer
    // avoids a class object per shard, whose reference counting cores would contend on.
    /// The zone's name.
    public let name: String
    /// The capacity in bytes.
    public let capacity: Int
    /// The largest entry (key + value + overhead) the zone accepts.
    public let maximumEntrySize: Int
    /// Bytes charged per entry on top of its key and value.
    public static let entryOverhead = 64

    /// The shards, each `shardStride` bytes apart on its own cache lines, so that two cores
    /// locking neighbouring shards do not bounce one line between them (false sharing).
    private let shardStorage: UnsafeMutableRawPointer
    /// Bytes from one shard to the next: the shard's size rounded up to 128 (two cache lines,
    /// as adjacent-line prefetchers pull pairs).
    static let shardStride = (MemoryLayout<Mutex<MemoryZoneShardState>>.stride + 127) & ~127
    private let shardMask: Int
    /// The number of shards.
    public let shardCount: Int

    private static let registry = Mutex<[String: MemoryZone]>([:])

    /// The zone called `name`, created with `capacity` bytes on first use. Later calls return the
    /// same zone whatever capacity they pass, as a shared dictionary declared once would.
    public static func named(_ name: String, capacity: Int = 64 << 20) -> MemoryZone {
        registry.withLock { zones in
            if let zone = zones[name] { return zone }
            let zone = MemoryZone(name: name, capacity: capacity)
            zones[name] = zone
            return zone
        }
    }

    /// Creates a zone that is not registered under its name (for tests and private use).
    public init(name: String, capacity: Int) {
        precondition(capacity > 0, "a memory zone needs a positive capacity")
        self.name = name
        self.capacity = capacity
        var count = 1
        while count < 16 && capacity / (count * 2) >= 2 << 20 { count *= 2 }
        self.shardMask = count - 1
        self.maximumEntrySize = capacity / count
        self.shardCount = count
        self.shardStorage = .allocate(byteCount: count * Self.shardStride, alignment: 128)
        for index in 0..<count {
            (shardStorage + index * Self.shardStride)
                .bindMemory(to: Mutex<MemoryZoneShardState>.self, capacity: 1)
                .initialize(to: Mutex(MemoryZoneShardState(budget: capacity / count)))
        }
    }

    deinit {
        for index in 0..<shardCount { shardAt(index).deinitialize(count: 1) }
        shardStorage.deallocate()
    }

    @inline(__always)
    private func shardAt(_ index: Int) -> UnsafeMutablePointer<Mutex<MemoryZoneShardState>> {
        (shardStorage + index * Self.shardStride).assumingMemoryBound(to: Mutex<MemoryZoneShardState>.self)
    }

    @inline(__always)
    private func shard(_ key: ZoneKey) -> UnsafeMutablePointer<Mutex<MemoryZoneShardState>> {
        // The top bits pick the shard; the shard's table uses the low 32 bits.
        shardAt(Int(truncatingIfNeeded: key.hash >> 56) & shardMask)
    }

    private func checkSize(keyCount: Int, value: String) throws {
        let size = keyCount + value.utf8.count + Self.entryOverhead
        guard size <= maximumEntrySize else {
            throw SessionStoreError(
                .valueTooLarge,
                message: "entry of \(size) bytes exceeds the memory zone's limit of \(maximumEntrySize) bytes",
                backend: "memory"
            )
        }
    }

    /// The value of `key`, or `nil` when absent or expired at `now`.
    public func get(_ key: String, now: Int) -> String? {
        ZoneKey.with(key) { get($0, now: now) }
    }

    /// Stores `value` under `key` until `expiresAt` (exclusive), evicting entries not used recently if needed.
    public func set(_ key: String, value: String, expiresAt: Int, now: Int) throws {
        try ZoneKey.with(key) { try set($0, value: value, expiresAt: expiresAt, now: now) }
    }

    /// Removes `key`; returns whether it was there.
    @discardableResult
    public func delete(_ key: String) -> Bool {
        ZoneKey.with(key) { delete($0) }
    }

    /// Moves the expiry of `key` to `expiresAt` only when that is sooner than its current expiry
    /// (never lengthens). Returns whether the entry exists.
    @discardableResult
    public func expireNoLater(_ key: String, expiresAt: Int, now: Int) -> Bool {
        ZoneKey.with(key) { expireNoLater($0, expiresAt: expiresAt, now: now) }
    }

    /// The absolute expiry of `key`, or `nil` when absent or expired.
    public func expiry(of key: String, now: Int) -> Int? {
        ZoneKey.with(key) { key in shard(key).pointee.withLock { $0.expiry(of: key, now: now) } }
    }

    /// Atomically appends index entries (`KEY:EXP;` / `KEY;`, see ``SessionIndexCodec``) to the
    /// index string at `key`, keeps the index alive at least until `latestExpiry`, and compacts it
    /// when it holds far more entries than live sessions. Under the shard's lock: no concurrent
    /// append is ever lost.
    public func appendIndex(_ key: String, entries: String, latestExpiry: Int, now: Int) throws {
        try ZoneKey.with(key) { try appendIndex($0, entries: entries, latestExpiry: latestExpiry, now: now) }
    }

    // The same operations on a key given as bytes (``ZoneKey``): the store builds its key names
    // in a stack buffer, so a lookup allocates no key string; one is made only for a new entry.

    func get(_ key: ZoneKey, now: Int) -> String? {
        shard(key).pointee.withLock { $0.get(key, now: now) }
    }

    func set(_ key: ZoneKey, value: String, expiresAt: Int, now: Int) throws {
        try checkSize(keyCount: key.bytes.count, value: value)
        shard(key).pointee.withLock { $0.set(key, value: value, expiresAt: expiresAt, now: now) }
    }

    @discardableResult
    func delete(_ key: ZoneKey) -> Bool {
        shard(key).pointee.withLock { $0.delete(key) }
    }

    @discardableResult
    func expireNoLater(_ key: ZoneKey, expiresAt: Int, now: Int) -> Bool {
        shard(key).pointee.withLock { $0.expireNoLater(key, expiresAt: expiresAt, now: now) }
    }

    func appendIndex(_ key: ZoneKey, entries: String, latestExpiry: Int, now: Int) throws {
        try checkSize(keyCount: key.bytes.count, value: entries)
        try shard(key).pointee.withLock { state in
            try state.appendIndex(key, entries: entries, latestExpiry: latestExpiry, now: now, limit: maximumEntrySize)
        }
    }

    /// Removes every entry expired at `now`; returns how many.
    @discardableResult
    public func sweep(now: Int) -> Int {
        var removed = 0
        for index in 0..<shardCount {
            removed += shardAt(index).pointee.withLock { $0.sweep(now: now) }
        }
        return removed
    }

    /// Bytes in use (keys, values and overhead).
    public var usedBytes: Int {
        (0..<shardCount).reduce(0) { total, index in total + shardAt(index).pointee.withLock { $0.usedBytes } }
    }

    /// The number of entries, expired ones not yet reclaimed included.
    public var count: Int {
        (0..<shardCount).reduce(0) { total, index in total + shardAt(index).pointee.withLock { $0.table.count } }
    }

    /// Removes every entry.
    public func removeAll() {
        for index in 0..<shardCount {
            shardAt(index).pointee.withLock { $0 = MemoryZoneShardState(budget: $0.budget) }
        }
    }
}

/// One shard: a hash table (``ZoneTable``) into an array of nodes, evicted by an approximate LRU (CLOCK with a
/// small per-entry credit). Array slots are reused through a free list.
///
/// A read gives its entry ``readCredit``, a new entry ``insertCredit``; when the shard is over
/// budget a hand walks the array, removing expired entries and entries without credit and taking
/// one credit from the others. So an entry read since the hand last passed it survives the next
/// pass, a new entry survives at least one whole pass, and a read writes to the entry only when
/// its credit was not full already: on the read path no list links are rewritten, so two cores
/// reading the same shard do not dirty each other's cache lines (a strict LRU list moves the
/// entry, its neighbours and the head on every read).
struct MemoryZoneShardState: ~Copyable {
    /// 64 bytes (72 with `Int` fields): what a read looks at (value, expiry, credit) is the first
    /// 25 bytes, so it lies in one cache line for every node unless the array's elements happen
    /// to start 48 bytes into a line (its allocation is only 16-byte aligned).
    struct Node {
        var value: String
        var expiresAt: Int
        /// Passes of the eviction hand the entry survives without being read again.
        var credit: UInt8
        /// The byte count the value's storage was allocated for by ``MemoryZoneShardState/ownedCopy(_:)``
        /// (0: a small string stored inline, storage the zone did not size itself, or over 4 GiB).
        var valueCapacity: UInt32
        /// Bytes charged for the entry (0: the slot is free).
        var size: Int
        var key: String
        /// For index strings: the number of live entries at the last compaction.
        var liveAtCompaction: Int32
        /// The key's hash fragment (``ZoneKey/fragment``), to find its table entry on removal.
        var fragment: UInt32
    }

    /// Credit of an entry just read or overwritten.
    static let readCredit: UInt8 = 2
    /// Credit of a new entry.
    static let insertCredit: UInt8 = 1

    let budget: Int
    var table = ZoneTable()
    var nodes: [Node] = []
    var free: [Int] = []
    /// The eviction hand: the next slot it looks at.
    var hand = 0
    var usedBytes = 0

    init(budget: Int) { self.budget = budget }

    /// The node slot of `key`.
    @inline(__always)
    func slot(of key: ZoneKey) -> Int? {
        table.find(fragment: key.fragment) { key.matches(nodes[$0].key) }
    }

    mutating func get(_ key: ZoneKey, now: Int) -> String? {
        guard let slot = slot(of: key) else { return nil }
        if nodes[slot].expiresAt <= now {
            remove(slot: slot)
            return nil
        }
        // Written only when it changes: a key read over and over stays a read-only cache line.
        if nodes[slot].credit != Self.readCredit { nodes[slot].credit = Self.readCredit }
        return nodes[slot].value
    }

    func expiry(of key: ZoneKey, now: Int) -> Int? {
        guard let slot = slot(of: key), nodes[slot].expiresAt > now else { return nil }
        return nodes[slot].expiresAt
    }

    /// A copy of `value` in storage of its own (values of up to 15 bytes are stored inline in
    /// the `String` anyway).
    ///
    /// The zone keeps copies, as a shared dictionary copies values into its memory: a value
    /// string a caller passes for many keys (one request body stored under several keys, a
    /// benchmark's one value) would otherwise be one object whose reference count every core
    /// reading any of those keys updates, a cache line bouncing between the cores.
    @inline(__always)
    static func ownedCopy(_ value: String) -> String {
        // One allocation and one memcpy (cheaper than reserveCapacity + append).
        let copied: String? = value.utf8.withContiguousStorageIfAvailable { bytes in
            String(unsafeUninitializedCapacity: bytes.count) { buffer in
                guard let source = bytes.baseAddress, let target = buffer.baseAddress else { return 0 }
                target.initialize(from: source, count: bytes.count)
                return bytes.count
            }
        }
        return copied ?? String(decoding: Array(value.utf8), as: UTF8.self)
    }

    /// - Parameter valueIsOwned: `value` was built by the zone itself (an index appended to or
    ///   compacted under the lock), so it is stored without a copy.
    mutating func set(
        _ key: ZoneKey, value: String, expiresAt: Int, now: Int, liveAtCompaction: Int = 0, valueIsOwned: Bool = false
    ) {
        set(key, existing: slot(of: key), value: value, expiresAt: expiresAt, now: now,
            liveAtCompaction: liveAtCompaction, valueIsOwned: valueIsOwned)
    }

    /// ``set(_:value:expiresAt:now:liveAtCompaction:valueIsOwned:)`` with the key's slot already looked up.
    private mutating func set(
        _ key: ZoneKey, existing: Int?, value: String, expiresAt: Int, now: Int, liveAtCompaction: Int, valueIsOwned: Bool
    ) {
        let valueCount = value.utf8.count
        let size = key.bytes.count + valueCount + MemoryZone.entryOverhead
        let kept: Int
        if let slot = existing {
            kept = slot
            usedBytes += size - nodes[slot].size
            if valueIsOwned {
                nodes[slot].value = value
                nodes[slot].valueCapacity = 0
            } else if !Self.overwrite(&nodes[slot], with: value, count: valueCount) {
                nodes[slot].value = Self.ownedCopy(value)
                nodes[slot].valueCapacity = Self.capacity(of: valueCount)
            }
            nodes[slot].expiresAt = expiresAt
            nodes[slot].size = size
            nodes[slot].liveAtCompaction = Int32(clamping: liveAtCompaction)
            if nodes[slot].credit != Self.readCredit { nodes[slot].credit = Self.readCredit }
        } else {
            let node = Node(
                value: valueIsOwned ? value : Self.ownedCopy(value), expiresAt: expiresAt, credit: Self.insertCredit,
                valueCapacity: valueIsOwned ? 0 : Self.capacity(of: valueCount), size: size,
                key: String(decoding: key.bytes, as: UTF8.self),
                liveAtCompaction: Int32(clamping: liveAtCompaction), fragment: key.fragment)
            let slot: Int
            if let reused = free.popLast() {
                nodes[reused] = node
                slot = reused
            } else {
                slot = nodes.count
                nodes.append(node)
            }
            table.insert(fragment: key.fragment, node: slot)
            usedBytes += size
            kept = slot
        }
        // The slot found or filled above: no third hash of the key.
        if usedBytes > budget { evict(keeping: kept, now: now) }
    }

    /// The ``Node/valueCapacity`` of a value of `count` bytes copied by ``ownedCopy(_:)``.
    @inline(__always)
    private static func capacity(of count: Int) -> UInt32 {
        count > 15 && count <= Int(UInt32.max) ? UInt32(count) : 0
    }

    /// Writes `value`'s bytes into the storage of the node's current value, when the zone
    /// allocated that storage, it is large enough (and not more than twice too large), and no
    /// reader still holds it (the string's storage is uniquely referenced: readers only obtain
    /// references under the shard's lock, so none can appear meanwhile). The common overwrite of
    /// a session then allocates and frees nothing; in particular it does not free, on this core,
    /// a buffer another core allocated (glibc's per-thread cache does not take chunks above
    /// 1032 bytes, so such a free goes through the other thread's arena lock).
    @inline(__always)
    private static func overwrite(_ node: inout Node, with value: String, count: Int) -> Bool {
        let capacity = Int(node.valueCapacity)
        guard capacity > 15, count <= capacity, count > 15, count * 2 >= capacity else { return false }
        let before = node.value.utf8.withContiguousStorageIfAvailable { UnsafeRawPointer($0.baseAddress) } ?? nil
        // Keeps the storage when it is uniquely referenced; otherwise becomes an empty small
        // string (then whose bytes live elsewhere).
        node.value.removeAll(keepingCapacity: true)
        let cleared = node.value.utf8.withContiguousStorageIfAvailable { UnsafeRawPointer($0.baseAddress) } ?? nil
        guard before != nil, cleared == before else { return false }
        // An empty string with native storage appends in place (an empty string without it
        // would adopt `value`'s storage instead of copying, which the check above excludes).
        node.value.append(value)
        return true
    }

    @discardableResult
    mutating func delete(_ key: ZoneKey) -> Bool {
        guard let slot = slot(of: key) else { return false }
        remove(slot: slot)
        return true
    }

    mutating func expireNoLater(_ key: ZoneKey, expiresAt: Int, now: Int) -> Bool {
        guard let slot = slot(of: key) else { return false }
        if nodes[slot].expiresAt <= now {
            remove(slot: slot)
            return false
        }
        if expiresAt < nodes[slot].expiresAt {
            if expiresAt <= now {
                remove(slot: slot)
                return false
            }
            nodes[slot].expiresAt = expiresAt
        }
        return true
    }

    mutating func appendIndex(_ key: ZoneKey, entries: String, latestExpiry: Int, now: Int, limit: Int) throws {
        let found = slot(of: key)
        guard let slot = found, nodes[slot].expiresAt > now else {
            if let found { remove(slot: found) }
            guard latestExpiry > now else { return }
            set(key, existing: nil, value: entries, expiresAt: latestExpiry, now: now, liveAtCompaction: 0, valueIsOwned: false)
            return
        }
        var value = nodes[slot].value
        value += entries
        let expiresAt = max(nodes[slot].expiresAt, latestExpiry)
        let count = SessionIndexCodec.entryCount(value)
        let live = Int(nodes[slot].liveAtCompaction)
        if count > 2 * live + 16 || key.bytes.count + value.utf8.count + MemoryZone.entryOverhead > limit {
            // Compact: keep only live entries; the index then expires with its latest member.
            let current = SessionIndexCodec.live(value, currentTime: now)
            if current.isEmpty {
                remove(slot: slot)
                return
            }
            let compacted = SessionIndexCodec.compact(current)
            guard key.bytes.count + compacted.index.utf8.count + MemoryZone.entryOverhead <= limit else {
                throw SessionStoreError(
                    .valueTooLarge, message: "the index exceeds the memory zone's entry limit", backend: "memory")
            }
            set(
                key, existing: slot, value: compacted.index, expiresAt: compacted.latestExpiry, now: now,
                liveAtCompaction: current.count, valueIsOwned: true)
        } else {
            set(key, existing: slot, value: value, expiresAt: expiresAt, now: now, liveAtCompaction: live, valueIsOwned: true)
        }
    }

    mutating func sweep(now: Int) -> Int {
        var removed = 0
        for slot in nodes.indices where nodes[slot].size != 0 && nodes[slot].expiresAt <= now {
            remove(slot: slot)
            removed += 1
        }
        return removed
    }

    // MARK: Eviction

    /// Removes entries until the shard is within its budget, never the entry at `kept` (the one
    /// just stored). The hand takes one credit per visit from a live entry and removes an entry
    /// found expired or without credit, so it finds a victim within `readCredit + 1` passes.
    private mutating func evict(keeping kept: Int, now: Int) {
        // Bound: every live entry loses its credit within `readCredit` passes; one more pass
        // removes it. (An entry is at most the budget, so `kept` alone always fits.)
        var steps = (Int(Self.readCredit) + 2) * nodes.count
        while usedBytes > budget, steps > 0 {
            steps -= 1
            if hand >= nodes.count { hand = 0 }
            let slot = hand
            hand += 1
            guard slot != kept, nodes[slot].size != 0 else { continue }
            if nodes[slot].credit == 0 || nodes[slot].expiresAt <= now {
                remove(slot: slot)
            } else {
                nodes[slot].credit -= 1
            }
        }
    }

    private mutating func remove(slot: Int) {
        table.remove(fragment: nodes[slot].fragment, node: slot)
        usedBytes -= nodes[slot].size
        nodes[slot].key = ""
        nodes[slot].value = ""
        nodes[slot].size = 0
        nodes[slot].valueCapacity = 0
        nodes[slot].credit = 0
        free.append(slot)
    }
}
