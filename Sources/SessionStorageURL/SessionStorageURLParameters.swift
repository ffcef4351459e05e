/// The query parameters of a storage URL as a backend reads them: typed getters that remember
/// which names were read, so ``finish()`` can refuse the names nobody knows.
///
/// A factory of a new scheme (``SessionStorageFactory/register(scheme:_:)``) reads its options
/// with these getters; errors name the parameter, never its value.
public struct SessionStorageURLParameters: Sendable {
    /// The URL being read.
    public let url: SessionStorageURL
    private var read: Set<String> = []

    /// Starts reading the parameters of `url`.
    public init(url: SessionStorageURL) {
        self.url = url
    }

    /// A parameter as text, or `nil` when absent.
    public mutating func string(_ name: String) -> String? {
        read.insert(name)
        return url.query[name]
    }

    /// A non-empty text parameter, or `nil` when absent.
    public mutating func nonEmptyString(_ name: String) throws(SessionStorageURLError) -> String? {
        guard let value = string(name) else { return nil }
        guard !value.isEmpty else {
            throw SessionStorageURLError(.invalidParameter, message: "the parameter must not be empty", parameter: name)
        }
        return value
    }

    /// A boolean parameter: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; a bare name is `true`.
    public mutating func bool(_ name: String) throws(SessionStorageURLError) -> Bool? {
        guard let value = string(name) else { return nil }
        switch value.lowercased() {
        case "", "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default:
            throw SessionStorageURLError(.invalidParameter, message: "the parameter must be true or false", parameter: name)
        }
    }

    /// An integer parameter within `range`.
    public mutating func int(_ name: String, in range: ClosedRange<Int>) throws(SessionStorageURLError) -> Int? {
        guard let value = string(name) else { return nil }
        guard let number = Int(value), range.contains(number) else {
            throw SessionStorageURLError(
                .invalidParameter, message: "the parameter must be a whole number from \(range.lowerBound) to \(range.upperBound)",
                parameter: name)
        }
        return number
    }

    /// A size in bytes: a whole number with an optional `k`, `m` or `g` suffix (powers of 1024).
    public mutating func byteCount(_ name: String, in range: ClosedRange<Int>) throws(SessionStorageURLError) -> Int? {
        guard let value = string(name)?.lowercased() else { return nil }
        var digits = Substring(value)
        var multiplier = 1
        if let last = digits.last, let shift = ["k": 10, "m": 20, "g": 30][String(last)] {
            multiplier = 1 << shift
            digits = digits.dropLast()
        }
        guard let number = Int(digits), number.multipliedReportingOverflow(by: multiplier).overflow == false,
            range.contains(number * multiplier)
        else {
            throw SessionStorageURLError(.invalidParameter, message: "the parameter must be a size in bytes (k, m, g suffixes)", parameter: name)
        }
        return number * multiplier
    }

    /// A duration: a number of seconds, or a number with `ms`, `s`, `m` or `h` (`500ms`, `10s`, `2m`).
    public mutating func duration(_ name: String) throws(SessionStorageURLError) -> Duration? {
        guard let value = string(name)?.lowercased() else { return nil }
        let units: [(suffix: String, milliseconds: Int)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)]
        var milliseconds: Int?
        for unit in units where value.hasSuffix(unit.suffix) {
            if let number = Int(value.dropLast(unit.suffix.count)), number >= 0, number <= 1_000_000_000 {
                milliseconds = number * unit.milliseconds
            }
            break
        }
        if milliseconds == nil, let number = Int(value), number >= 0, number <= 1_000_000_000 {
            milliseconds = number * 1_000
        }
        guard let milliseconds else {
            throw SessionStorageURLError(.invalidParameter, message: "the parameter must be a duration such as 10, 10s or 500ms", parameter: name)
        }
        return .milliseconds(milliseconds)
    }

    /// One of a closed set of words.
    public mutating func choice<T>(_ name: String, _ choices: [String: T]) throws(SessionStorageURLError) -> T? {
        guard let value = string(name) else { return nil }
        guard let choice = choices[value.lowercased()] else {
            throw SessionStorageURLError(
                .invalidParameter, message: "the parameter must be one of: \(choices.keys.sorted().joined(separator: ", "))", parameter: name)
        }
        return choice
    }

    /// Throws ``SessionStorageURLError/Code/unknownParameter`` for the first (alphabetically)
    /// query parameter that was never read.
    public func finish() throws(SessionStorageURLError) {
        if let unknown = url.query.keys.sorted().first(where: { !read.contains($0) }) {
            throw SessionStorageURLError(
                .unknownParameter, message: "\(url.scheme):// has no such parameter", parameter: Self.safeName(unknown))
        }
    }

    /// A parameter name as shown in an error: a misplaced secret must not leak through it, so
    /// long or odd names are cut.
    static func safeName(_ name: String) -> String {
        let allowed = name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") }
        return allowed && name.count <= 40 ? name : "(unprintable name)"
    }
}
