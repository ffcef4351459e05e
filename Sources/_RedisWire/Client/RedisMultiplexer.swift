import NIOConcurrencyHelpers
import NIOCore

/// Shares leased pool connections among concurrent requests.
///
/// The pool leases each connection to one holder (one stream). The multiplexer holds a lease
/// while requests run on it and lets up to `maximumRequests` requests share it (they pipeline:
/// Redis answers in order); a request that finds every held connection full leases another.
/// Callers arriving while a lease is pending join that lease instead of asking the pool for
/// more, so a burst of N callers makes about N / `maximumRequests` connections, not N. A
/// lease is handed back to the pool once it has carried no request for ``idleRelease``, so
/// the pool's idle timeout and keep-alive see the connection as idle; not at once, since
/// under load a connection's requests often all end in one batch of replies just before the
/// callers send their next ones, and a release and a new lease cost far more than a request.
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
        /// A check that hands the lease back if the slot is still idle is scheduled.
        var releaseScheduled = false
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
    /// How long a lease with no request is kept before it goes back to the pool.
    let idleRelease: TimeAmount

    init(maximumRequests: Int, idleRelease: TimeAmount = .milliseconds(50)) {
        self.maximumRequests = max(1, maximumRequests)
        self.idleRelease = idleRelease
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
        let releases = state.withLockedValue { state -> [@Sendable () -> Void] in
            var releases: [@Sendable () -> Void] = []
            for (id, slot) in state.slots where slot.connection === connection {
                if slot.requests == 0 {
                    // Idle, held for reuse: nobody else will end a request on it.
                    state.slots[id] = nil
                    if let release = slot.release { releases.append(release) }
                } else {
                    state.slots[id]?.draining = true
                }
            }
            return releases
        }
        for release in releases { release() }
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

    private enum Done {
        case nothing
        case release(@Sendable () -> Void)
        case scheduleRelease(RedisConnection)
    }

    private func done(slot: Int) {
        let action = state.withLockedValue { state -> Done in
            guard var entry = state.slots[slot] else { return .nothing }
            entry.requests -= 1
            guard entry.requests == 0, let connection = entry.connection else {
                state.slots[slot] = entry
                return .nothing
            }
            if entry.draining || !connection.isActive {
                state.slots[slot] = nil
                return entry.release.map { .release($0) } ?? .nothing
            }
            if entry.releaseScheduled {
                state.slots[slot] = entry
                return .nothing
            }
            entry.releaseScheduled = true
            state.slots[slot] = entry
            return .scheduleRelease(connection)
        }
        switch action {
        case .nothing:
            break
        case .release(let release):
            release()
        case .scheduleRelease(let connection):
            connection.channel.eventLoop.scheduleTask(in: idleRelease) {
                self.releaseIfIdle(slot: slot)
            }
        }
    }

    /// Hands the slot's lease back to the pool if no request used it since the check was
    /// scheduled (or its connection closed meanwhile).
    private func releaseIfIdle(slot: Int) {
        let release = state.withLockedValue { state -> (@Sendable () -> Void)? in
            guard var entry = state.slots[slot] else { return nil }
            entry.releaseScheduled = false
            if entry.requests == 0 {
                state.slots[slot] = nil
                return entry.release
            }
            // Busy again: the next time it falls idle schedules another check.
            state.slots[slot] = entry
            return nil
        }
        release?()
    }
}
