/// A Redis Cluster hash slot: `CRC16(key) mod 16384`, where only the hash tag counts when the
/// key has one.
///
/// A hash tag is the part between the first `{` and the first `}` after it, when that part is
/// not empty: `{user1000}.following` and `{user1000}.followers` hash only `user1000` and so
/// share a slot.
public struct RedisHashSlot: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The number of slots of a cluster.
    public static let count = 16384

    /// The slot number, `0..<16384`.
    public let rawValue: Int

    /// A slot by number; `nil` outside `0..<16384`.
    public init?(rawValue: Int) {
        guard (0..<Self.count).contains(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    /// The slot of a key given as bytes.
    public init(key: some Collection<UInt8>) {
        if let slot = key.withContiguousStorageIfAvailable({ Self.slot(of: $0) }) {
            rawValue = slot
        } else {
            rawValue = Array(key).withUnsafeBufferPointer { Self.slot(of: $0) }
        }
    }

    /// The slot of a key (its UTF-8 bytes).
    public init(key: String) {
        var key = key
        rawValue = key.withUTF8 { Self.slot(of: $0) }
    }

    /// The slot of the key `bytes`, read in place.
    static func slot(of bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var hashed = bytes[...]
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
            let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")),
            close > open + 1
        {
            hashed = bytes[(open + 1)..<close]
        }
        return Int(Self.crc16(UnsafeBufferPointer(rebasing: hashed)) & 0x3FFF)
    }

    /// ``crc16(_:)`` over contiguous bytes, eight bytes per step ("slicing by 8": the eight
    /// table lookups of a step are independent, where the byte-wise loop waits for each one),
    /// reading the tables through a pointer (no bounds or lazy-initialization check per byte).
    static func crc16(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt16 {
        slicingTables.withUnsafeBufferPointer { tables in
            let t = tables.baseAddress!
            var crc: UInt16 = 0
            var index = 0
            let count = bytes.count
            while index + 8 <= count {
                let b = bytes.baseAddress! + index
                // Byte i of the step passes through 7 - i more table steps: table 7 - i. The
                // running CRC's high and low bytes enter with the first two bytes.
                crc = t[7 << 8 | Int(UInt8(truncatingIfNeeded: crc >> 8) ^ b[0])]
                    ^ t[6 << 8 | Int(UInt8(truncatingIfNeeded: crc) ^ b[1])]
                    ^ t[5 << 8 | Int(b[2])] ^ t[4 << 8 | Int(b[3])]
                    ^ t[3 << 8 | Int(b[4])] ^ t[2 << 8 | Int(b[5])]
                    ^ t[1 << 8 | Int(b[6])] ^ t[Int(b[7])]
                index += 8
            }
            while index < count {
                crc = (crc << 8) ^ t[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ bytes[index])]
                index += 1
            }
            return crc
        }
    }

    /// CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster uses.
    public static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int((crc >> 8) ^ UInt16(byte))]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }

    /// Eight tables of 256 entries back to back: table k maps a byte to its CRC followed by k
    /// zero bytes (table 0 is ``table``).
    private static let slicingTables: [UInt16] = {
        var tables = table
        for k in 1..<8 {
            for index in 0..<256 {
                let previous = tables[(k - 1) << 8 | index]
                tables.append((previous << 8) ^ table[Int(previous >> 8)])
            }
        }
        return tables
    }()

    public static func < (lhs: RedisHashSlot, rhs: RedisHashSlot) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "slot \(rawValue)" }
}

extension RedisArgument {
    /// The hash slot of the argument as a key, computed on its bytes in place.
    var hashSlot: RedisHashSlot {
        switch storage {
        case .string(let string):
            return RedisHashSlot(key: string)
        case .bytes(let bytes):
            return RedisHashSlot(key: bytes.readableBytesView)
        case .integer(let integer):
            return RedisHashSlot(key: String(integer))
        }
    }
}

extension RedisCommand {
    /// The one slot of the command's keys; `nil` for a command without keys.
    ///
    /// - Throws: ``RedisClusterError`` `crossSlot` when its keys hash to different slots.
    public func hashSlot() throws -> RedisHashSlot? {
        var slot: RedisHashSlot?
        for index in keyIndices {
            let keySlot = arguments[index].hashSlot
            if let slot, slot != keySlot {
                throw RedisClusterError(.crossSlot, message: "the keys of \(name) hash to different slots")
            }
            slot = keySlot
        }
        return slot
    }

    /// `ASKING`: the next command may use a slot that is being imported into this node.
    public static func asking() -> RedisCommand { RedisCommand("ASKING") }

    /// `CLUSTER SHARDS` (Redis ≥ 7).
    public static func clusterShards() -> RedisCommand { RedisCommand("CLUSTER", ["SHARDS"]) }

    /// `CLUSTER SLOTS` (before Redis 7).
    public static func clusterSlots() -> RedisCommand { RedisCommand("CLUSTER", ["SLOTS"]) }
}
