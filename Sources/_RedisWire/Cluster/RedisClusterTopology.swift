/// One shard of a cluster: the slot ranges it serves, its master and its replicas.
public struct RedisClusterShard: Sendable, Hashable {
    /// The slot ranges served.
    public var slots: [ClosedRange<Int>]
    /// The master, where every command of these slots is sent.
    public var master: RedisAddress
    /// The replicas (not used for routing; kept for refreshes).
    public var replicas: [RedisAddress]

    /// Creates a shard.
    public init(slots: [ClosedRange<Int>], master: RedisAddress, replicas: [RedisAddress] = []) {
        self.slots = slots
        self.master = master
        self.replicas = replicas
    }
}

/// Which master serves each of the 16384 slots.
public struct RedisClusterTopology: Sendable, Hashable {
    /// The masters and the replicas, in the order the server listed them.
    public private(set) var nodes: [RedisAddress]
    /// Per slot, an index into ``nodes``; -1 when no node serves it.
    private var owners: [Int16]

    /// A map from shards.
    public init(shards: [RedisClusterShard]) {
        nodes = []
        owners = Array(repeating: -1, count: RedisHashSlot.count)
        for shard in shards {
            let index = Int16(nodeIndex(shard.master))
            for range in shard.slots {
                for slot in range.clamped(to: 0...(RedisHashSlot.count - 1)) { owners[slot] = index }
            }
            for replica in shard.replicas { _ = nodeIndex(replica) }
        }
    }

    private mutating func nodeIndex(_ address: RedisAddress) -> Int {
        if let index = nodes.firstIndex(of: address) { return index }
        nodes.append(address)
        return nodes.count - 1
    }

    /// The master serving `slot`, if any.
    public func master(for slot: RedisHashSlot) -> RedisAddress? {
        let index = owners[slot.rawValue]
        return index < 0 ? nil : nodes[Int(index)]
    }

    /// The nodes that serve at least one slot.
    public var masters: [RedisAddress] {
        Set(owners.filter { $0 >= 0 }).sorted().map { nodes[Int($0)] }
    }

    /// The number of slots some node serves (16384 when the map is complete).
    public var coveredSlots: Int { owners.lazy.filter { $0 >= 0 }.count }

    /// Records that `address` now serves `slot` (a `MOVED` reply).
    public mutating func assign(_ slot: RedisHashSlot, to address: RedisAddress) {
        owners[slot.rawValue] = Int16(nodeIndex(address))
    }
}

extension RedisClusterTopology {
    /// Reads a `CLUSTER SHARDS` reply (RESP2 or RESP3).
    ///
    /// A shard's master is its node of role `master`, preferring one whose health is `online`
    /// (after a failover the failed master may still be listed). A node's host is its
    /// `endpoint`, else its `ip`; an empty or `?` endpoint means "the node connected to".
    public static func fromShards(_ reply: RESPValue, connectedHost: String) throws -> RedisClusterTopology {
        guard let shardValues = reply.array else { throw malformed("CLUSTER SHARDS") }
        var shards: [RedisClusterShard] = []
        for shardValue in shardValues {
            guard let fields = dictionary(shardValue), let slotValues = fields["slots"]?.array,
                let nodeValues = fields["nodes"]?.array
            else { throw malformed("CLUSTER SHARDS") }
            let bounds = slotValues.compactMap(\.int)
            guard bounds.count == slotValues.count, bounds.count % 2 == 0 else { throw malformed("CLUSTER SHARDS") }
            let ranges = stride(from: 0, to: bounds.count, by: 2).compactMap { index -> ClosedRange<Int>? in
                bounds[index] <= bounds[index + 1] ? bounds[index]...bounds[index + 1] : nil
            }
            var master: (address: RedisAddress, online: Bool)?
            var replicas: [RedisAddress] = []
            for nodeValue in nodeValues {
                guard let node = dictionary(nodeValue), let port = node["port"]?.int ?? node["tls-port"]?.int else {
                    throw malformed("CLUSTER SHARDS")
                }
                var host = node["endpoint"]?.string ?? ""
                if host.isEmpty || host == "?" { host = node["ip"]?.string ?? "" }
                if host.isEmpty || host == "?" { host = connectedHost }
                let address = RedisAddress.tcp(host: host, port: port)
                let online = node["health"]?.string.map { $0 == "online" } ?? true
                if node["role"]?.string == "master" {
                    if master == nil || (online && !master!.online) {
                        if let previous = master { replicas.append(previous.address) }
                        master = (address, online)
                    } else {
                        replicas.append(address)
                    }
                } else {
                    replicas.append(address)
                }
            }
            guard let master, !ranges.isEmpty else { continue }
            shards.append(RedisClusterShard(slots: ranges, master: master.address, replicas: replicas))
        }
        return RedisClusterTopology(shards: shards)
    }

    /// Reads a `CLUSTER SLOTS` reply: `[start, end, [host, port, id…], replicas…]` per range.
    public static func fromSlots(_ reply: RESPValue, connectedHost: String) throws -> RedisClusterTopology {
        guard let ranges = reply.array else { throw malformed("CLUSTER SLOTS") }
        var shards: [RedisClusterShard] = []
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int,
                start <= end
            else { throw malformed("CLUSTER SLOTS") }
            var addresses: [RedisAddress] = []
            for nodeValue in parts[2...] {
                guard let node = nodeValue.array, node.count >= 2, let port = node[1].int else {
                    throw malformed("CLUSTER SLOTS")
                }
                var host = node[0].string ?? ""
                if host.isEmpty || host == "?" { host = connectedHost }
                addresses.append(.tcp(host: host, port: port))
            }
            shards.append(RedisClusterShard(slots: [start...end], master: addresses[0], replicas: Array(addresses.dropFirst())))
        }
        return RedisClusterTopology(shards: shards)
    }

    private static func dictionary(_ value: RESPValue) -> [String: RESPValue]? {
        guard let pairs = value.pairs else { return nil }
        var result: [String: RESPValue] = [:]
        for (key, value) in pairs {
            guard let key = key.string else { return nil }
            result[key] = value
        }
        return result
    }

    private static func malformed(_ command: String) -> RedisClientError {
        RedisClientError(.protocolError, message: "\(command) sent a reply of an unexpected shape")
    }
}

extension RedisAddress: Comparable {
    /// Orders addresses by their text, for stable listings.
    public static func < (lhs: RedisAddress, rhs: RedisAddress) -> Bool { lhs.description < rhs.description }
}
