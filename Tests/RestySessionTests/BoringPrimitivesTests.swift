import Crypto
import Foundation
import Testing

@testable import RestySession
import SessionStorageConformance

/// The session core calls BoringSSL directly for SHA-256 and AES-256-GCM (BoringPrimitives.swift).
/// Each function is checked against swift-crypto's public API on many shapes of input.
@Suite("BoringSSL primitives vs swift-crypto")
struct BoringPrimitivesTests {
    private func bytes(_ count: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    @Test func sha256MatchesSwiftCryptoAcrossBlockBoundariesAndSplits() {
        var rng = SplitMix64(seed: 11)
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4097] {
            let message = bytes(length, &rng)
            let reference = Array(SHA256.hash(data: message))
            #expect(SessionCrypto.sha256(message) == reference, "length \(length)")
            // the same bytes in uneven parts
            var state = SHA256State()
            var offset = 0
            var step = 1
            message.withUnsafeBytes { all in
                while offset < length {
                    let end = min(offset + step, length)
                    state.update(UnsafeRawBufferPointer(rebasing: all[offset..<end]))
                    offset = end
                    step = step * 3 + 1
                }
            }
            var digest = [UInt8](repeating: 0, count: 32)
            digest.withUnsafeMutableBytes { state.finalize(into: $0.baseAddress!) }
            #expect(digest == reference, "length \(length), in parts")
        }
    }

    @Test func sha256StateCopiesAreIndependent() {
        var first = SHA256State()
        Array("abc".utf8).withUnsafeBytes { first.update($0) }
        var second = first
        Array("def".utf8).withUnsafeBytes { second.update($0) }
        var digests = [[UInt8]](repeating: [UInt8](repeating: 0, count: 32), count: 2)
        digests[0].withUnsafeMutableBytes { first.finalize(into: $0.baseAddress!) }
        digests[1].withUnsafeMutableBytes { second.finalize(into: $0.baseAddress!) }
        #expect(digests[0] == Array(SHA256.hash(data: Array("abc".utf8))))
        #expect(digests[1] == Array(SHA256.hash(data: Array("abcdef".utf8))))
    }

    @Test func aesGCMSealMatchesSwiftCryptoAndOpensBothWays() throws {
        var rng = SplitMix64(seed: 12)
        for length in [0, 1, 15, 16, 17, 63, 64, 95, 96, 97, 1000, 1517, 4096, 65_537] {
            let key = bytes(32, &rng)
            let nonce = bytes(12, &rng)
            let ad = bytes(length % 3 == 0 ? 47 : length % 50, &rng)
            let plaintext = bytes(length, &rng)

            let ours = try #require(key.withUnsafeBytes { key in
                nonce.withUnsafeBytes { AES256GCM.seal(plaintext, key: key, nonce: $0, additionalData: ad) }
            })
            let reference = try AES.GCM.seal(plaintext, using: SymmetricKey(data: key), nonce: AES.GCM.Nonce(data: nonce), authenticating: ad)
            #expect(ours.ciphertext == Array(reference.ciphertext), "length \(length)")
            #expect(ours.tag.bytes == Array(reference.tag), "length \(length)")

            // ours opens swift-crypto's box, swift-crypto opens ours
            let opened = key.withUnsafeBytes { key in
                nonce.withUnsafeBytes {
                    AES256GCM.open(Array(reference.ciphertext), tag: HeaderBytes16(Array(reference.tag))!, key: key, nonce: $0, additionalData: ad)
                }
            }
            #expect(opened == plaintext, "length \(length)")
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: ours.ciphertext, tag: ours.tag.bytes)
            #expect(Array(try AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: ad)) == plaintext)

            // in place: the same ciphertext and tag, and back to the plaintext; a wrong tag
            // leaves zeros
            var buffer = plaintext
            let tag = key.withUnsafeBytes { key in
                nonce.withUnsafeBytes { nonce in ad.withUnsafeBytes { AES256GCM.sealInPlace(&buffer, key: key, nonce: nonce, additionalData: $0) } }
            }
            #expect(buffer == Array(reference.ciphertext) && tag?.bytes == Array(reference.tag), "in place, length \(length)")
            var reopened = buffer
            var forged = buffer
            let (opensInPlace, opensForged) = key.withUnsafeBytes { key in
                nonce.withUnsafeBytes { nonce in
                    ad.withUnsafeBytes { ad in
                        (AES256GCM.openInPlace(&reopened, tag: tag ?? HeaderBytes16(), key: key, nonce: nonce, additionalData: ad),
                         AES256GCM.openInPlace(&forged, tag: HeaderBytes16(), key: key, nonce: nonce, additionalData: ad))
                    }
                }
            }
            #expect(opensInPlace && reopened == plaintext, "in place, length \(length)")
            #expect(!opensForged && forged.allSatisfy { $0 == 0 }, "forged, length \(length)")
        }
    }

    @Test func aesGCMOpenRejectsEveryAlteration() throws {
        var rng = SplitMix64(seed: 13)
        let key = bytes(32, &rng)
        let nonce = bytes(12, &rng)
        let ad = bytes(47, &rng)
        let plaintext = bytes(300, &rng)
        let sealed = try #require(key.withUnsafeBytes { key in
            nonce.withUnsafeBytes { AES256GCM.seal(plaintext, key: key, nonce: $0, additionalData: ad) }
        })
        func open(_ ciphertext: [UInt8], tag: [UInt8], key: [UInt8], nonce: [UInt8], ad: [UInt8]) -> [UInt8]? {
            // a tag of another length than 16 cannot even be passed
            guard let tag = HeaderBytes16(tag) else { return nil }
            return key.withUnsafeBytes { key in
                nonce.withUnsafeBytes { AES256GCM.open(ciphertext, tag: tag, key: key, nonce: $0, additionalData: ad) }
            }
        }
        let sealedTag = sealed.tag.bytes
        #expect(open(sealed.ciphertext, tag: sealedTag, key: key, nonce: nonce, ad: ad) == plaintext)
        // the slice path (the cookie's ciphertext is often an ArraySlice)
        let padded = [0xAA] + sealed.ciphertext + [0xBB]
        let slice = padded[1..<(padded.count - 1)]
        let fromSlice = key.withUnsafeBytes { key in
            nonce.withUnsafeBytes { AES256GCM.open(slice, tag: sealed.tag, key: key, nonce: $0, additionalData: ad) }
        }
        #expect(fromSlice == plaintext)

        func flipped(_ bytes: [UInt8], at index: Int) -> [UInt8] {
            var copy = bytes
            copy[index] ^= 0x01
            return copy
        }
        for index in [0, 150, 299] {
            #expect(open(flipped(sealed.ciphertext, at: index), tag: sealedTag, key: key, nonce: nonce, ad: ad) == nil)
        }
        for index in [0, 15] {
            #expect(open(sealed.ciphertext, tag: flipped(sealedTag, at: index), key: key, nonce: nonce, ad: ad) == nil)
        }
        #expect(open(sealed.ciphertext, tag: sealedTag, key: flipped(key, at: 7), nonce: nonce, ad: ad) == nil)
        #expect(open(sealed.ciphertext, tag: sealedTag, key: key, nonce: flipped(nonce, at: 11), ad: ad) == nil)
        #expect(open(sealed.ciphertext, tag: sealedTag, key: key, nonce: nonce, ad: flipped(ad, at: 46)) == nil)
        #expect(open(sealed.ciphertext, tag: Array(sealedTag.prefix(15)), key: key, nonce: nonce, ad: ad) == nil)
        #expect(open(Array(sealed.ciphertext.dropLast()), tag: sealedTag, key: key, nonce: nonce, ad: ad) == nil)
    }
}

/// The tests' arrays as the AAD (the session core passes the header's bytes in place).
extension AES256GCM {
    static func seal(
        _ plaintext: [UInt8], key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, additionalData: [UInt8]
    ) -> (ciphertext: [UInt8], tag: HeaderBytes16)? {
        additionalData.withUnsafeBytes { seal(plaintext, key: key, nonce: nonce, additionalData: $0) }
    }

    static func open(
        _ ciphertext: some Collection<UInt8>, tag: HeaderBytes16, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        additionalData: [UInt8]
    ) -> [UInt8]? {
        additionalData.withUnsafeBytes { open(ciphertext, tag: tag, key: key, nonce: nonce, additionalData: $0) }
    }
}
