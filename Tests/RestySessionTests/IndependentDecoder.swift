import Crypto
import Foundation

@testable import RestySession

/// A decoder of lua-resty-session cookies written in the test from COOKIE.md's byte offsets
/// only (no code of the module under test): base64url via Foundation, HKDF/PBKDF2/HMAC/AES-GCM
/// via swift-crypto directly.
enum IndependentDecoder {
    struct Decoded {
        var name: String
        var flags: Int
        var sid: [UInt8]
        var creationTime: Int
        var rollingOffset: Int
        var dataSize: Int
        var tag: [UInt8]
        var idlingOffset: Int
        var mac: [UInt8]
        var aesKey: [UInt8]
        var iv: [UInt8]
        /// Decrypted bytes (still deflated when flag 0x10 is set).
        var plaintext: [UInt8]
        /// The JSON text (inflated when flag 0x10 is set).
        var json: String
        var attributes: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func base64URL(_ text: Substring) throws -> [UInt8] {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.count % 4 != 0 { standard += "=" }
        guard let data = Data(base64Encoded: standard) else { throw Failure(description: "not base64url") }
        return Array(data)
    }

    static func littleEndian(_ bytes: ArraySlice<UInt8>) -> Int {
        bytes.reversed().reduce(0) { $0 << 8 | Int($1) }
    }

    /// The payload of a stored value `["<payload>", "<info>"?]`.
    static func payload(ofStoredValue value: String) -> String {
        let array = try! JSONSerialization.jsonObject(with: Data(value.utf8)) as! [String]
        return array[0]
    }

    /// Decodes one `Set-Cookie` value (the payload is taken from the cookie unless given).
    static func decode(
        setCookie: String,
        secret: String,
        rememberIterations: Int? = nil,
        storedPayload: String? = nil,
        extraChunks: [String] = [],
        bound: String? = nil
    ) throws -> Decoded {
        let firstSemicolon = setCookie.firstIndex(of: ";") ?? setCookie.endIndex
        let pair = setCookie[..<firstSemicolon]
        let equals = try pair.firstIndex(of: "=").orThrow("no =")
        let name = String(pair[..<equals])
        let value = pair[pair.index(after: equals)...]
        guard value.count >= 110 else { throw Failure(description: "short cookie") }
        let header = try base64URL(value.prefix(110))
        guard header.count == 82, header[0] == 1 else { throw Failure(description: "bad header") }

        let ikm = Array(SHA256.hash(data: Array(secret.utf8)))
        let sid = Array(header[3..<35])
        let macKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: ikm),
            salt: [UInt8](),
            info: Array("authentication:".utf8) + sid,
            outputByteCount: 32
        )
        var macInput = Array(header[0..<66])
        if let bound { macInput += Array("#".utf8) + Array(SHA256.hash(data: Array(bound.utf8))) }
        let mac = Array(HMAC<SHA256>.authenticationCode(for: macInput, using: macKey)).prefix(16)
        guard Array(mac) == Array(header[66..<82]) else { throw Failure(description: "MAC mismatch") }

        let keyAndIV: [UInt8]
        if let iterations = rememberIterations {
            keyAndIV = pbkdf2(password: ikm, salt: Array("encryption:".utf8) + sid, iterations: iterations, count: 44)
        } else {
            keyAndIV = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: ikm),
                salt: [UInt8](),
                info: Array("encryption:".utf8) + sid,
                outputByteCount: 44
            ).withUnsafeBytes { Array($0) }
        }
        let payloadText: Substring
        if let storedPayload {
            payloadText = Substring(storedPayload)
        } else {
            payloadText = Substring(String(value.dropFirst(110)) + extraChunks.joined())
        }
        let dataSize = littleEndian(header[44..<47])
        guard payloadText.count == dataSize else { throw Failure(description: "data size \(dataSize) vs payload \(payloadText.count)") }
        let ciphertext = try base64URL(payloadText)
        let box = try AES.GCM.SealedBox(
            nonce: AES.GCM.Nonce(data: keyAndIV[32..<44]),
            ciphertext: ciphertext,
            tag: header[47..<63]
        )
        let plaintext = Array(try AES.GCM.open(box, using: SymmetricKey(data: keyAndIV[0..<32]), authenticating: header[0..<47]))
        let flags = littleEndian(header[1..<3])
        return Decoded(
            name: name,
            flags: flags,
            sid: sid,
            creationTime: littleEndian(header[35..<40]),
            rollingOffset: littleEndian(header[40..<44]),
            dataSize: dataSize,
            tag: Array(header[47..<63]),
            idlingOffset: littleEndian(header[63..<66]),
            mac: Array(header[66..<82]),
            aesKey: Array(keyAndIV[0..<32]),
            iv: Array(keyAndIV[32..<44]),
            plaintext: plaintext,
            // Inflate is the module's own (zlib's output in case f is its independent check).
            json: flags & 0x10 == 0
                ? String(decoding: plaintext, as: UTF8.self)
                : String(decoding: try RawInflate.inflate(plaintext, limit: 1 << 24), as: UTF8.self),
            attributes: String(setCookie[firstSemicolon...])
        )
    }

    /// PBKDF2-HMAC-SHA256 the textbook way (RFC 8018), re-keying HMAC every round.
    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int, count: Int) -> [UInt8] {
        let key = SymmetricKey(data: password)
        var output: [UInt8] = []
        var block: UInt32 = 1
        while output.count < count {
            var u = Array(HMAC<SHA256>.authenticationCode(for: salt + withUnsafeBytes(of: block.bigEndian, Array.init), using: key))
            var t = u
            for _ in 1..<iterations {
                u = Array(HMAC<SHA256>.authenticationCode(for: u, using: key))
                for i in 0..<32 { t[i] ^= u[i] }
            }
            output += t
            block += 1
        }
        return Array(output.prefix(count))
    }
}

extension Optional {
    func orThrow(_ message: String) throws -> Wrapped {
        guard let self else { throw IndependentDecoder.Failure(description: message) }
        return self
    }
}
