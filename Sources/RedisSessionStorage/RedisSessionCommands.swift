import SessionStorage
import _RedisWire

/// The commands of each operation: the layout of `shared/spec/STORAGE.md`, in one place.
package enum RedisSessionCommands {
    /// `SET k v EX ttl`, and with rotation or metadata the rest of the transaction:
    ///
    ///     UNLINK old | EXPIRE old staleTTL LT            (rotation)
    ///     per (audience, subject) index:
    ///       ZREMRANGEBYSCORE idx 0 (currentTime-1)       drop expired members
    ///       ZADD idx expiry key
    ///       ZREM idx old                                 (rotation)
    ///       EXPIRE idx ttl NX ; EXPIRE idx ttl GT        the index outlives its latest member
    ///
    /// A single command means "no transaction needed".
    package static func set(_ request: SessionSetRequest, naming: SessionKeyNaming, policy: RememberRotationPolicy) -> [RedisCommand] {
        let recordKey = naming.recordKey(name: request.name, key: request.key)
        var commands: [RedisCommand] = [.set(recordKey, request.value, expireSeconds: request.ttl)]
        switch request.oldKeyPolicy(policy) {
        case .none:
            break
        case .remove:
            commands.append(.unlink([naming.recordKey(name: request.name, key: request.oldKey!)]))
        case .keepStale:
            // LT: only shortens; a key without expiry counts as infinite; a missing key is left alone.
            let old = naming.recordKey(name: request.name, key: request.oldKey!)
            commands.append(RedisCommand("EXPIRE", [.init(old), .init(request.staleTTL), "LT"], keyIndices: [0]))
        }
        for pair in request.metadata?.pairs ?? [] {
            let index = naming.indexKey(name: request.name, audience: pair.audience, subject: pair.subject)
            commands.append(trim(index, currentTime: request.currentTime))
            commands.append(RedisCommand("ZADD", [.init(index), .init(request.expiry), .init(request.key)], keyIndices: [0]))
            if let oldKey = request.oldKey {
                commands.append(RedisCommand("ZREM", [.init(index), .init(oldKey)], keyIndices: [0]))
            }
            commands.append(RedisCommand("EXPIRE", [.init(index), .init(request.ttl), "NX"], keyIndices: [0]))
            commands.append(RedisCommand("EXPIRE", [.init(index), .init(request.ttl), "GT"], keyIndices: [0]))
        }
        return commands
    }

    /// `UNLINK k`, and per index the trim and `ZREM idx key`.
    package static func delete(
        name: String,
        key: String,
        currentTime: Int,
        metadata: SessionMetadata?,
        naming: SessionKeyNaming
    ) -> [RedisCommand] {
        var commands: [RedisCommand] = [.unlink([naming.recordKey(name: name, key: key)])]
        for pair in metadata?.pairs ?? [] {
            let index = naming.indexKey(name: name, audience: pair.audience, subject: pair.subject)
            commands.append(trim(index, currentTime: currentTime))
            commands.append(RedisCommand("ZREM", [.init(index), .init(key)], keyIndices: [0]))
        }
        return commands
    }

    /// `ZRANGE idx (currentTime +inf BYSCORE WITHSCORES`: members expiring after now.
    package static func readIndex(_ index: String, currentTime: Int) -> RedisCommand {
        RedisCommand("ZRANGE", [.init(index), .init("(\(currentTime)"), "+inf", "BYSCORE", "WITHSCORES"], keyIndices: [0])
    }

    /// `ZREMRANGEBYSCORE idx 0 currentTime-1`, as lua-resty-session sends it.
    package static func trim(_ index: String, currentTime: Int) -> RedisCommand {
        RedisCommand("ZREMRANGEBYSCORE", [.init(index), 0, .init(currentTime - 1)], keyIndices: [0])
    }
}
