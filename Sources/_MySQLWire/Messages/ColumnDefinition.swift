import NIOCore

/// One column of a result set, `Protocol::ColumnDefinition41`.
public struct MySQLColumn: Sendable, Hashable {
    /// The column's name (or alias).
    public var name: String
    /// The table (or alias), if any.
    public var table: String
    /// The collation id of the column (63 = binary).
    public var collation: UInt16
    /// The column type.
    public var type: MySQLType
    /// Column flags (bit 5, 0x20: unsigned).
    public var flags: UInt16
    /// Decimals.
    public var decimals: UInt8

    /// Creates a column.
    public init(name: String, table: String = "", collation: UInt16 = 63, type: MySQLType, flags: UInt16 = 0, decimals: UInt8 = 0) {
        self.name = name
        self.table = table
        self.collation = collation
        self.type = type
        self.flags = flags
        self.decimals = decimals
    }

    /// Whether the column is unsigned.
    public var isUnsigned: Bool { flags & 0x20 != 0 }

    static func decode(_ payload: ByteBuffer) throws -> MySQLColumn {
        var buffer = payload
        guard buffer.readLengthEncodedSlice() != nil,  // catalog
            buffer.readLengthEncodedSlice() != nil,  // schema
            let table = buffer.readLengthEncodedString(),
            buffer.readLengthEncodedSlice() != nil,  // org_table
            let name = buffer.readLengthEncodedString(),
            buffer.readLengthEncodedSlice() != nil,  // org_name
            buffer.readLengthEncodedInteger() != nil,  // length of fixed fields
            let collation = buffer.readInteger(endianness: .little, as: UInt16.self),
            buffer.readInteger(endianness: .little, as: UInt32.self) != nil,  // column length
            let type = buffer.readInteger(as: UInt8.self),
            let flags = buffer.readInteger(endianness: .little, as: UInt16.self),
            let decimals = buffer.readInteger(as: UInt8.self)
        else { throw MySQLError(.protocolError, message: "malformed column definition") }
        return MySQLColumn(
            name: name, table: table, collation: collation, type: MySQLType(rawValue: type), flags: flags, decimals: decimals)
    }
}

/// A column or parameter type of the protocol.
public struct MySQLType: RawRepresentable, Sendable, Hashable {
    /// The raw type byte.
    public var rawValue: UInt8
    /// Creates a type.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// DECIMAL.
    public static let decimal = Self(rawValue: 0x00)
    /// TINYINT.
    public static let tiny = Self(rawValue: 0x01)
    /// SMALLINT.
    public static let short = Self(rawValue: 0x02)
    /// INT.
    public static let long = Self(rawValue: 0x03)
    /// FLOAT.
    public static let float = Self(rawValue: 0x04)
    /// DOUBLE.
    public static let double = Self(rawValue: 0x05)
    /// NULL.
    public static let null = Self(rawValue: 0x06)
    /// TIMESTAMP.
    public static let timestamp = Self(rawValue: 0x07)
    /// BIGINT.
    public static let longlong = Self(rawValue: 0x08)
    /// MEDIUMINT.
    public static let int24 = Self(rawValue: 0x09)
    /// DATE.
    public static let date = Self(rawValue: 0x0A)
    /// TIME.
    public static let time = Self(rawValue: 0x0B)
    /// DATETIME.
    public static let datetime = Self(rawValue: 0x0C)
    /// YEAR.
    public static let year = Self(rawValue: 0x0D)
    /// VARCHAR.
    public static let varchar = Self(rawValue: 0x0F)
    /// BIT.
    public static let bit = Self(rawValue: 0x10)
    /// JSON (MySQL).
    public static let json = Self(rawValue: 0xF5)
    /// NEWDECIMAL.
    public static let newDecimal = Self(rawValue: 0xF6)
    /// ENUM.
    public static let `enum` = Self(rawValue: 0xF7)
    /// SET.
    public static let set = Self(rawValue: 0xF8)
    /// TINYBLOB / TINYTEXT.
    public static let tinyBlob = Self(rawValue: 0xF9)
    /// MEDIUMBLOB / MEDIUMTEXT.
    public static let mediumBlob = Self(rawValue: 0xFA)
    /// LONGBLOB / LONGTEXT.
    public static let longBlob = Self(rawValue: 0xFB)
    /// BLOB / TEXT.
    public static let blob = Self(rawValue: 0xFC)
    /// VARBINARY / VARCHAR.
    public static let varString = Self(rawValue: 0xFD)
    /// BINARY / CHAR.
    public static let string = Self(rawValue: 0xFE)
    /// GEOMETRY.
    public static let geometry = Self(rawValue: 0xFF)
}
