import Crypto

/// Ed25519 signing (RFC 8032) with a secret of any length, as MariaDB's `client_ed25519` needs:
/// the secret takes the place of the 32-byte seed (`az = SHA-512(secret)`), so swift-crypto's
/// `Curve25519.Signing` (seeds of exactly 32 bytes) cannot be used.
///
/// Only what signing needs is here: field arithmetic modulo 2^255 − 19, the twisted Edwards group
/// in extended coordinates, a fixed-base scalar multiplication and arithmetic modulo the group
/// order L. Every step runs the same operations whatever the secret (no branch nor index on secret
/// bits); it runs once per connection, so it favours plainness over speed.
enum Ed25519 {
    /// The public key of `secret`: the encoding of `a·B`, `a` the clamped first half of `SHA-512(secret)`.
    static func publicKey(secret: [UInt8]) -> [UInt8] {
        var expanded = ExpandedSecret(secret: secret)
        defer { expanded.wipe() }
        return expanded.publicKey
    }

    /// The 64-byte signature `R ‖ S` of `message` with the key derived from `secret`.
    static func sign(message: [UInt8], secret: [UInt8]) -> [UInt8] {
        var expanded = ExpandedSecret(secret: secret)
        defer { expanded.wipe() }

        // r = SHA-512(prefix ‖ message) mod L; R = r·B.
        var hasher = SHA512()
        hasher.update(data: expanded.prefix)
        hasher.update(data: message)
        var nonceHash = Array(hasher.finalize())
        var r = Scalar.reduce(nonceHash)
        var rBytes = r.bytes
        defer {
            Ed25519.wipe(&nonceHash)
            Ed25519.wipe(&rBytes)
            r.wipe()
        }
        let encodedR = EdwardsPoint.base.multiplied(by: rBytes).encoded()

        // k = SHA-512(R ‖ A ‖ message) mod L; S = (r + k·a) mod L.
        var challenge = SHA512()
        challenge.update(data: encodedR)
        challenge.update(data: expanded.publicKey)
        challenge.update(data: message)
        let k = Scalar.reduce(Array(challenge.finalize()))
        let s = Scalar.multiplyAdd(k, expanded.scalar, r)
        return encodedR + s.bytes
    }

    /// `SHA-512(secret)` split into the clamped scalar `a` and the nonce prefix, with `A = a·B`.
    struct ExpandedSecret {
        /// The clamped scalar `a` (32 bytes, little-endian; not reduced modulo L).
        var scalar: Scalar
        /// The second half of the hash, mixed into every nonce.
        var prefix: [UInt8]
        /// The encoding of `a·B`.
        let publicKey: [UInt8]

        init(secret: [UInt8]) {
            var az = Array(SHA512.hash(data: secret))
            var a = Array(az[0..<32])
            a[0] &= 248
            a[31] &= 63
            a[31] |= 64
            prefix = Array(az[32..<64])
            scalar = Scalar(bytes: a)
            publicKey = EdwardsPoint.base.multiplied(by: a).encoded()
            Ed25519.wipe(&az)
            Ed25519.wipe(&a)
        }

        mutating func wipe() {
            scalar.wipe()
            Ed25519.wipe(&prefix)
        }
    }

    /// Overwrites a buffer of secret bytes with zeros.
    static func wipe(_ bytes: inout [UInt8]) {
        for index in bytes.indices { bytes[index] = 0 }
    }
}

// MARK: - the field GF(2^255 − 19)

extension Ed25519 {
    /// An element of GF(2^255 − 19) as five 51-bit limbs, little-endian: `l0 + l1·2^51 + … + l4·2^204`.
    /// After every operation each limb is below 2^52 (the value itself is not necessarily reduced).
    struct FieldElement: Equatable {
        var l0: UInt64, l1: UInt64, l2: UInt64, l3: UInt64, l4: UInt64

        static let mask: UInt64 = (1 << 51) - 1
        static let zero = FieldElement(l0: 0, l1: 0, l2: 0, l3: 0, l4: 0)
        static let one = FieldElement(l0: 1, l1: 0, l2: 0, l3: 0, l4: 0)
        /// The curve constant d = −121665/121666.
        static let d = FieldElement(
            l0: 0x34dca1_35978a3, l1: 0x1a8283_b156ebd, l2: 0x5e7a26_001c029, l3: 0x739c66_3a03cbb, l4: 0x52036c_ee2b6ff)
        /// 2·d.
        static let d2 = FieldElement(
            l0: 0x69b942_6b2f159, l1: 0x350507_62add7a, l2: 0x3cf44c_0038052, l3: 0x6738cc_7407977, l4: 0x2406d9_dc56dff)

        /// Reads 32 little-endian bytes (the top bit is ignored).
        init(bytes: [UInt8]) {
            precondition(bytes.count == 32)
            func word(_ offset: Int) -> UInt64 {
                var value: UInt64 = 0
                for index in (0..<8).reversed() { value = value << 8 | UInt64(bytes[offset + index]) }
                return value
            }
            // Limb i starts at bit 51·i: byte 51·i / 8, shifted by 51·i % 8.
            l0 = word(0) & Self.mask
            l1 = (word(6) >> 3) & Self.mask
            l2 = (word(12) >> 6) & Self.mask
            l3 = (word(19) >> 1) & Self.mask
            l4 = (word(24) >> 12) & Self.mask
        }

        init(l0: UInt64, l1: UInt64, l2: UInt64, l3: UInt64, l4: UInt64) {
            (self.l0, self.l1, self.l2, self.l3, self.l4) = (l0, l1, l2, l3, l4)
        }

        /// Carries every limb's excess into the next one (the top one's, times 19, into the first).
        private static func carried(_ l0: UInt64, _ l1: UInt64, _ l2: UInt64, _ l3: UInt64, _ l4: UInt64) -> FieldElement {
            var (c0, c1, c2, c3, c4) = (l0, l1, l2, l3, l4)
            c1 += c0 >> 51
            c0 &= mask
            c2 += c1 >> 51
            c1 &= mask
            c3 += c2 >> 51
            c2 &= mask
            c4 += c3 >> 51
            c3 &= mask
            c0 += (c4 >> 51) * 19
            c4 &= mask
            c1 += c0 >> 51
            c0 &= mask
            return FieldElement(l0: c0, l1: c1, l2: c2, l3: c3, l4: c4)
        }

        static func + (a: FieldElement, b: FieldElement) -> FieldElement {
            carried(a.l0 + b.l0, a.l1 + b.l1, a.l2 + b.l2, a.l3 + b.l3, a.l4 + b.l4)
        }

        /// `a + 2p − b`: every limb of 2p exceeds any limb below 2^52 − 38, so nothing underflows.
        static func - (a: FieldElement, b: FieldElement) -> FieldElement {
            let twoP0: UInt64 = 2 * ((1 << 51) - 19)
            let twoPi: UInt64 = 2 * ((1 << 51) - 1)
            return carried(
                a.l0 + twoP0 - b.l0, a.l1 + twoPi - b.l1, a.l2 + twoPi - b.l2, a.l3 + twoPi - b.l3, a.l4 + twoPi - b.l4)
        }

        static func * (a: FieldElement, b: FieldElement) -> FieldElement {
            // 2^255 ≡ 19: a product term at limb position 5 + i folds into position i times 19.
            let b1 = b.l1 * 19, b2 = b.l2 * 19, b3 = b.l3 * 19, b4 = b.l4 * 19
            var r0 = Wide(a.l0, b.l0), r1 = Wide(a.l0, b.l1), r2 = Wide(a.l0, b.l2)
            var r3 = Wide(a.l0, b.l3), r4 = Wide(a.l0, b.l4)
            r0.add(a.l1, b4)
            r0.add(a.l2, b3)
            r0.add(a.l3, b2)
            r0.add(a.l4, b1)
            r1.add(a.l1, b.l0)
            r1.add(a.l2, b4)
            r1.add(a.l3, b3)
            r1.add(a.l4, b2)
            r2.add(a.l1, b.l1)
            r2.add(a.l2, b.l0)
            r2.add(a.l3, b4)
            r2.add(a.l4, b3)
            r3.add(a.l1, b.l2)
            r3.add(a.l2, b.l1)
            r3.add(a.l3, b.l0)
            r3.add(a.l4, b4)
            r4.add(a.l1, b.l3)
            r4.add(a.l2, b.l2)
            r4.add(a.l3, b.l1)
            r4.add(a.l4, b.l0)
            // Each sum is below 2^107 (limbs below 2^52, factors of 19); carry 51 bits at a time in 128-bit arithmetic.
            r1.add(r0.shifted51)
            r2.add(r1.shifted51)
            r3.add(r2.shifted51)
            r4.add(r3.shifted51)
            let top = r4.shifted51  // below 2^57, so 19·top fits with room
            return carried(r0.low51 + top * 19, r1.low51, r2.low51, r3.low51, r4.low51)
        }

        func squared() -> FieldElement { self * self }

        /// `self^(p−2)` = 1/self (0 for 0), by square-and-multiply over the public exponent.
        func inverted() -> FieldElement {
            // p − 2 = 2^255 − 21: bits 254…5 set, then 0b01011.
            var result = FieldElement.one
            for bit in (0..<255).reversed() {
                result = result.squared()
                let set = bit >= 5 || (0b01011 >> bit) & 1 == 1
                if set { result = result * self }
            }
            return result
        }

        /// The canonical 32-byte little-endian encoding (fully reduced modulo p).
        var bytes: [UInt8] {
            var h = Self.carried(l0, l1, l2, l3, l4)
            // q = 1 when h ≥ p (h + 19 reaches 2^255), then h − q·p = h + 19q − q·2^255.
            var q = (h.l0 + 19) >> 51
            q = (h.l1 + q) >> 51
            q = (h.l2 + q) >> 51
            q = (h.l3 + q) >> 51
            q = (h.l4 + q) >> 51
            h.l0 += 19 * q
            h.l1 += h.l0 >> 51
            h.l0 &= Self.mask
            h.l2 += h.l1 >> 51
            h.l1 &= Self.mask
            h.l3 += h.l2 >> 51
            h.l2 &= Self.mask
            h.l4 += h.l3 >> 51
            h.l3 &= Self.mask
            h.l4 &= Self.mask
            let words: [UInt64] = [
                h.l0 | h.l1 << 51, h.l1 >> 13 | h.l2 << 38, h.l2 >> 26 | h.l3 << 25, h.l3 >> 39 | h.l4 << 12,
            ]
            var out = [UInt8](repeating: 0, count: 32)
            for (index, word) in words.enumerated() {
                for byte in 0..<8 { out[index * 8 + byte] = UInt8(truncatingIfNeeded: word >> (8 * byte)) }
            }
            return out
        }

        /// Whether the canonical value is odd (the "sign" of x in a point encoding).
        var isNegative: Bool { bytes[0] & 1 == 1 }

        /// `a` when `choice` is 0, `b` when it is 1, without a branch.
        static func select(_ a: FieldElement, _ b: FieldElement, _ choice: UInt64) -> FieldElement {
            let m = 0 &- choice
            return FieldElement(
                l0: a.l0 ^ (m & (a.l0 ^ b.l0)), l1: a.l1 ^ (m & (a.l1 ^ b.l1)), l2: a.l2 ^ (m & (a.l2 ^ b.l2)),
                l3: a.l3 ^ (m & (a.l3 ^ b.l3)), l4: a.l4 ^ (m & (a.l4 ^ b.l4)))
        }
    }

    /// A 128-bit accumulator of 64×64-bit products.
    struct Wide {
        var high: UInt64
        var low: UInt64

        init(_ a: UInt64, _ b: UInt64) {
            (high, low) = a.multipliedFullWidth(by: b)
        }

        mutating func add(_ a: UInt64, _ b: UInt64) {
            let (h, l) = a.multipliedFullWidth(by: b)
            let (sum, overflow) = low.addingReportingOverflow(l)
            low = sum
            high = high &+ h &+ (overflow ? 1 : 0)
        }

        mutating func add(_ value: UInt64) {
            let (sum, overflow) = low.addingReportingOverflow(value)
            low = sum
            high = high &+ (overflow ? 1 : 0)
        }

        var low51: UInt64 { low & FieldElement.mask }
        var shifted51: UInt64 { low >> 51 | high << 13 }
    }
}

// MARK: - the group

extension Ed25519 {
    /// A point of −x² + y² = 1 + d·x²·y² in extended coordinates: x = X/Z, y = Y/Z, x·y = T/Z.
    struct EdwardsPoint {
        var x: FieldElement, y: FieldElement, z: FieldElement, t: FieldElement

        static let identity = EdwardsPoint(x: .zero, y: .one, z: .one, t: .zero)
        /// The base point B (y = 4/5, x even).
        static let base = EdwardsPoint(
            x: FieldElement(
                l0: 0x62d608_f25d51a, l1: 0x412a4b_4f6592a, l2: 0x75b717_1a4b31d, l3: 0x1ff605_27118fe, l4: 0x216936_d3cd6e5),
            y: FieldElement(
                l0: 0x666666_6666658, l1: 0x4ccccc_ccccccc, l2: 0x199999_9999999, l3: 0x333333_3333333, l4: 0x666666_6666666),
            z: .one,
            t: FieldElement(
                l0: 0x68ab3a_5b7dda3, l1: 0x00eea2_a5eadbb, l2: 0x2af8df_483c27e, l3: 0x332b37_5274732, l4: 0x67875f_0fd78b7))

        /// The sum, with the unified formula for a = −1 (Hisil–Wong–Carter–Dawson 2008, §3.1):
        /// complete on this curve, so it also doubles and adds the identity.
        static func + (p: EdwardsPoint, q: EdwardsPoint) -> EdwardsPoint {
            let a = (p.y - p.x) * (q.y - q.x)
            let b = (p.y + p.x) * (q.y + q.x)
            let c = p.t * FieldElement.d2 * q.t
            let d = (p.z + p.z) * q.z
            let e = b - a, f = d - c, g = d + c, h = b + a
            return EdwardsPoint(x: e * f, y: g * h, z: f * g, t: e * h)
        }

        /// `scalar·self` (32 little-endian bytes): double, add, and keep the sum or not by a mask
        /// over all 256 bits, so the work does not depend on the scalar.
        func multiplied(by scalar: [UInt8]) -> EdwardsPoint {
            precondition(scalar.count == 32)
            var result = EdwardsPoint.identity
            for bit in (0..<256).reversed() {
                result = result + result
                let sum = result + self
                let choice = UInt64((scalar[bit >> 3] >> UInt8(bit & 7)) & 1)
                result = EdwardsPoint(
                    x: .select(result.x, sum.x, choice), y: .select(result.y, sum.y, choice),
                    z: .select(result.z, sum.z, choice), t: .select(result.t, sum.t, choice))
            }
            return result
        }

        /// The 32-byte encoding: y, with the sign bit of x in the top bit.
        func encoded() -> [UInt8] {
            let inverse = z.inverted()
            var out = (y * inverse).bytes
            if (x * inverse).isNegative { out[31] |= 0x80 }
            return out
        }

        /// Whether the point satisfies the curve equation (−X² + Y² = Z² + d·T², X·Y = Z·T).
        var isOnCurve: Bool {
            let x2 = x.squared(), y2 = y.squared(), z2 = z.squared(), t2 = t.squared()
            return (y2 - x2).bytes == (z2 + FieldElement.d * t2).bytes && (x * y).bytes == (z * t).bytes
        }
    }
}

// MARK: - scalars modulo L

extension Ed25519 {
    /// An integer modulo L = 2^252 + 27742317777372353535851937790883648493, as four 64-bit words,
    /// little-endian.
    struct Scalar {
        var words: [UInt64]

        /// L.
        static let order: [UInt64] = [0x5812631a_5cf5d3ed, 0x14def9de_a2f79cd6, 0, 0x10000000_00000000]

        /// 32 little-endian bytes, taken as they are (not reduced).
        init(bytes: [UInt8]) {
            precondition(bytes.count == 32)
            words = (0..<4).map { word in
                (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[word * 8 + $1]) << (8 * $1) }
            }
        }

        private init(words: [UInt64]) { self.words = words }

        /// The 32-byte little-endian encoding.
        var bytes: [UInt8] {
            (0..<32).map { UInt8(truncatingIfNeeded: words[$0 >> 3] >> (8 * ($0 & 7))) }
        }

        /// A 64-byte little-endian number (such as a SHA-512 digest) modulo L.
        static func reduce(_ bytes: [UInt8]) -> Scalar {
            precondition(bytes.count == 64)
            let wide = (0..<8).map { word in
                (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[word * 8 + $1]) << (8 * $1) }
            }
            return reduce(wide: wide)
        }

        /// `(k·a + r) mod L`, for k, r below L and a below 2^256.
        static func multiplyAdd(_ k: Scalar, _ a: Scalar, _ r: Scalar) -> Scalar {
            var product = [UInt64](repeating: 0, count: 8)
            for i in 0..<4 {
                var carry: UInt64 = 0
                for j in 0..<4 {
                    let (high, low) = k.words[i].multipliedFullWidth(by: a.words[j])
                    let (s1, o1) = low.addingReportingOverflow(product[i + j])
                    let (s2, o2) = s1.addingReportingOverflow(carry)
                    product[i + j] = s2
                    carry = high &+ (o1 ? 1 : 0) &+ (o2 ? 1 : 0)  // high ≤ 2^64 − 2: no overflow
                }
                product[i + 4] = carry
            }
            // k·a < 2^509, + r stays far below 2^512.
            var carry: UInt64 = 0
            for index in 0..<8 {
                let (s1, o1) = product[index].addingReportingOverflow(index < 4 ? r.words[index] : 0)
                let (s2, o2) = s1.addingReportingOverflow(carry)
                product[index] = s2
                carry = (o1 ? 1 : 0) + (o2 ? 1 : 0)
            }
            defer { for index in product.indices { product[index] = 0 } }
            return reduce(wide: product)
        }

        /// A 512-bit number modulo L, by binary long division: shift one bit in, subtract L when
        /// the remainder reaches it (the subtraction always runs; a mask keeps it or not).
        private static func reduce(wide: [UInt64]) -> Scalar {
            var remainder: [UInt64] = [0, 0, 0, 0]
            for bit in (0..<512).reversed() {
                // remainder < L < 2^253, so 2·remainder + 1 fits in 256 bits.
                let incoming = (wide[bit >> 6] >> UInt64(bit & 63)) & 1
                remainder[3] = remainder[3] << 1 | remainder[2] >> 63
                remainder[2] = remainder[2] << 1 | remainder[1] >> 63
                remainder[1] = remainder[1] << 1 | remainder[0] >> 63
                remainder[0] = remainder[0] << 1 | incoming
                var difference: [UInt64] = [0, 0, 0, 0]
                var borrow: UInt64 = 0
                for index in 0..<4 {
                    let (d1, b1) = remainder[index].subtractingReportingOverflow(order[index])
                    let (d2, b2) = d1.subtractingReportingOverflow(borrow)
                    difference[index] = d2
                    borrow = (b1 ? 1 : 0) | (b2 ? 1 : 0)
                }
                // borrow == 0 ⇔ remainder ≥ L: take the difference.
                let keep = borrow &- 1  // all ones when there was no borrow
                for index in 0..<4 { remainder[index] ^= keep & (remainder[index] ^ difference[index]) }
            }
            return Scalar(words: remainder)
        }

        mutating func wipe() {
            for index in words.indices { words[index] = 0 }
        }
    }
}
