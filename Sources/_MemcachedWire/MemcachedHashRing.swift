import Crypto

/// A ketama-style consistent hash ring: each server gets `pointsPerServer` points
/// (four 32-bit points per MD5 digest of `"<name>-<i>"`), and a key belongs to the server of
/// the first point at or after the key's hash (the first four bytes of its MD5,
/// little-endian), wrapping around. Adding a server moves about 1/N of the keys.
public struct MemcachedHashRing: Sendable, Hashable {
    private struct Point: Sendable, Hashable, Comparable {
        var hash: UInt32
        var server: Int
        static func < (lhs: Point, rhs: Point) -> Bool {
            lhs.hash != rhs.hash ? lhs.hash < rhs.hash : lhs.server < rhs.server
        }
    }

    private let points: [Point]
    /// The number of servers.
    public let serverCount: Int

    /// Builds the ring of `servers` (their names, e.g. `host:port`), in order.
    public init(servers: [String], pointsPerServer: Int = 160) {
        precondition(!servers.isEmpty, "a hash ring needs at least one server")
        serverCount = servers.count
        var points: [Point] = []
        let digests = max(1, pointsPerServer / 4)
        points.reserveCapacity(servers.count * digests * 4)
        for (index, name) in servers.enumerated() {
            for replica in 0..<digests {
                let digest = Array(Insecure.MD5.hash(data: Array("\(name)-\(replica)".utf8)))
                for part in 0..<4 {
                    points.append(Point(hash: Self.word(digest, at: part * 4), server: index))
                }
            }
        }
        self.points = points.sorted()
    }

    /// The index of the server that holds `key`.
    public func server(for key: String) -> Int {
        guard serverCount > 1 else { return 0 }
        let hash = Self.hash(key)
        var low = 0
        var high = points.count
        while low < high {
            let middle = (low + high) / 2
            if points[middle].hash < hash { low = middle + 1 } else { high = middle }
        }
        return points[low == points.count ? 0 : low].server
    }

    /// The ring position of `key`.
    public static func hash(_ key: String) -> UInt32 {
        word(Array(Insecure.MD5.hash(data: Array(key.utf8))), at: 0)
    }

    private static func word(_ digest: [UInt8], at offset: Int) -> UInt32 {
        UInt32(digest[offset]) | UInt32(digest[offset + 1]) << 8 | UInt32(digest[offset + 2]) << 16 | UInt32(digest[offset + 3]) << 24
    }
}
