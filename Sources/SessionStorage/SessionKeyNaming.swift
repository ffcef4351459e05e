/// The key names of the key-value backends (Redis, Memcached, memory), exactly as
/// lua-resty-session's `utils.get_name` builds them: parts joined with `:`.
///
///     session record:  [prefix:]name:key[:suffix]
///     index record:    [prefix:]name:audience:subject[:suffix]
///
/// An empty prefix or suffix counts as absent.
public struct SessionKeyNaming: Sendable, Hashable {
    /// The optional first part of every key.
    public var prefix: String?
    /// The optional last part of every key.
    public var suffix: String?

    /// Creates a naming scheme; empty strings count as absent.
    public init(prefix: String? = nil, suffix: String? = nil) {
        self.prefix = prefix?.isEmpty == true ? nil : prefix
        self.suffix = suffix?.isEmpty == true ? nil : suffix
    }

    /// The key of a session record: `[prefix:]name:key[:suffix]`.
    public func recordKey(name: String, key: String) -> String {
        var result = String()
        result.reserveCapacity((prefix?.utf8.count ?? 0) + name.utf8.count + key.utf8.count + (suffix?.utf8.count ?? 0) + 3)
        if let prefix {
            result.append(prefix)
            result.append(":")
        }
        result.append(name)
        result.append(":")
        result.append(key)
        if let suffix {
            result.append(":")
            result.append(suffix)
        }
        return result
    }

    /// The key of an (audience, subject) index: `[prefix:]name:audience:subject[:suffix]`.
    public func indexKey(name: String, audience: String, subject: String) -> String {
        recordKey(name: name, key: audience + ":" + subject)
    }
}
