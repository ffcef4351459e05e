import Synchronization

/// The keys HKDF derives from one ``SessionKey`` for a session id — the AES key and nonce
/// ("encryption") and the prepared HMAC of the MAC key ("authentication") — kept for the next
/// cookies of the same session.
///
/// Every request of a session presents the same id until the next save, and deriving its keys
/// is most of the cost of opening it (9 of the 12 SHA-256 blocks). Entries are added only for
/// ids whose MAC verified or that this process issued, so forged cookies cannot fill the
/// cache; it holds at most `capacity` ids and forgets the oldest first. The entries are
/// derived from the secret that stays in memory anyway, so keeping them adds no new kind of
/// secret to the process. Remember cookies (PBKDF2) are not cached.
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

    private struct State {
        /// id → its slot in `slots`. (The entries themselves stay put in `slots`: a
        /// dictionary's removal shifts its neighbours, cheap for an `Int`, not for an entry's
        /// prepared SHA-256 states.)
        var positions: [SessionID: Int] = [:]
        /// Entries in insertion order, as a ring: the slot at `next` holds the oldest once full.
        var slots: [(id: SessionID, entry: Entry)] = []
        var next = 0
    }

    let capacity: Int
    private let state: Mutex<State>

    init(capacity: Int) {
        self.capacity = max(0, capacity)
        var initial = State()
        initial.positions.reserveCapacity(self.capacity)
        self.state = Mutex(initial)
    }

    func lookup(_ id: SessionID) -> Entry? {
        guard capacity > 0 else { return nil }
        return state.withLock { state in state.positions[id].map { state.slots[$0].entry } }
    }

    func insert(_ id: SessionID, _ entry: Entry) {
        guard capacity > 0 else { return }
        state.withLock { state in
            if let position = state.positions[id] {
                state.slots[position].entry = entry
                return
            }
            if state.slots.count < capacity {
                state.positions[id] = state.slots.count
                state.slots.append((id, entry))
            } else {
                state.positions[state.slots[state.next].id] = nil
                state.positions[id] = state.next
                state.slots[state.next] = (id, entry)
                state.next = (state.next + 1) % capacity
            }
        }
    }

    /// The number of ids held.
    var count: Int { state.withLock { $0.positions.count } }
}
