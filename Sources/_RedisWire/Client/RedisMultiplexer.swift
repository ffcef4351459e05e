import NIOConcurrencyHelpers

/// Shares leased pool connections among concurrent requests.
///
/// The pool leases each connection to one holder (one stream). The multiplexer holds a lease
/// while requests run on it and lets up to `maximumRequests` requests share it (they pipeline:
/// Redis answers in order); a request that finds every held connection full leases another.
/// Callers arriving while a lease is pending join that lease instead of asking the pool for
/// more, so a burst of N callers makes about N / `maximumRequests` connections, not N. A
/// lease is handed back to the pool when its last request ends, so the pool's idle timeout
/// and keep-alive see the connection as idle.
///
/// (The pool's own multi-stream leasing counts a connecting connection as one future slot
/// whatever its stream count, and opens one connection per queued request during a burst.)
final class RedisMultiplexer: Sendable {
    typealias Lease = @Sendable () async throws -> (connection: RedisConnection, release: @Sendable () -> Void)

    private struct Slot {
        var id: Int
        var connection: RedisConnection?
        var release: (@Sendable () -> Void)?
        var requests: Int
        var waiters: [CheckedContinuation<RedisConnection, any Error>]
        var draining: Bool
    }

    private struct State {
        var slots: [Int: Slot] = [:]
        var nextID = 0
    }

    private enum Choice {
        case ready(slot: Int, connection: RedisConnection)
        case wait(slot: Int)
        case lease(slot: Int)
    }

    private let maximumRequests: Int
    private let state = NIOLockedValueBox(State())

    init(maximumRequests: Int) {
        self.maximumRequests = max(1, maximumRequests)
    }

    /// Runs `body` on a shared connection, leasing one with `lease` when none has room.
    func withConnection<Result: Sendable>(
        lease: Lease,
        _ body: (RedisConnection) async throws -> Result
    ) async throws -> Result {
        let (slot, connection) = try await acquire(lease: lease)
        defer { self.done(slot: slot) }
        return try await body(connection)
    }

    /// Stops giving `connection` to new requests (it failed or was demoted).
    func retire(_ connection: RedisConnection) {
        state.withLockedValue { state in
            for (id, slot) in state.slots where slot.connection === connection {
                state.slots[id]?.draining = true
            }
        }
    }

    private func acquire(lease: Lease) async throws -> (Int, RedisConnection) {
        let choice = state.withLockedValue { state -> Choice in
            // Fill the fullest connection that still has room, so load packs onto few connections.
            var best: (id: Int, requests: Int)?
            for (id, slot) in state.slots where !slot.draining && slot.requests < maximumRequests {
                if let connection = slot.connection, !connection.isActive { continue }
                if best == nil || slot.requests > best!.requests { best = (id, slot.requests) }
            }
            if let best {
                state.slots[best.id]!.requests += 1
                if let connection = state.slots[best.id]!.connection {
                    return .ready(slot: best.id, connection: connection)
                }
                return .wait(slot: best.id)
            }
            state.nextID += 1
            let id = state.nextID
            state.slots[id] = Slot(id: id, connection: nil, release: nil, requests: 1, waiters: [], draining: false)
            return .lease(slot: id)
        }

        switch choice {
        case .ready(let slot, let connection):
            return (slot, connection)

        case .wait(let slot):
            do {
                let connection = try await withCheckedThrowingContinuation { continuation in
                    let resume: Result<RedisConnection, any Error>? = state.withLockedValue { state in
                        guard var entry = state.slots[slot] else {
                            return .failure(RedisClientError(.connectionClosed, message: "the shared connection went away"))
                        }
                        if let connection = entry.connection { return .success(connection) }
                        entry.waiters.append(continuation)
                        state.slots[slot] = entry
                        return nil
                    }
                    if let resume { continuation.resume(with: resume) }
                }
                return (slot, connection)
            } catch {
                done(slot: slot)
                throw error
            }

        case .lease(let slot):
            do {
                let (connection, release) = try await lease()
                let waiters = state.withLockedValue { state -> [CheckedContinuation<RedisConnection, any Error>] in
                    state.slots[slot]!.connection = connection
                    state.slots[slot]!.release = release
                    let waiters = state.slots[slot]!.waiters
                    state.slots[slot]!.waiters = []
                    return waiters
                }
                for waiter in waiters { waiter.resume(returning: connection) }
                return (slot, connection)
            } catch {
                // Everyone who joined this lease shares its failure.
                let waiters = state.withLockedValue { state -> [CheckedContinuation<RedisConnection, any Error>] in
                    let waiters = state.slots[slot]?.waiters ?? []
                    state.slots[slot] = nil
                    return waiters
                }
                for waiter in waiters { waiter.resume(throwing: error) }
                throw error
            }
        }
    }

    private func done(slot: Int) {
        let release = state.withLockedValue { state -> (@Sendable () -> Void)? in
            guard var entry = state.slots[slot] else { return nil }
            entry.requests -= 1
            if entry.requests == 0, entry.connection != nil {
                state.slots[slot] = nil
                return entry.release
            }
            state.slots[slot] = entry
            return nil
        }
        release?()
    }
}
