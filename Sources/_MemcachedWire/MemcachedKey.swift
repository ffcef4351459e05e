/// The rules memcached's ASCII protocol sets for keys, checked before anything is sent.
public enum MemcachedKey {
    /// The longest key memcached accepts, in bytes.
    public static let maximumLength = 250

    /// Throws ``MemcachedClientError/Code/keyTooLong`` for a key over 250 bytes and
    /// ``MemcachedClientError/Code/invalidKey`` for an empty key or one holding a space, a
    /// control character (including CR and LF) or DEL. The message never repeats the key.
    public static func validate(_ key: String) throws {
        let utf8 = key.utf8
        guard !utf8.isEmpty else {
            throw MemcachedClientError(.invalidKey, message: "key must not be empty")
        }
        guard utf8.count <= maximumLength else {
            throw MemcachedClientError(.keyTooLong, message: "key is \(utf8.count) bytes, over the limit of \(maximumLength)")
        }
        for byte in utf8 where byte <= 0x20 || byte == 0x7F {
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
