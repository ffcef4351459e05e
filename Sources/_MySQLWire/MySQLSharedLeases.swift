import NIOCore
import Synchronization
import _ConnectionPoolModule

/// The pooled connections that ``MySQLClient`` shares between single statements
/// (``MySQLClient/execute(_:binds:)``), each carrying up to `depth` commands at once
/// (pipelining, ``MySQLConnection/Configuration/pipelineDepth``).
///
/// A shared connection is an ordinary lease of the pool, kept out of it while shared: the pool
/// gives the other connections to transactions and to ``MySQLClient/withConnection(_:)``, which
/// never interleave with other callers' statements. A caller takes an idle shared connection
/// first, else has a new one leased (up to `maximum`), else joins the least busy one with room;
/// when every shared connection is full it uses an exclusive connection instead. A shared lease
/// goes back to the pool when it has been unused for `maximumIdle` (``releaseIdle(now:)``, where
/// the pool's idle timeout and keep-alive then apply), when its connection failed (after its
/// last user), and at shutdown (``close()``).
final class MySQLSharedLeases: Sendable {
    struct Entry {
        var lease: ConnectionLease<MySQLConnection>
        var users: Int
        var since: NIODeadline
        /// No new user: the connection failed or the client is shutting down.
        var retired = false
    }

    struct State {
        var entries: [Entry] = []
        /// Leases being taken from the pool for sharing.
        var pending = 0
        var closed = false
        /// The most users one shared connection had at once (tests).
        var peakUsers = 0
    }

    enum Pick {
        /// Run the statement on this lease (counted as a user: call ``done(_:failed:)`` after).
        case use(ConnectionLease<MySQLConnection>)
        /// Take a lease from the pool and share it (``added(_:)``, or ``addFailed()``).
        case takeNew
        /// Every shared connection is full: use an exclusive connection.
        case full
    }

    let maximum: Int
    let depth: Int
    let maximumIdle: TimeAmount
    private let state = Mutex(State())

    init(maximum: Int, depth: Int, maximumIdle: TimeAmount = .seconds(1)) {
        self.maximum = max(1, maximum)
        self.depth = max(1, depth)
        self.maximumIdle = maximumIdle
    }

    func pick() -> Pick {
        state.withLock { state in
            if state.closed { return .full }
            var best = -1
            for index in state.entries.indices {
                let entry = state.entries[index]
                guard !entry.retired, entry.users < depth, !entry.lease.connection.isClosed else { continue }
                if best < 0 || entry.users < state.entries[best].users { best = index }
            }
            // An idle shared connection first, then a new one, then the least busy with room.
            let idle = best >= 0 && state.entries[best].users == 0
            if !idle, state.entries.count + state.pending < maximum {
                state.pending += 1
                return .takeNew
            }
            guard best >= 0 else { return .full }
            state.entries[best].users += 1
            state.peakUsers = max(state.peakUsers, state.entries[best].users)
            return .use(state.entries[best].lease)
        }
    }

    /// A lease taken after ``Pick/takeNew``, now shared with its taker as first user. `false`:
    /// the client shut down meanwhile; the taker hands it back to the pool after its statement.
    func added(_ lease: ConnectionLease<MySQLConnection>, now: NIODeadline = .now()) -> Bool {
        state.withLock { state in
            state.pending -= 1
            guard !state.closed else { return false }
            state.entries.append(Entry(lease: lease, users: 1, since: now))
            state.peakUsers = max(state.peakUsers, 1)
            return true
        }
    }

    /// No lease could be taken after ``Pick/takeNew``.
    func addFailed() {
        state.withLock { $0.pending -= 1 }
    }

    /// A user's statement is done. `failed`: its error closed the connection, which takes no new
    /// user. Returns the lease to hand back to the pool when this was the last user of a retired
    /// (or closed) connection.
    func done(_ lease: ConnectionLease<MySQLConnection>, failed: Bool) -> ConnectionLease<MySQLConnection>? {
        state.withLock { state in
            guard let index = state.entries.firstIndex(where: { $0.lease.connection.id == lease.connection.id }) else {
                return nil
            }
            state.entries[index].users -= 1
            // Idle from now (the clock is read once a connection has no user, not per statement).
            if state.entries[index].users == 0 { state.entries[index].since = .now() }
            if failed || lease.connection.isClosed { state.entries[index].retired = true }
            guard state.entries[index].retired, state.entries[index].users == 0 else { return nil }
            return state.entries.remove(at: index).lease
        }
    }

    /// Removes the leases unused since `maximumIdle` before `now`, and those of closed
    /// connections without users; the caller hands them back to the pool.
    func releaseIdle(now: NIODeadline = .now()) -> [ConnectionLease<MySQLConnection>] {
        state.withLock { state in
            var released: [ConnectionLease<MySQLConnection>] = []
            state.entries.removeAll { entry in
                guard entry.users == 0,
                    entry.retired || entry.lease.connection.isClosed || now - entry.since >= maximumIdle
                else { return false }
                released.append(entry.lease)
                return true
            }
            return released
        }
    }

    /// Shutdown: no new user; returns the leases without users (the others come back through
    /// ``done(_:failed:)`` after their last user).
    func close() -> [ConnectionLease<MySQLConnection>] {
        state.withLock { state in
            state.closed = true
            var released: [ConnectionLease<MySQLConnection>] = []
            state.entries.removeAll { entry in
                guard entry.users == 0 else { return false }
                released.append(entry.lease)
                return true
            }
            for index in state.entries.indices { state.entries[index].retired = true }
            return released
        }
    }

    /// The shared connections and their users, and the most users one had at once (tests).
    var snapshot: (entries: [(connectionID: Int, users: Int)], peakUsers: Int) {
        state.withLock { state in (state.entries.map { ($0.lease.connection.id, $0.users) }, state.peakUsers) }
    }
}
