import Synchronization

/// The keys HKDF derives from one ``SessionKey`` for a session id — the AES key and nonce
/// ("encryption") and the prepared HMAC of the MAC key ("authentication") — kept for the next
/// cookies of the same session.
///
/// Every request of a session presents the same id until the next save, and deriving its keys
/// is most of the cost of opening it (9 of the 12 SHA-256 blocks). Entries are added only for
/// ids whose MAC verified or that this process issued, so forged cookies cannot fill the
/// cache; it holds at most `capacity` ids, in sets of four picked by the id, and forgets the
/// oldest of a set first. The entries are derived from the secret that stays in memory
/// anyway, so keeping them adds no new kind of secret to the process. Remember cookies (PBKDF2) are not cached.
final class DerivedKeyCache: Sendable {
    /// The derived keys of one session id.
    struct Entry: Sendable {
        /// HMAC keyed with HKDF(ikm, "authentication:" sid, 32).
        var authentication: HMACSHA256
        /// HKDF(ikm, "encryption:" sid, 44): the AES-256 key, then the 12-byte nonce.
        var encryption: EncryptionMaterial
    }

    /// 44 bytes of key material, held inline (no allocation, no reference counting).
    struct EncryptionMaterial: Sendable {
        static let size = 44
        var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)

        /// Runs `body` with the AES-256 key (bytes 0..<32) and the GCM nonce (32..<44), from a
        /// copy that is wiped afterwards.
        func withKeyAndNonce<Result>(_ body: (_ key: UnsafeRawBufferPointer, _ nonce: UnsafeRawBufferPointer) -> Result) -> Result {
            var copy = words
            defer { copy = (0, 0, 0, 0, 0, 0) }
            return withUnsafeBytes(of: &copy) { material in
                body(UnsafeRawBufferPointer(rebasing: material[0..<32]), UnsafeRawBufferPointer(rebasing: material[32..<44]))
            }
        }
    }

    /// Slots in sets of `ways`: an id can only live in the set its hash picks, so a lookup
    /// compares at most `ways` ids and an insertion replaces the oldest of its set (no hash
    /// table to grow, probe or shift; no eviction list). Ids are random, so they spread
    /// evenly; the set index is mixed with a per-cache seed all the same.
    private struct State {
        /// `sets * ways` ids, entries and whether the slot holds one; allocated on first use.
        var ids: [SessionID] = []
        var entries: [Entry?] = []
        var used: [Bool] = []
        /// Per set, the way replaced next: the oldest insertion of the set.
        var next: [UInt8] = []
        var count = 0
    }

    /// At most this many ids are held.
    let capacity: Int
    /// Ids per set: 4, or fewer for a smaller capacity (then one set, oldest forgotten first).
    private let ways: Int
    /// The number of sets (a power of two) minus one.
    private let setMask: Int
    private let seed: UInt64
    private let state: Mutex<State>

    /// A cache of at most `capacity` ids (rounded down to a power of two times four above
    /// four).
    init(capacity: Int) {
        let capacity = max(0, capacity)
        ways = min(4, capacity)
        var sets = 1
        while ways > 0, sets * 2 * ways <= capacity { sets *= 2 }
        setMask = sets - 1
        self.capacity = sets * ways
        seed = UInt64.random(in: .min ... .max)
        state = Mutex(State())
    }

    @inline(__always)
    private func firstSlot(of id: SessionID) -> Int {
        (Int(truncatingIfNeeded: ((id.firstWord ^ seed) &* 0x9E37_79B9_7F4A_7C15) >> 32) & setMask) &* ways
    }

    func lookup(_ id: SessionID) -> Entry? {
        guard ways > 0 else { return nil }
        let first = firstSlot(of: id)
        return state.withLock { state in
            guard !state.used.isEmpty else { return nil }
            for slot in first..<(first + ways) where state.used[slot] && state.ids[slot] == id {
                return state.entries[slot]
            }
            return nil
        }
    }

    func insert(_ id: SessionID, _ entry: Entry) {
        guard ways > 0 else { return }
        let first = firstSlot(of: id)
        let ways = ways
        let total = capacity
        state.withLock { state in
            if state.used.isEmpty {
                state.ids = Array(repeating: id, count: total)
                state.entries = Array(repeating: nil, count: total)
                state.used = Array(repeating: false, count: total)
                state.next = Array(repeating: 0, count: total / ways)
            }
            for slot in first..<(first + ways) where state.used[slot] && state.ids[slot] == id {
                state.entries[slot] = entry
                return
            }
            let set = first / ways
            let slot = first + Int(state.next[set])
            state.next[set] = UInt8((Int(state.next[set]) + 1) % ways)
            if !state.used[slot] {
                state.used[slot] = true
                state.count += 1
            }
            state.ids[slot] = id
            state.entries[slot] = entry
        }
    }

    /// The number of ids held.
    var count: Int { state.withLock { $0.count } }
}
