import NIOCore

/// Decodes text (`COM_QUERY`) and binary (`COM_STMT_EXECUTE`) result rows.
enum MySQLRowDecoder {
    static let binaryCollation: UInt16 = 63

    /// A text row: one length-encoded string (or 0xFB for NULL) per column.
    static func decodeText(_ payload: ByteBuffer, columns: [MySQLColumn]) throws -> MySQLRow {
        var buffer = payload
        var values: [MySQLValue] = []
        values.reserveCapacity(columns.count)
        for column in columns {
            if buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == 0xFB {
                buffer.moveReaderIndex(forwardBy: 1)
                values.append(.null)
                continue
            }
            guard let slice = buffer.readLengthEncodedSlice() else {
                throw MySQLError(.protocolError, message: "malformed text row")
            }
            values.append(textValue(slice, column: column))
        }
        return MySQLRow(columns: columns, values: values)
    }

    static func textValue(_ slice: ByteBuffer, column: MySQLColumn) -> MySQLValue {
        if column.collation == binaryCollation && isStringType(column.type) {
            return .bytes(Array(slice.readableBytesView))
        }
        return .string(String(buffer: slice))
    }

    static func isStringType(_ type: MySQLType) -> Bool {
        switch type {
        case .varchar, .varString, .string, .tinyBlob, .mediumBlob, .longBlob, .blob, .json, .enum, .set, .bit, .geometry:
            return true
        default:
            return false
        }
    }

    /// A binary row: header 0x00, NULL bitmap (offset 2), then the non-NULL values.
    static func decodeBinary(_ payload: ByteBuffer, columns: [MySQLColumn]) throws -> MySQLRow {
        var buffer = payload
        let malformed = MySQLError(.protocolError, message: "malformed binary row")
        let bitmapStart = buffer.readerIndex + 1
        let bitmapLength = (columns.count + 7 + 2) / 8
        guard buffer.readInteger(as: UInt8.self) == 0x00, buffer.readableBytes >= bitmapLength else { throw malformed }
        buffer.moveReaderIndex(forwardBy: bitmapLength)
        var values: [MySQLValue] = []
        values.reserveCapacity(columns.count)
        for (index, column) in columns.enumerated() {
            let bit = index + 2
            if payload.getInteger(at: bitmapStart + bit / 8, as: UInt8.self)! & (1 << UInt8(bit % 8)) != 0 {
                values.append(.null)
                continue
            }
            guard let value = readBinaryValue(&buffer, column: column) else { throw malformed }
            values.append(value)
        }
        return MySQLRow(columns: columns, values: values)
    }

    static func readBinaryValue(_ buffer: inout ByteBuffer, column: MySQLColumn) -> MySQLValue? {
        let unsigned = column.isUnsigned
        switch column.type {
        case .null:
            return .null
        case .tiny:
            guard let v = buffer.readInteger(as: UInt8.self) else { return nil }
            return unsigned ? .uint(UInt64(v)) : .int(Int64(Int8(bitPattern: v)))
        case .short, .year:
            guard let v = buffer.readInteger(endianness: .little, as: UInt16.self) else { return nil }
            return unsigned ? .uint(UInt64(v)) : .int(Int64(Int16(bitPattern: v)))
        case .long, .int24:
            guard let v = buffer.readInteger(endianness: .little, as: UInt32.self) else { return nil }
            return unsigned ? .uint(UInt64(v)) : .int(Int64(Int32(bitPattern: v)))
        case .longlong:
            guard let v = buffer.readInteger(endianness: .little, as: UInt64.self) else { return nil }
            return unsigned ? .uint(v) : .int(Int64(bitPattern: v))
        case .float:
            guard let v = buffer.readInteger(endianness: .little, as: UInt32.self) else { return nil }
            return .double(Double(Float(bitPattern: v)))
        case .double:
            guard let v = buffer.readInteger(endianness: .little, as: UInt64.self) else { return nil }
            return .double(Double(bitPattern: v))
        case .date, .datetime, .timestamp:
            guard let length = buffer.readInteger(as: UInt8.self) else { return nil }
            var value = MySQLDateTime(year: 0, month: 0, day: 0)
            if length >= 4 {
                guard let year = buffer.readInteger(endianness: .little, as: UInt16.self),
                    let month = buffer.readInteger(as: UInt8.self), let day = buffer.readInteger(as: UInt8.self)
                else { return nil }
                value.year = Int(year)
                value.month = month
                value.day = day
            }
            if length >= 7 {
                guard let h = buffer.readInteger(as: UInt8.self), let m = buffer.readInteger(as: UInt8.self),
                    let s = buffer.readInteger(as: UInt8.self)
                else { return nil }
                value.hour = h
                value.minute = m
                value.second = s
            }
            if length >= 11 {
                guard let micro = buffer.readInteger(endianness: .little, as: UInt32.self) else { return nil }
                value.microsecond = micro
            }
            return .datetime(value)
        case .time:
            // Returned as text `[-]hhh:mm:ss` — rarely needed here.
            guard let length = buffer.readInteger(as: UInt8.self), let bytes = buffer.readBytes(length: Int(length)) else {
                return nil
            }
            guard length >= 8 else { return .string("00:00:00") }
            let negative = bytes[0] == 1
            let days = Int(bytes[1]) | Int(bytes[2]) << 8 | Int(bytes[3]) << 16 | Int(bytes[4]) << 24
            let hours = days * 24 + Int(bytes[5])
            func pad(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
            return .string("\(negative ? "-" : "")\(pad(hours)):\(pad(Int(bytes[6]))):\(pad(Int(bytes[7])))")
        default:
            guard let slice = buffer.readLengthEncodedSlice() else { return nil }
            return textValue(slice, column: column)
        }
    }
}
