// SHA-256 and AES-256-GCM straight from BoringSSL, the library under swift-crypto.
//
// Why not swift-crypto's public API on this path: every open and save of a cookie derives a
// fresh AES key and runs about a dozen HMAC blocks, and swift-crypto's wrappers cost several
// times the cryptography itself there (a class-backed digest state copied on write for each
// HMAC, a `SymmetricKey`, a `Nonce`, an AEAD context object and `Data` buffers per message).
// BoringSSL's C API works on caller-owned state: the functions below keep it on the stack.
//
// `CCryptoBoringSSL` is the module swift-crypto builds BoringSSL into; SwiftPM makes it
// visible to every target that depends on `Crypto`. Its API is BoringSSL's, prefixed. If a
// swift-crypto release renamed it, this file stops compiling (nothing fails silently), and
// `BoringPrimitivesTests` compare every function here with swift-crypto's public API.
import CCryptoBoringSSL

/// A SHA-256 state held by value: copying it copies the state (112 bytes), with no allocation.
struct SHA256State: @unchecked Sendable {  // a plain C struct of integers and bytes
    static let digestSize = 32

    private var context = SHA256_CTX()

    init() {
        CCryptoBoringSSL_SHA256_Init(&context)
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        CCryptoBoringSSL_SHA256_Update(&context, base, bytes.count)
    }

    /// Writes the 32-byte digest to `output` (which must hold 32 bytes). The state is spent.
    mutating func finalize(into output: UnsafeMutableRawPointer) {
        CCryptoBoringSSL_SHA256_Final(output.assumingMemoryBound(to: UInt8.self), &context)
    }
}

/// AES-256-GCM with a 12-byte nonce and a 16-byte tag (the cookie's AEAD, COOKIE.md §5), one
/// message per call, all state on the stack.
enum AES256GCM {
    static let keySize = 32
    static let nonceSize = 12
    static let tagSize = 16

    /// Runs `body` with an initialised AEAD context for `key`, then cleans and wipes it.
    private static func withContext<Result>(
        key: UnsafeRawBufferPointer,
        _ body: (UnsafeMutablePointer<EVP_AEAD_CTX>) -> Result
    ) -> Result? {
        precondition(key.count == keySize)
        return withUnsafeTemporaryAllocation(of: EVP_AEAD_CTX.self, capacity: 1) { buffer in
            let context = buffer.baseAddress!
            CCryptoBoringSSL_EVP_AEAD_CTX_zero(context)
            guard CCryptoBoringSSL_EVP_AEAD_CTX_init(
                context,
                CCryptoBoringSSL_EVP_aead_aes_256_gcm(),
                key.baseAddress!.assumingMemoryBound(to: UInt8.self),
                keySize,
                tagSize,
                nil
            ) == 1 else {
                CCryptoBoringSSL_ERR_clear_error()
                return nil
            }
            defer {
                CCryptoBoringSSL_EVP_AEAD_CTX_cleanup(context)
                UnsafeMutableRawBufferPointer(buffer).initializeMemory(as: UInt8.self, repeating: 0)
            }
            return body(context)
        }
    }

    /// One `seal_scatter` of `input` to `output` (which may be `input` itself: BoringSSL allows
    /// in place), writing the tag; whether it succeeded (BoringSSL's error queue cleared if not).
    private static func sealScatter(
        _ context: UnsafeMutablePointer<EVP_AEAD_CTX>,
        output: UnsafeMutablePointer<UInt8>?,
        input: UnsafeBufferPointer<UInt8>,
        tag: inout HeaderBytes16,
        nonce: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer
    ) -> Bool {
        var tagLength = 0
        let ok = additionalData.withMemoryRebound(to: UInt8.self) { ad in
            tag.withUnsafeMutableBytes { tagBuffer in
                CCryptoBoringSSL_EVP_AEAD_CTX_seal_scatter(
                    context,
                    output, tagBuffer.baseAddress!.assumingMemoryBound(to: UInt8.self), &tagLength, tagSize,
                    nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), nonceSize,
                    input.baseAddress, input.count,
                    nil, 0,
                    ad.baseAddress, ad.count
                ) == 1
            }
        } && tagLength == tagSize
        if !ok { CCryptoBoringSSL_ERR_clear_error() }
        return ok
    }

    /// One `open_gather` of `input` with `tag` to `output` (which may be `input` itself);
    /// whether it authenticated (BoringSSL's error queue cleared if not).
    private static func openGather(
        _ context: UnsafeMutablePointer<EVP_AEAD_CTX>,
        output: UnsafeMutablePointer<UInt8>?,
        input: UnsafeBufferPointer<UInt8>,
        tag: HeaderBytes16,
        nonce: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer
    ) -> Bool {
        let ok = additionalData.withMemoryRebound(to: UInt8.self) { ad in
            tag.withUnsafeBytes { tagBuffer in
                CCryptoBoringSSL_EVP_AEAD_CTX_open_gather(
                    context,
                    output,
                    nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), nonceSize,
                    input.baseAddress, input.count,
                    tagBuffer.baseAddress!.assumingMemoryBound(to: UInt8.self), tagSize,
                    ad.baseAddress, ad.count
                ) == 1
            }
        }
        if !ok { CCryptoBoringSSL_ERR_clear_error() }
        return ok
    }

    /// Encrypts `plaintext`: the ciphertext (same length) and the tag, or nil if BoringSSL
    /// refused (it does not for these sizes).
    static func seal(
        _ plaintext: [UInt8],
        key: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer
    ) -> (ciphertext: [UInt8], tag: HeaderBytes16)? {
        precondition(nonce.count == nonceSize)
        var tag = HeaderBytes16()
        let sealed: [UInt8]?? = withContext(key: key) { context in
            var ok = false
            let ciphertext = [UInt8](unsafeUninitializedCapacity: Swift.max(plaintext.count, 1)) { output, initialized in
                ok = plaintext.withUnsafeBufferPointer { input in
                    sealScatter(
                        context, output: output.baseAddress, input: input, tag: &tag, nonce: nonce, additionalData: additionalData)
                }
                initialized = ok ? plaintext.count : 0
            }
            return ok ? ciphertext : nil
        }
        guard case .some(.some(let ciphertext)) = sealed else { return nil }
        return (ciphertext, tag)
    }

    /// Encrypts `buffer` in place (BoringSSL allows the output to be the input): the tag, or
    /// nil if BoringSSL refused. No second buffer of the message's size.
    static func sealInPlace(
        _ buffer: inout [UInt8],
        key: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer
    ) -> HeaderBytes16? {
        guard !buffer.isEmpty else {
            guard let (_, tag) = seal(buffer, key: key, nonce: nonce, additionalData: additionalData) else { return nil }
            return tag
        }
        precondition(nonce.count == nonceSize)
        var tag = HeaderBytes16()
        let sealed: Bool? = withContext(key: key) { context in
            buffer.withUnsafeMutableBufferPointer { message in
                sealScatter(
                    context, output: message.baseAddress, input: UnsafeBufferPointer(message), tag: &tag, nonce: nonce,
                    additionalData: additionalData)
            }
        }
        return sealed == true ? tag : nil
    }

    /// Decrypts and authenticates `buffer` in place with `tag`: whether it opened (when not,
    /// `buffer` holds zeros). No second buffer of the message's size.
    static func openInPlace(
        _ buffer: inout [UInt8],
        tag: HeaderBytes16,
        key: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer
    ) -> Bool {
        guard !buffer.isEmpty else {
            return open(buffer, tag: tag, key: key, nonce: nonce, additionalData: additionalData) != nil
        }
        precondition(nonce.count == nonceSize)
        let opened: Bool? = withContext(key: key) { context in
            buffer.withUnsafeMutableBufferPointer { message in
                openGather(
                    context, output: message.baseAddress, input: UnsafeBufferPointer(message), tag: tag, nonce: nonce,
                    additionalData: additionalData)
            }
        }
        return opened == true
    }

    /// Decrypts and authenticates `ciphertext` with `tag`: the plaintext, or nil when the tag
    /// does not match (a wrong key, nonce, additional data or altered bytes).
    static func open(
        _ ciphertext: some Collection<UInt8>,
        tag: HeaderBytes16,
        key: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer
    ) -> [UInt8]? {
        precondition(nonce.count == nonceSize)
        let run = { (input: UnsafeBufferPointer<UInt8>) -> [UInt8]?? in
            withContext(key: key) { context in
                var ok = false
                let plaintext = [UInt8](unsafeUninitializedCapacity: Swift.max(input.count, 1)) { output, initialized in
                    ok = openGather(
                        context, output: output.baseAddress, input: input, tag: tag, nonce: nonce, additionalData: additionalData)
                    initialized = ok ? input.count : 0
                }
                return ok ? plaintext : nil
            }
        }
        let result: [UInt8]??
        if let contiguous = ciphertext.withContiguousStorageIfAvailable({ run($0) }) {
            result = contiguous
        } else {
            result = Array(ciphertext).withUnsafeBufferPointer { run($0) }
        }
        guard case .some(.some(let plaintext)) = result else { return nil }
        return plaintext
    }
}
