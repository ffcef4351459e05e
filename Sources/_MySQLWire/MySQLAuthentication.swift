import Crypto
import Foundation
import _CryptoExtras

/// The auth responses of the plugins this client implements.
public enum MySQLAuthentication {
    /// `mysql_native_password`: `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`;
    /// empty for an empty password.
    public static func nativePassword(password: String, scramble: [UInt8]) -> [UInt8] {
        guard !password.isEmpty else { return [] }
        let stage1 = Array(Insecure.SHA1.hash(data: Array(password.utf8)))
        let stage2 = Array(Insecure.SHA1.hash(data: stage1))
        var hasher = Insecure.SHA1()
        hasher.update(data: scramble.prefix(20))
        hasher.update(data: stage2)
        let mask = Array(hasher.finalize())
        return zip(stage1, mask).map { $0 ^ $1 }
    }

    /// `caching_sha2_password`'s fast-path response:
    /// `SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble)`; empty for an empty password.
    public static func cachingSHA2Password(password: String, scramble: [UInt8]) -> [UInt8] {
        guard !password.isEmpty else { return [] }
        let stage1 = Array(SHA256.hash(data: Array(password.utf8)))
        let stage2 = Array(SHA256.hash(data: stage1))
        var hasher = SHA256()
        hasher.update(data: stage2)
        hasher.update(data: scramble.prefix(20))
        let mask = Array(hasher.finalize())
        return zip(stage1, mask).map { $0 ^ $1 }
    }

    /// MariaDB's `client_ed25519`: the Ed25519 signature (`R ‖ S`, 64 bytes) of the server's
    /// 32-byte scramble, with the password (of any length, empty included) in place of the seed:
    /// `a` = the clamped first half of `SHA-512(password)` and `A = a·B` is what the server stores.
    public static func ed25519Password(password: String, scramble: [UInt8]) -> [UInt8] {
        var secret = Array(password.utf8)
        defer { Ed25519.wipe(&secret) }
        return Ed25519.sign(message: scramble, secret: secret)
    }

    /// The public key MariaDB stores for a `client_ed25519` password (`ed25519_password()` shows
    /// it in base64 without padding).
    public static func ed25519PublicKey(password: String) -> [UInt8] {
        var secret = Array(password.utf8)
        defer { Ed25519.wipe(&secret) }
        return Ed25519.publicKey(secret: secret)
    }

    /// The full-authentication answer without TLS: `(password + NUL) XOR scramble` (repeated),
    /// encrypted with the server's RSA public key (PEM) using OAEP padding (SHA-1, as the server
    /// decrypts with `RSA_PKCS1_OAEP_PADDING`).
    public static func rsaEncryptedPassword(password: String, scramble: [UInt8], publicKeyPEM: String) throws -> [UInt8] {
        let key: _RSA.Encryption.PublicKey
        do {
            key = try _RSA.Encryption.PublicKey(unsafePEMRepresentation: publicKeyPEM)
        } catch {
            throw MySQLError(.protocolError, message: "the server's RSA public key cannot be read", underlying: error)
        }
        let plain = Array(password.utf8) + [0]
        let nonce = Array(scramble.prefix(20))
        guard !nonce.isEmpty else { throw MySQLError(.protocolError, message: "empty scramble") }
        let xored = plain.enumerated().map { $0.element ^ nonce[$0.offset % nonce.count] }
        do {
            return Array(try key.encrypt(xored, padding: .PKCS1_OAEP))
        } catch {
            throw MySQLError(.authenticationFailed, message: "RSA encryption of the password failed", underlying: error)
        }
    }
}
