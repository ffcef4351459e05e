import Crypto

/// One key of the session core: the 32-byte input key material (`ikm`) and its HKDF
/// pseudo-random key, extracted once (lua-resty-session caches it the same way).
struct SessionKey: Sendable {
    let ikm: [UInt8]
    let pseudoRandomKey: [UInt8]
    /// HMAC keyed with the PRK, copied for every expansion (saves re-keying).
    private let expander: HMAC<SHA256>

    init(ikm: [UInt8]) {
        self.ikm = ikm
        // HKDF-Extract with an empty salt (RFC 5869: a string of HashLen zeros).
        let prk = Array(HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: ikm), salt: [UInt8]()))
        self.pseudoRandomKey = prk
        self.expander = HMAC<SHA256>(key: SymmetricKey(data: prk))
    }

    /// HKDF-Expand(prk, info = usage ":" nonce, length) (RFC 5869 §2.3), `count` ≤ 64.
    func expand(usage: String, nonce: [UInt8], count: Int) -> [UInt8] {
        var info = Array(usage.utf8)
        info.append(UInt8(ascii: ":"))
        info.append(contentsOf: nonce)
        var output: [UInt8] = []
        output.reserveCapacity(64)
        var previous: [UInt8] = []
        var counter: UInt8 = 1
        while output.count < count {
            var hmac = expander
            hmac.update(data: previous)
            hmac.update(data: info)
            hmac.update(data: [counter])
            previous = Array(hmac.finalize())
            output.append(contentsOf: previous.prefix(count - output.count))
            counter += 1
        }
        return output
    }
}

/// The key derivations, MAC and AEAD of lua-resty-session 4.x (COOKIE.md §4–§6).
enum SessionCrypto {
    static let macSize = 16

    static func sha256<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var hasher = SHA256()
        hasher.update(data: Array(bytes))
        return Array(hasher.finalize())
    }

    /// The AES-256 key and 12-byte GCM nonce of a cookie: HKDF "encryption" (44 bytes), or for a
    /// remember cookie PBKDF2-HMAC-SHA256(pass = ikm, salt = "encryption:" sid) with the
    /// safety's iteration count.
    static func encryptionKey(_ key: SessionKey, sid: [UInt8], iterations: Int?) -> (key: SymmetricKey, nonce: AES.GCM.Nonce) {
        let material: [UInt8]
        if let iterations {
            var salt = Array("encryption:".utf8)
            salt.append(contentsOf: sid)
            material = pbkdf2SHA256(password: key.ikm, salt: salt, iterations: iterations, count: 44)
        } else {
            material = key.expand(usage: "encryption", nonce: sid, count: 44)
        }
        // 12 bytes is always a valid GCM nonce.
        let nonce = try! AES.GCM.Nonce(data: material[32..<44])
        return (SymmetricKey(data: material[0..<32]), nonce)
    }

    /// The header MAC: HMAC-SHA256(HKDF(ikm, "authentication:" sid, 32), message), first 16 bytes.
    static func mac(_ key: SessionKey, sid: [UInt8], message: [UInt8]) -> [UInt8] {
        let macKey = SymmetricKey(data: key.expand(usage: "authentication", nonce: sid, count: 32))
        let code = HMAC<SHA256>.authenticationCode(for: message, using: macKey)
        return Array(Array(code).prefix(macSize))
    }

    /// Compares two byte strings in time that depends only on their lengths.
    static func constantTimeEquals(_ lhs: [UInt8], _ rhs: ArraySlice<UInt8>) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for (left, right) in zip(lhs, rhs) { difference |= left ^ right }
        return difference == 0
    }

    /// PBKDF2 with HMAC-SHA256 (RFC 8018 §5.2). The keyed HMAC state is computed once and
    /// copied for every iteration.
    static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, count: Int) -> [UInt8] {
        let keyed = HMAC<SHA256>(key: SymmetricKey(data: password))
        var output: [UInt8] = []
        output.reserveCapacity(count)
        var block: UInt32 = 1
        while output.count < count {
            var first = keyed
            first.update(data: salt)
            first.update(data: [UInt8(block >> 24), UInt8(truncatingIfNeeded: block >> 16), UInt8(truncatingIfNeeded: block >> 8), UInt8(truncatingIfNeeded: block)])
            var u = Array(first.finalize())
            var t = u
            if iterations > 1 {
                for _ in 1..<iterations {
                    var next = keyed
                    next.update(data: u)
                    u = Array(next.finalize())
                    for index in 0..<t.count { t[index] ^= u[index] }
                }
            }
            output.append(contentsOf: t.prefix(count - output.count))
            block += 1
        }
        return output
    }
}
