#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A zone key for one operation: its bytes (borrowed, valid only during the call) and their hash.
///
/// The hash is `Hasher`'s (SipHash with the process's random seed, as `Dictionary` uses), so
/// keys an attacker chooses (a subject in an index key) cannot be made to collide on purpose.
/// Its top bits pick the shard, its low 32 bits the slot in the shard's ``ZoneTable``.
struct ZoneKey {
    let bytes: UnsafeRawBufferPointer
    let hash: UInt64

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        var hasher = Hasher()
        hasher.combine(bytes: bytes)
        self.hash = UInt64(UInt(bitPattern: hasher.finalize()))
    }

    /// The low 32 bits of the hash, stored in the table and in the entry's node.
    var fragment: UInt32 { UInt32(truncatingIfNeeded: hash) }

    /// Runs `body` with the key of `string`'s UTF-8 bytes.
    @inline(__always)
    static func with<R>(_ string: String, _ body: (ZoneKey) throws -> R) rethrows -> R {
        if let result = try string.utf8.withContiguousStorageIfAvailable({ try body(ZoneKey(bytes: UnsafeRawBufferPointer($0))) }) {
            return result
        }
        var copy = string
        copy.makeContiguousUTF8()
        return try copy.utf8.withContiguousStorageIfAvailable { try body(ZoneKey(bytes: UnsafeRawBufferPointer($0))) }!
    }

    /// Whether `string`'s UTF-8 bytes are this key's.
    @inline(__always)
    func matches(_ string: String) -> Bool {
        let count = bytes.count
        let equal: Bool? = string.utf8.withContiguousStorageIfAvailable { stored in
            stored.count == count && (count == 0 || memcmp(stored.baseAddress!, bytes.baseAddress!, count) == 0)
        }
        if let equal { return equal }
        return string.utf8.elementsEqual(bytes)
    }
}

/// The index of one shard: key → node slot, open addressing with linear probing.
///
/// Each table slot is one word: the key's hash fragment (low 32 bits) and the node's slot + 1
/// (high 32 bits; 0 is an empty table slot). A lookup compares fragments first and the key bytes
/// only on a fragment match, so it reads the node of the entry it finds and almost never
/// another. Removal shifts the following entries back (no tombstones), so lookups never slow
/// down with churn. At most half full.
struct ZoneTable {
    private var slots: [UInt64] = []
    /// Entries in the table.
    private(set) var count = 0

    private var mask: Int { slots.count - 1 }

    @inline(__always)
    private static func node(of entry: UInt64) -> Int { Int(truncatingIfNeeded: entry >> 32) - 1 }

    @inline(__always)
    private static func fragment(of entry: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: entry) }

    /// The node slot of the entry whose fragment is `fragment` and for which `isKey` holds.
    @inline(__always)
    func find(fragment: UInt32, _ isKey: (Int) -> Bool) -> Int? {
        guard count > 0 else { return nil }
        let mask = self.mask
        var index = Int(fragment) & mask
        while true {
            let entry = slots[index]
            if entry == 0 { return nil }
            if Self.fragment(of: entry) == fragment {
                let node = Self.node(of: entry)
                if isKey(node) { return node }
            }
            index = (index + 1) & mask
        }
    }

    /// Adds an entry for a key that is not in the table.
    mutating func insert(fragment: UInt32, node: Int) {
        precondition(node >= 0 && node < Int(UInt32.max), "a memory zone shard holds fewer than 2^32 entries")
        if (count + 1) * 2 > slots.count { grow() }
        let mask = self.mask
        var index = Int(fragment) & mask
        while slots[index] != 0 { index = (index + 1) & mask }
        slots[index] = UInt64(node + 1) << 32 | UInt64(fragment)
        count += 1
    }

    /// Removes the entry of node slot `node`, whose key's fragment is `fragment`.
    mutating func remove(fragment: UInt32, node: Int) {
        guard count > 0 else { return }
        let mask = self.mask
        var hole = Int(fragment) & mask
        while true {
            let entry = slots[hole]
            if entry == 0 { return }  // not in the table
            if Self.node(of: entry) == node { break }
            hole = (hole + 1) & mask
        }
        // Backward shift: an entry after the hole moves into it when the hole lies on its probe
        // path (between its home slot and where it sits), until an empty slot ends the run.
        var next = (hole + 1) & mask
        while slots[next] != 0 {
            let home = Int(Self.fragment(of: slots[next])) & mask
            if (next &- home) & mask >= (next &- hole) & mask {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = 0
        count -= 1
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: max(16, old.count * 2))
        let mask = self.mask
        for entry in old where entry != 0 {
            var index = Int(Self.fragment(of: entry)) & mask
            while slots[index] != 0 { index = (index + 1) & mask }
            slots[index] = entry
        }
    }
}
