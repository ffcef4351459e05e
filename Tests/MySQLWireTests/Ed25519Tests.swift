import Crypto
import Foundation
import Testing

@testable import _MySQLWire

@Suite("Ed25519 (client_ed25519)")
struct Ed25519Tests {
    static func random(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: .min ... .max) }
    }

    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var seed: String
        var publicKey: String
        var message: String
        var signature: String
        var testDescription: String { name }
    }

    /// RFC 8032 §7.1, TEST 1 to TEST 3.
    static let vectors = [
        Vector(
            name: "TEST 1", seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", message: "",
            signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        Vector(
            name: "TEST 2", seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", message: "72",
            signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        Vector(
            name: "TEST 3", seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", message: "af82",
            signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
                + "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]

    @Test(arguments: vectors) func rfc8032Vector(_ vector: Vector) {
        let seed = [UInt8](hex: vector.seed)
        #expect(Ed25519.publicKey(secret: seed).hex == vector.publicKey)
        #expect(Ed25519.sign(message: [UInt8](hex: vector.message), secret: seed).hex == vector.signature)
    }

    @Test func constants() {
        typealias F = Ed25519.FieldElement
        // d·121666 = −121665, 2d = d + d.
        let n121666 = F(l0: 121_666, l1: 0, l2: 0, l3: 0, l4: 0)
        let n121665 = F(l0: 121_665, l1: 0, l2: 0, l3: 0, l4: 0)
        #expect((F.d * n121666 + n121665).bytes == F.zero.bytes)
        #expect((F.d + F.d).bytes == F.d2.bytes)
        // B is on the curve, y = 4/5, and encodes as 0x58 0x66…
        let base = Ed25519.EdwardsPoint.base
        #expect(base.isOnCurve)
        let five = F(l0: 5, l1: 0, l2: 0, l3: 0, l4: 0)
        #expect((base.y * five).bytes == F(l0: 4, l1: 0, l2: 0, l3: 0, l4: 0).bytes)
        #expect(base.encoded() == [0x58] + [UInt8](repeating: 0x66, count: 31))
        // L·B is the identity (the scalar multiplication runs all 256 bits).
        let order = Ed25519.Scalar.order.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } }
        #expect(base.multiplied(by: order).encoded() == Ed25519.EdwardsPoint.identity.encoded())
        #expect(Ed25519.EdwardsPoint.identity.encoded() == [1] + [UInt8](repeating: 0, count: 31))
    }

    @Test func fieldArithmeticAgreesWithTheIntegers() {
        typealias F = Ed25519.FieldElement
        // p itself and p + 1 reduce to 0 and 1; 2^255 − 1 (top bit ignored on input) to 18.
        var p = [UInt8](repeating: 0xFF, count: 32)
        p[0] = 0xED
        p[31] = 0x7F
        #expect(F(bytes: p).bytes == F.zero.bytes)
        var p1 = p
        p1[0] = 0xEE
        #expect(F(bytes: p1).bytes == F.one.bytes)
        #expect(F(bytes: [UInt8](repeating: 0xFF, count: 32)).bytes == [18] + [UInt8](repeating: 0, count: 31))
        for _ in 0..<200 {
            var raw = Self.random(32)
            raw[31] &= 0x7F
            let a = F(bytes: raw), b = F(bytes: Self.random(32)), c = F(bytes: Self.random(32))
            #expect((a - a).bytes == F.zero.bytes)
            #expect((a + b - b).bytes == a.bytes)
            #expect((a * (b + c)).bytes == (a * b + a * c).bytes)
            #expect((a * b).bytes == (b * a).bytes)
            #expect(((a * b) * c).bytes == (a * (b * c)).bytes)
            if a.bytes != F.zero.bytes { #expect((a * a.inverted()).bytes == F.one.bytes) }
            // Canonical bytes round-trip (values below 2^255 − 19 stay as they are).
            if raw != p && !(raw[31] == 0x7F && raw[1...30].allSatisfy { $0 == 0xFF } && raw[0] >= 0xED) {
                #expect(a.bytes == raw)
            }
        }
    }

    @Test func scalarReductionAgreesWithTheIntegers() {
        typealias S = Ed25519.Scalar
        let order = S.order.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } }
        // L mod L = 0, (L + 5) mod L = 5, small numbers stay.
        #expect(S.reduce(order + [UInt8](repeating: 0, count: 32)).bytes == [UInt8](repeating: 0, count: 32))
        var orderPlus5 = order
        orderPlus5[0] &+= 5  // 0xED + 5 does not carry
        #expect(S.reduce(orderPlus5 + [UInt8](repeating: 0, count: 32)).bytes == [5] + [UInt8](repeating: 0, count: 31))
        // k·a + r against the same computation done as (k·a mod L) + r by repeated addition of
        // the reduced pieces: (k·(a1 + a2) + r) = k·a1 + (k·a2 + r).
        let zero = S(bytes: [UInt8](repeating: 0, count: 32))
        for _ in 0..<50 {
            let k = S.reduce(Self.random(64)), r = S.reduce(Self.random(64))
            var a1 = Self.random(32), a2 = Self.random(32)
            a1[31] &= 0x3F
            a2[31] &= 0x3F
            var sum = [UInt8](repeating: 0, count: 32)
            var carry = 0
            for index in 0..<32 {
                let value = Int(a1[index]) + Int(a2[index]) + carry
                sum[index] = UInt8(value & 0xFF)
                carry = value >> 8
            }
            let whole = S.multiplyAdd(k, S(bytes: sum), r)
            let one = S(bytes: [1] + [UInt8](repeating: 0, count: 31))
            let left = S.multiplyAdd(k, S(bytes: a1), zero)
            let right = S.multiplyAdd(k, S(bytes: a2), r)
            #expect(whole.bytes == S.multiplyAdd(one, left, right).bytes)
            // Results are below L (top byte at most 0x10).
            #expect(whole.bytes[31] <= 0x10)
        }
    }

    @Test func agreesWithSwiftCryptoForRandomSeedsAndMessages() throws {
        for round in 0..<40 {
            let seed = Self.random(32)
            let message = Self.random(round * 7)
            let key = try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
            #expect(Ed25519.publicKey(secret: seed) == Array(key.publicKey.rawRepresentation))
            let signature = Ed25519.sign(message: message, secret: seed)
            #expect(signature.count == 64)
            #expect(key.publicKey.isValidSignature(signature, for: message))
            var tampered = message + [0]
            tampered[0] ^= 1
            #expect(!key.publicKey.isValidSignature(signature, for: tampered))
        }
    }

    @Test func passwordsOfAnyLengthGiveValidSignatures() throws {
        for password in ["", "x", "password", String(repeating: "long-pass-é", count: 40)] {
            let scramble = Self.random(32)
            let publicKey = MySQLAuthentication.ed25519PublicKey(password: password)
            let signature = MySQLAuthentication.ed25519Password(password: password, scramble: scramble)
            let verifier = try Curve25519.Signing.PublicKey(rawRepresentation: publicKey)
            #expect(verifier.isValidSignature(signature, for: scramble), "password of \(password.utf8.count) bytes")
            // Deterministic, and bound to the password.
            #expect(MySQLAuthentication.ed25519Password(password: password, scramble: scramble) == signature)
            let other = try Curve25519.Signing.PublicKey(
                rawRepresentation: MySQLAuthentication.ed25519PublicKey(password: password + "!"))
            #expect(!other.isValidSignature(signature, for: scramble))
        }
        // A 32-byte password is a seed: the same key as swift-crypto's.
        let seedPassword = "0123456789abcdef0123456789abcdef"
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: Array(seedPassword.utf8))
        #expect(MySQLAuthentication.ed25519PublicKey(password: seedPassword) == Array(key.publicKey.rawRepresentation))
    }
}
