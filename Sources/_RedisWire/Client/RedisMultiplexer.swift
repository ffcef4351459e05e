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
        /// When its last request ended (valid while it has none).
        var idleSince = NIODeadline.uptimeNanoseconds(0)
    }

    private struct State {
        /// Few (at most the pool's size): an array scanned in place is cheaper than a
        /// dictionary, whose iteration copies every slot (and retains its references).
        var slots: [Slot] = []
        var nextID = 0

        func index(of id: Int) -> Int? {
            slots.firstIndex { $0.id == id }
        }
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
            var index = 0
            while index < state.slots.count {
                guard state.slots[index].connection === connection else {
                    index += 1
                    continue
                }
                if state.slots[index].requests == 0 {
                    // Idle, held for reuse: nobody else will end a request on it.
                    if let release = state.slots.remove(at: index).release { releases.append(release) }
                } else {
                    state.slots[index].draining = true
                    index += 1
                }
            }
            return releases
        }
        for release in releases { release() }
    }

    private func acquire(lease: Lease) async throws -> (Int, RedisConnection) {
        let choice = state.withLockedValue { state -> Choice in
            // Fill the fullest connection that still has room, so load packs onto few connections.
            var best: (index: Int, requests: Int)?
            for index in state.slots.indices {
                let requests = state.slots[index].requests
                guard !state.slots[index].draining, requests < maximumRequests else { continue }
                if let best, requests <= best.requests { continue }
                if let connection = state.slots[index].connection, !connection.isActive { continue }
                best = (index, requests)
            }
            if let best {
                state.slots[best.index].requests += 1
                let id = state.slots[best.index].id
                if let connection = state.slots[best.index].connection {
                    return .ready(slot: id, connection: connection)
                }
                return .wait(slot: id)
            }
            state.nextID += 1
            let id = state.nextID
            state.slots.append(Slot(id: id, connection: nil, release: nil, requests: 1, waiters: [], draining: false))
            return .lease(slot: id)
        }

        switch choice {
        case .ready(let slot, let connection):
            return (slot, connection)

        case .wait(let slot):
            do {
                let connection = try await withCheckedThrowingContinuation { continuation in
                    let resume: Result<RedisConnection, any Error>? = state.withLockedValue { state in
                        guard let index = state.index(of: slot) else {
                            return .failure(RedisClientError(.connectionClosed, message: "the shared connection went away"))
                        }
                        if let connection = state.slots[index].connection { return .success(connection) }
                        state.slots[index].waiters.append(continuation)
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
                    let index = state.index(of: slot)!
                    state.slots[index].connection = connection
                    state.slots[index].release = release
                    let waiters = state.slots[index].waiters
                    state.slots[index].waiters = []
                    return waiters
                }
                for waiter in waiters { waiter.resume(returning: connection) }
                return (slot, connection)
            } catch {
                // Everyone who joined this lease shares its failure.
                let waiters = state.withLockedValue { state -> [CheckedContinuation<RedisConnection, any Error>] in
                    guard let index = state.index(of: slot) else { return [] }
                    return state.slots.remove(at: index).waiters
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
            guard let index = state.index(of: slot) else { return .nothing }
            state.slots[index].requests -= 1
            guard state.slots[index].requests == 0, let connection = state.slots[index].connection else {
                return .nothing
            }
            if state.slots[index].draining || !connection.isActive {
                return state.slots.remove(at: index).release.map { .release($0) } ?? .nothing
            }
            state.slots[index].idleSince = connection.channel.eventLoop.now
            if state.slots[index].releaseScheduled { return .nothing }
            state.slots[index].releaseScheduled = true
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

    private enum IdleCheck {
        case nothing
        case release(@Sendable () -> Void)
        case checkAgain(RedisConnection, at: NIODeadline)
    }

    /// Hands the slot's lease back to the pool if it has carried no request for
    /// ``idleRelease``. A slot idle at this instant but for less long is checked again when
    /// that delay is over: under load a connection is often idle for a moment between two
    /// rounds of requests, and handing its lease back then would make the next round lease
    /// again (and the pool may open a second connection while the first is being handed
    /// back, which then splits the batches between two).
    private func releaseIfIdle(slot: Int) {
        let check = state.withLockedValue { state -> IdleCheck in
            guard let index = state.index(of: slot) else { return .nothing }
            state.slots[index].releaseScheduled = false
            // Busy: the next time it falls idle schedules another check.
            guard state.slots[index].requests == 0, let connection = state.slots[index].connection else {
                return .nothing
            }
            let due = state.slots[index].idleSince + idleRelease
            if connection.channel.eventLoop.now >= due {
                return state.slots.remove(at: index).release.map { .release($0) } ?? .nothing
            }
            state.slots[index].releaseScheduled = true
            return .checkAgain(connection, at: due)
        }
        switch check {
        case .nothing:
            break
        case .release(let release):
            release()
        case .checkAgain(let connection, let due):
            connection.channel.eventLoop.scheduleTask(deadline: due) {
                self.releaseIfIdle(slot: slot)
            }
        }
    }
}
