/// A JSON value stored in a session, the Swift face of what lua-resty-session keeps in its
/// data table and encodes with lua-cjson.
///
/// Numbers are doubles, as in Lua 5.1 / LuaJIT; integral values up to 2^53 are written
/// without a fraction, so `42` round-trips as `42`.
public enum SessionValue: Sendable, Hashable {
    /// JSON `null`.
    case null
    /// JSON `true` / `false`.
    case bool(Bool)
    /// A JSON number.
    case number(Double)
    /// A JSON string.
    case string(String)
    /// A JSON array.
    case array([SessionValue])
    /// A JSON object.
    case object([String: SessionValue])

    /// The string, when this is a string.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The number, when this is a number.
    public var doubleValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    /// The number as an integer, when this is an integral number in `Int`'s range.
    public var intValue: Int? {
        if case .number(let value) = self, value.rounded() == value, abs(value) < 9.2e18 { return Int(value) }
        return nil
    }

    /// The flag, when this is a boolean.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The elements, when this is an array.
    public var arrayValue: [SessionValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The members, when this is an object.
    public var objectValue: [String: SessionValue]? {
        if case .object(let value) = self { return value }
        return nil
    }
}

extension SessionValue: ExpressibleByNilLiteral {
    /// `nil` is JSON `null`.
    public init(nilLiteral: ()) { self = .null }
}

extension SessionValue: ExpressibleByBooleanLiteral {
    /// A boolean literal.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension SessionValue: ExpressibleByIntegerLiteral {
    /// An integer literal, stored as a number.
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
}

extension SessionValue: ExpressibleByFloatLiteral {
    /// A floating-point literal.
    public init(floatLiteral value: Double) { self = .number(value) }
}

extension SessionValue: ExpressibleByStringLiteral {
    /// A string literal.
    public init(stringLiteral value: String) { self = .string(value) }
}

extension SessionValue: ExpressibleByArrayLiteral {
    /// An array literal.
    public init(arrayLiteral elements: SessionValue...) { self = .array(elements) }
}

extension SessionValue: ExpressibleByDictionaryLiteral {
    /// A dictionary literal; a repeated key keeps its last value.
    public init(dictionaryLiteral elements: (String, SessionValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
}
