/// The rules memcached's ASCII protocol sets for keys, checked before anything is sent.
public enum MemcachedKey {
    /// The longest key memcached accepts, in bytes.
    public static let maximumLength = 250

    /// Throws ``MemcachedClientError/Code/keyTooLong`` for a key over 250 bytes and
    /// ``MemcachedClientError/Code/invalidKey`` for an empty key or one holding a space, a
    /// control character (including CR and LF) or DEL. The message never repeats the key.
    public static func validate(_ key: String) throws {
        var key = key
        let (count, invalid) = key.withUTF8 { bytes in
            (bytes.count, bytes.first { $0 <= 0x20 || $0 == 0x7F })
        }
        guard count > 0 else {
            throw MemcachedClientError(.invalidKey, message: "key must not be empty")
        }
        guard count <= maximumLength else {
            throw MemcachedClientError(.keyTooLong, message: "key is \(count) bytes, over the limit of \(maximumLength)")
        }
        if let byte = invalid {
            throw MemcachedClientError(
                .invalidKey,
                message: "key must not contain whitespace or control characters (found byte 0x\(String(byte, radix: 16)))"
            )
        }
    }

    /// Whether ``validate(_:)`` accepts `key`.
    public static func isValid(_ key: String) -> Bool {
        (try? validate(key)) != nil
    }
}
