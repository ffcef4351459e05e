import NIOCore

/// A value bound to a prepared statement or read from a row.
public enum MySQLValue: Sendable, Hashable {
    /// SQL NULL.
    case null
    /// A signed integer (bound as BIGINT).
    case int(Int64)
    /// An unsigned integer (bound as BIGINT UNSIGNED).
    case uint(UInt64)
    /// A floating-point number (bound as DOUBLE).
    case double(Double)
    /// Text (bound as a string in the connection's character set).
    case string(String)
    /// Bytes (bound as a BLOB).
    case bytes([UInt8])
    /// A DATETIME, DATE or TIMESTAMP read with the binary protocol.
    case datetime(MySQLDateTime)

    /// The value as an integer, converting text and unsigned values.
    public var int: Int? {
        switch self {
        case .int(let value): return Int(exactly: value)
        case .uint(let value): return Int(exactly: value)
        case .double(let value): return Int(exactly: value)
        case .string(let value): return Int(value)
        case .bytes(let value): return Int(String(decoding: value, as: UTF8.self))
        default: return nil
        }
    }

    /// The value as text (numbers are formatted, bytes decoded as UTF-8).
    public var string: String? {
        switch self {
        case .null: return nil
        case .int(let value): return String(value)
        case .uint(let value): return String(value)
        case .double(let value): return String(value)
        case .string(let value): return value
        case .bytes(let value): return String(decoding: value, as: UTF8.self)
        case .datetime(let value): return value.description
        }
    }

    /// Whether this is SQL NULL.
    public var isNull: Bool { self == .null }

    /// The type byte and unsigned flag of the value in COM_STMT_EXECUTE.
    var bindType: (MySQLType, unsigned: Bool) {
        switch self {
        case .null: return (.null, false)
        case .int: return (.longlong, false)
        case .uint: return (.longlong, true)
        case .double: return (.double, false)
        case .string: return (.varString, false)
        case .bytes: return (.blob, false)
        case .datetime: return (.datetime, false)
        }
    }

    /// The number of bytes the value takes in COM_STMT_EXECUTE.
    var bindSize: Int {
        switch self {
        case .null: return 0
        case .int, .uint, .double: return 8
        case .string(let value):
            let count = value.utf8.count
            return ByteBuffer.lengthEncodedIntegerSize(UInt64(count)) + count
        case .bytes(let value): return ByteBuffer.lengthEncodedIntegerSize(UInt64(value.count)) + value.count
        case .datetime: return 12
        }
    }

    func encodeBinary(into buffer: inout ByteBuffer) {
        switch self {
        case .null: break
        case .int(let value): buffer.writeInteger(value, endianness: .little)
        case .uint(let value): buffer.writeInteger(value, endianness: .little)
        case .double(let value): buffer.writeInteger(value.bitPattern, endianness: .little)
        case .string(let value):
            // Straight from the string's UTF-8 (no intermediate array).
            buffer.writeLengthEncodedInteger(UInt64(value.utf8.count))
            buffer.writeString(value)
        case .bytes(let value): buffer.writeLengthEncodedBytes(value)
        case .datetime(let value):
            buffer.writeInteger(UInt8(11))
            buffer.writeInteger(UInt16(value.year), endianness: .little)
            buffer.writeInteger(value.month)
            buffer.writeInteger(value.day)
            buffer.writeInteger(value.hour)
            buffer.writeInteger(value.minute)
            buffer.writeInteger(value.second)
            buffer.writeInteger(value.microsecond, endianness: .little)
        }
    }
}

extension MySQLValue: CustomStringConvertible {
    /// The value's type only, never its content (values may be secrets).
    public var description: String {
        switch self {
        case .null: return "NULL"
        case .int: return "int(…)"
        case .uint: return "uint(…)"
        case .double: return "double(…)"
        case .string: return "string(…)"
        case .bytes: return "bytes(…)"
        case .datetime: return "datetime(…)"
        }
    }
}

/// A DATETIME / DATE / TIMESTAMP without a time zone, as the server sends it.
public struct MySQLDateTime: Sendable, Hashable, CustomStringConvertible {
    /// Year.
    public var year: Int
    /// Month, 1…12 (0 in zero dates).
    public var month: UInt8
    /// Day, 1…31.
    public var day: UInt8
    /// Hour.
    public var hour: UInt8
    /// Minute.
    public var minute: UInt8
    /// Second.
    public var second: UInt8
    /// Microsecond.
    public var microsecond: UInt32

    /// Creates a date-time.
    public init(year: Int, month: UInt8, day: UInt8, hour: UInt8 = 0, minute: UInt8 = 0, second: UInt8 = 0, microsecond: UInt32 = 0) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.microsecond = microsecond
    }

    /// `YYYY-MM-DD hh:mm:ss`, as the text protocol shows it.
    public var description: String {
        func pad(_ value: some BinaryInteger, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2)) \(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
    }
}

/// One row of a result set.
public struct MySQLRow: Sendable, Hashable {
    /// The columns of the result set.
    public var columns: [MySQLColumn]
    /// The values, one per column.
    public var values: [MySQLValue]

    /// Creates a row.
    public init(columns: [MySQLColumn], values: [MySQLValue]) {
        self.columns = columns
        self.values = values
    }

    /// The value of the column at `index`.
    public subscript(index: Int) -> MySQLValue { values[index] }

    /// The value of the first column named `name`, or `nil` if there is none.
    public subscript(column name: String) -> MySQLValue? {
        columns.firstIndex { $0.name == name }.map { values[$0] }
    }
}

/// What a command returned: rows (empty for statements without a result set) and the OK
/// packet's counts.
public struct MySQLQueryResult: Sendable, Hashable {
    /// The columns (empty without a result set).
    public var columns: [MySQLColumn]
    /// The rows.
    public var rows: [MySQLRow]
    /// Rows changed (statements without a result set).
    public var affectedRows: UInt64
    /// The last `AUTO_INCREMENT` id.
    public var lastInsertID: UInt64
    /// Warnings.
    public var warnings: UInt16

    /// Creates a result.
    public init(columns: [MySQLColumn] = [], rows: [MySQLRow] = [], affectedRows: UInt64 = 0, lastInsertID: UInt64 = 0, warnings: UInt16 = 0) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
        self.lastInsertID = lastInsertID
        self.warnings = warnings
    }
}
