
/// HMAC-SHA256 (RFC 2104) with the key's padded blocks hashed once: each MAC copies the two
/// prepared SHA-256 states and hashes only the message, straight from the caller's buffers
/// (no `Data`, no generic `DataProtocol` walk, no intermediate arrays).
struct HMACSHA256: Sendable {
    static let blockSize = 64
    static let outputSize = 32

    private let inner: SHA256State
    private let outer: SHA256State

    init(key: UnsafeRawBufferPointer) {
        var block = (
            UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0)
        )
        var inner = SHA256State()
        var outer = SHA256State()
        withUnsafeMutableBytes(of: &block) { pad in
            if key.count > Self.blockSize {
                var hasher = SHA256State()
                hasher.update(key)
                hasher.finalize(into: pad.baseAddress!)
            } else if key.count > 0 {
                pad.copyMemory(from: key)
            }
            for index in 0..<Self.blockSize { pad[index] ^= 0x36 }
            inner.update(UnsafeRawBufferPointer(pad))
            for index in 0..<Self.blockSize { pad[index] ^= 0x36 ^ 0x5C }
            outer.update(UnsafeRawBufferPointer(pad))
            pad.initializeMemory(as: UInt8.self, repeating: 0)
        }
        self.inner = inner
        self.outer = outer
    }

    init(key: [UInt8]) {
        self = key.withUnsafeBytes { HMACSHA256(key: $0) }
    }

    /// HMAC(key, message) written to `output` (at most 32 bytes: a prefix of the MAC).
    func authenticate(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        authenticate(into: output) { $0.update(message) }
    }

    /// HMAC(key, first ‖ second) written to `output`.
    func authenticate(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        authenticate(into: output) { hasher in
            hasher.update(first)
            hasher.update(second)
        }
    }

    /// HMAC(key, what `feed` adds to the inner hash) written to `output` (at most 32 bytes). A
    /// closure rather than variadic parts: a variadic array was allocated on every call (every
    /// MAC, every HKDF block, every PBKDF2 iteration).
    func authenticate(into output: UnsafeMutableRawBufferPointer, _ feed: (inout SHA256State) -> Void) {
        var block = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &block) { digest in
            var hasher = inner
            feed(&hasher)
            hasher.finalize(into: digest.baseAddress!)
            var outerHasher = outer
            outerHasher.update(UnsafeRawBufferPointer(digest))
            outerHasher.finalize(into: digest.baseAddress!)
            output.copyMemory(from: UnsafeRawBufferPointer(rebasing: digest.prefix(output.count)))
            digest.initializeMemory(as: UInt8.self, repeating: 0)
        }
    }
}

/// One key of the session core: the 32-byte input key material (`ikm`) and its HKDF
/// pseudo-random key, extracted once (lua-resty-session caches it the same way).
///
/// A class: every cookie's meta keeps the key that verified it, and a copy of a reference is
/// one retain where this struct's copy was three and 300 bytes.
final class SessionKey: Sendable {
    let ikm: [UInt8]
    let pseudoRandomKey: [UInt8]
    /// HMAC keyed with the PRK, prepared once for every expansion.
    private let expander: HMACSHA256
    /// The keys derived for recent session ids.
    let derived: DerivedKeyCache

    /// How many session ids' derived keys a key keeps by default.
    static let defaultDerivedKeyCacheCapacity = 4096

    init(ikm: [UInt8], derivedKeyCacheCapacity: Int = SessionKey.defaultDerivedKeyCacheCapacity) {
        self.ikm = ikm
        self.derived = DerivedKeyCache(capacity: derivedKeyCacheCapacity)
        // HKDF-Extract with an empty salt (RFC 5869: a string of HashLen zeros).
        let zeros = [UInt8](repeating: 0, count: HMACSHA256.outputSize)
        var prk = [UInt8](repeating: 0, count: HMACSHA256.outputSize)
        ikm.withUnsafeBytes { ikm in
            prk.withUnsafeMutableBytes { HMACSHA256(key: zeros).authenticate(ikm, into: $0) }
        }
        self.pseudoRandomKey = prk
        self.expander = HMACSHA256(key: prk)
    }

    /// HKDF-Expand(prk, info = usage ":" nonce, length) (RFC 5869 §2.3), `count` ≤ 64.
    func expand(usage: StaticString, nonce: [UInt8], count: Int) -> [UInt8] {
        precondition(count <= 2 * HMACSHA256.outputSize)
        return [UInt8](unsafeUninitializedCapacity: count) { output, initialized in
            nonce.withUnsafeBytes { expand(usage: usage, nonce: $0, into: UnsafeMutableRawBufferPointer(output)) }
            initialized = count
        }
    }

    /// HKDF-Expand with a session id as the nonce.
    func expand(usage: StaticString, sid: SessionID, into output: UnsafeMutableRawBufferPointer) {
        sid.withUnsafeBytes { expand(usage: usage, nonce: $0, into: output) }
    }

    /// HKDF-Expand into `output` (at most 64 bytes), the nonce in place.
    func expand(usage: StaticString, nonce: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        let colon: UInt8 = 0x3A
        withUnsafeTemporaryAllocation(byteCount: 2 * HMACSHA256.outputSize, alignment: 8) { blocks in
            withUnsafeBytes(of: colon) { colon in
                let usage = UnsafeRawBufferPointer(start: usage.utf8Start, count: usage.utf8CodeUnitCount)
                var counter: UInt8 = 1
                var produced = 0
                while produced < output.count {
                    let block = UnsafeMutableRawBufferPointer(rebasing: blocks[produced..<(produced + HMACSHA256.outputSize)])
                    withUnsafeBytes(of: counter) { counterByte in
                        if produced == 0 {
                            expander.authenticate(into: block) { hasher in
                                hasher.update(usage)
                                hasher.update(colon)
                                hasher.update(nonce)
                                hasher.update(counterByte)
                            }
                        } else {
                            let previous = UnsafeRawBufferPointer(rebasing: blocks[(produced - HMACSHA256.outputSize)..<produced])
                            expander.authenticate(into: block) { hasher in
                                hasher.update(previous)
                                hasher.update(usage)
                                hasher.update(colon)
                                hasher.update(nonce)
                                hasher.update(counterByte)
                            }
                        }
                    }
                    produced += HMACSHA256.outputSize
                    counter += 1
                }
                output.copyMemory(from: UnsafeRawBufferPointer(rebasing: blocks[0..<output.count]))
                blocks.initializeMemory(as: UInt8.self, repeating: 0)
            }
        }
    }

    /// The HMAC keyed with HKDF(ikm, "authentication:" sid, 32).
    func authenticationHMAC(sid: SessionID) -> HMACSHA256 {
        withUnsafeTemporaryAllocation(byteCount: HMACSHA256.outputSize, alignment: 8) { macKey in
            expand(usage: "authentication", sid: sid, into: macKey)
            defer { macKey.initializeMemory(as: UInt8.self, repeating: 0) }
            return HMACSHA256(key: UnsafeRawBufferPointer(macKey))
        }
    }

    /// The derived keys of `sid`: from the cache, or derived and cached. Call it only for ids
    /// whose MAC verified or that this process issues (see ``DerivedKeyCache``).
    /// `authentication`, when given, is the sid's MAC HMAC the caller already prepared.
    func derivedKeys(sid: SessionID, authentication: HMACSHA256? = nil) -> DerivedKeyCache.Entry {
        if let entry = derived.lookup(sid) { return entry }
        return deriveKeys(sid: sid, authentication: authentication)
    }

    /// The derived keys of a new id this process issues, derived and cached (no lookup first:
    /// a fresh random id is not in the cache).
    func issueKeys(sid: SessionID) -> DerivedKeyCache.Entry {
        deriveKeys(sid: sid, authentication: nil)
    }

    private func deriveKeys(sid: SessionID, authentication: HMACSHA256?) -> DerivedKeyCache.Entry {
        var material = DerivedKeyCache.EncryptionMaterial()
        withUnsafeMutableBytes(of: &material.words) { words in
            expand(usage: "encryption", sid: sid, into: UnsafeMutableRawBufferPointer(rebasing: words[0..<DerivedKeyCache.EncryptionMaterial.size]))
        }
        let entry = DerivedKeyCache.Entry(authentication: authentication ?? authenticationHMAC(sid: sid), encryption: material)
        derived.insert(sid, entry)
        return entry
    }
}

/// The key derivations, MAC and AEAD of lua-resty-session 4.x (COOKIE.md §4–§6).
enum SessionCrypto {
    static func sha256<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var hasher = SHA256State()
        if bytes.withContiguousStorageIfAvailable({ hasher.update(UnsafeRawBufferPointer($0)) }) == nil {
            Array(bytes).withUnsafeBytes { hasher.update($0) }
        }
        return [UInt8](unsafeUninitializedCapacity: SHA256State.digestSize) { output, initialized in
            hasher.finalize(into: output.baseAddress!)
            initialized = SHA256State.digestSize
        }
    }

    /// Runs `body` with the AES-256 key (32 bytes) and GCM nonce (12 bytes) of a cookie: HKDF
    /// "encryption" (44 bytes), or for a remember cookie PBKDF2-HMAC-SHA256(pass = ikm, salt =
    /// "encryption:" sid) with the safety's iteration count. Both are wiped afterwards.
    static func withEncryptionKey<Result>(
        _ key: SessionKey,
        sid: SessionID,
        iterations: Int?,
        authentication: HMACSHA256? = nil,
        cached: DerivedKeyCache.Entry? = nil,
        _ body: (_ key: UnsafeRawBufferPointer, _ nonce: UnsafeRawBufferPointer) -> Result
    ) -> Result {
        guard let iterations else {
            // HKDF: derived once per session id (DerivedKeyCache); `cached` when the caller
            // already looked the id up
            return (cached ?? key.derivedKeys(sid: sid, authentication: authentication)).encryption.withKeyAndNonce(body)
        }
        var salt = Array("encryption:".utf8)
        sid.withUnsafeBytes { salt.append(contentsOf: $0) }
        var material = pbkdf2SHA256(password: key.ikm, salt: salt, iterations: iterations, count: 44)
        defer { material.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        return material.withUnsafeBytes { material in
            body(
                UnsafeRawBufferPointer(rebasing: material[0..<32]),
                UnsafeRawBufferPointer(rebasing: material[32..<44])
            )
        }
    }

    /// The header MAC: HMAC-SHA256(HKDF(ikm, "authentication:" sid, 32), message), first 16 bytes.
    static func mac(_ key: SessionKey, sid: SessionID, message: UnsafeRawBufferPointer) -> HeaderBytes16 {
        mac(authentication(key, sid: sid), message: message)
    }

    /// The HMAC keyed with the MAC key of `sid`: cached, or derived (and not cached: the
    /// cookie is not verified yet).
    static func authentication(_ key: SessionKey, sid: SessionID) -> HMACSHA256 {
        verificationKeys(key, sid: sid).authentication
    }

    /// The MAC HMAC of `sid` and its cache entry when it has one (whose encryption keys the
    /// caller then reuses without a second lookup).
    static func verificationKeys(_ key: SessionKey, sid: SessionID) -> (authentication: HMACSHA256, cached: DerivedKeyCache.Entry?) {
        if let entry = key.derived.lookup(sid) { return (entry.authentication, entry) }
        return (key.authenticationHMAC(sid: sid), nil)
    }

    /// The header MAC of `message` with a prepared MAC HMAC: the first 16 bytes.
    static func mac(_ authentication: HMACSHA256, message: UnsafeRawBufferPointer) -> HeaderBytes16 {
        HeaderBytes16.filling { authentication.authenticate(message, into: $0) }
    }

    /// PBKDF2 with HMAC-SHA256 (RFC 8018 §5.2). The keyed HMAC state is computed once and
    /// copied for every iteration; the iterations run on stack buffers.
    static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, count: Int) -> [UInt8] {
        let keyed = HMACSHA256(key: password)
        var output: [UInt8] = []
        output.reserveCapacity(count)
        var block: UInt32 = 1
        withUnsafeTemporaryAllocation(byteCount: 2 * HMACSHA256.outputSize, alignment: 8) { scratch in
            let u = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<HMACSHA256.outputSize])
            let t = UnsafeMutableRawBufferPointer(rebasing: scratch[HMACSHA256.outputSize...])
            while output.count < count {
                let index = block.bigEndian
                salt.withUnsafeBytes { salt in
                    withUnsafeBytes(of: index) { keyed.authenticate(salt, $0, into: u) }
                }
                t.copyMemory(from: UnsafeRawBufferPointer(u))
                if iterations > 1 {
                    for _ in 1..<iterations {
                        keyed.authenticate(UnsafeRawBufferPointer(u), into: u)
                        for offset in 0..<HMACSHA256.outputSize { t[offset] ^= u[offset] }
                    }
                }
                output.append(contentsOf: t.prefix(count - output.count))
                block += 1
            }
            scratch.initializeMemory(as: UInt8.self, repeating: 0)
        }
        return output
    }
}
