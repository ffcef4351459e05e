import Foundation
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif
import PostgresSessionStorage
import SessionStorage
import SessionStorageConformance
import Synchronization
import Testing

/// A PostgreSQL server of this test alone, so that stopping it does not break the tests that
/// run at the same time against the shared server. Needs root and PostgreSQL 15's binaries
/// (PG_BIN, default /usr/lib/postgresql/15/bin), both present wherever scripts/services.sh runs.
final class PrivatePostgres: Sendable {
    let root: String
    let port: Int
    let password = "restart-pass"
    private let bin: String

    private init() {
        bin = ProcessInfo.processInfo.environment["PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
        root = NSTemporaryDirectory() + PG.unique("pgrestart")
        // Ports above the shared servers' own (PG_PORT is SERVICES_PORT_BASE + 50; the base's
        // block of 100 is this checkout's alone).
        port = (Int(ProcessInfo.processInfo.environment["PG_PORT"] ?? "") ?? 17050) + 20 + Int.random(in: 0..<25)
    }

    static func create() async throws -> PrivatePostgres {
        let server = PrivatePostgres()
        try FileManager.default.createDirectory(atPath: server.root + "/run", withIntermediateDirectories: true)
        try server.password.write(toFile: server.root + "/pw", atomically: true, encoding: .utf8)
        try await shell("chown -R postgres:postgres \(server.root) && chmod 700 \(server.root)")
        try await shell(
            "runuser -u postgres -- \(server.bin)/initdb -D \(server.root)/data -U postgres -E UTF8 --locale=C.UTF-8 "
                + "--auth-local=trust --auth-host=scram-sha-256 --pwfile=\(server.root)/pw -N >/dev/null")
        try await server.start()
        return server
    }

    func start() async throws {
        try await Self.shell(
            "runuser -u postgres -- \(bin)/pg_ctl -D \(root)/data -l \(root)/postgres.log -w -t 60 -s "
                + "-o \"-c port=\(port) -c listen_addresses=127.0.0.1 -c unix_socket_directories=\(root)/run -c fsync=off\" start")
    }

    /// SIGKILL to the postmaster and every backend (as `scripts/services.sh kill postgres`
    /// does): the server dies mid-request, without a word to its clients.
    func crash() async throws {
        try await Self.shell(
            "pid=$(head -1 \(root)/data/postmaster.pid) && kids=$(pgrep -P $pid); kill -9 $pid $kids; "
                // Wait (bounded) until every one of them is gone or a zombie nobody reaps; then
                // the lock files are stale and a restart must not trip over them.
                + "for p in $pid $kids; do for i in $(seq 200); do s=$(awk '{print $3}' /proc/$p/stat 2>/dev/null); "
                + "[ -z \"$s\" ] || [ \"$s\" = Z ] && break; sleep 0.05; done; done; "
                + "rm -f \(root)/data/postmaster.pid \(root)/run/.s.PGSQL.\(port).lock")
    }

    func destroy() async {
        try? await Self.shell("runuser -u postgres -- \(bin)/pg_ctl -D \(root)/data -m immediate -w -s stop >/dev/null 2>&1; rm -rf \(root)")
    }

    /// Runs `/bin/sh -c command` on NIO's blocking thread pool (posix_spawn + waitpid;
    /// Foundation's `Process.waitUntilExit` never returned inside the test runner here). Runs
    /// to the end even when the calling task is cancelled, so a cancelled test still stops its
    /// server.
    static func shell(_ command: String) async throws {
        let status: Int32 = try await NIOThreadPool.singleton.runIfActive(eventLoop: MultiThreadedEventLoopGroup.singleton.any()) {
            var pid: pid_t = 0
            let arguments: [UnsafeMutablePointer<CChar>?] = ["/bin/sh", "-c", command].map { (text: String) in strdup(text) } + [nil]
            defer { for argument in arguments { free(argument) } }
            let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, arguments, environ)
            guard spawned == 0 else { throw VectorError("posix_spawn failed (\(spawned))") }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 {
                guard errno == EINTR else { throw VectorError("waitpid failed (\(errno))") }
            }
            return status
        }.get()
        if status != 0 {
            throw VectorError("command failed (status \(status)): \(command)")
        }
    }
}

@Suite("PostgreSQL server restart under load")
struct PostgresRestartTests {
    struct Outcome: Sendable {
        /// The phase when the operation started, and when it ended.
        var phase: Int
        var endPhase: Int
        var code: SessionStoreError.Code?
        var latency: Duration
    }

    @Test("clear errors while the server is down, recovery after, no hung task", .timeLimit(.minutes(2)))
    func restartUnderLoad() async throws {
        _ = try PG.env("PG_HOST")  // the suite runs where the services run
        let server = try await PrivatePostgres.create()
        do {
            try await restartUnderLoad(server)
        } catch {
            await server.destroy()
            throw error
        }
        await server.destroy()
    }

    func restartUnderLoad(_ server: PrivatePostgres) async throws {

        var configuration = PostgresSessionStore.Configuration(
            host: "127.0.0.1", port: server.port, username: "postgres", password: server.password, database: "postgres")
        configuration.tableName = PG.unique("restart")
        configuration.tableNameMeta = configuration.tableName + "_meta"
        configuration.poolSize = 4
        // Connecting (SCRAM, in a debug build, while ~100 stores of the parallel suites connect)
        // can take seconds on a loaded 2-core machine.
        configuration.connectTimeout = .seconds(5)
        configuration.sendTimeout = .seconds(1)
        configuration.readTimeout = .seconds(2)
        // The wait for a connection, one more connection attempt to say why, send + read
        // timeouts, plus slack for a machine loaded by parallel suites.
        let bound = Duration.seconds(5 + 5 + 1 + 2 + 5)

        try await PG.withStore(configuration) { store in
            let phase = Phase()
            let outcomes = Outcomes()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<6 {
                    group.addTask {
                        let metadata = try SessionMetadata(audience: "app", subject: "worker\(worker)")
                        while phase.value < 3, !Task.isCancelled {
                            let current = phase.value
                            let start = ContinuousClock.now
                            var code: SessionStoreError.Code?
                            do {
                                let key = SessionStoreConformance.randomKey()
                                try await store.set(name: "session", key: key, value: "v", ttl: 60, currentTime: 1000, metadata: metadata)
                                let value = try await store.get(name: "session", key: key, currentTime: 1000)
                                if value != "v" { code = .protocolError }
                            } catch let error as SessionStoreError {
                                code = error.code
                            }
                            let outcome = Outcome(phase: current, endPhase: phase.value, code: code, latency: ContinuousClock.now - start)
                            outcomes.append(outcome)
                            if code != nil { try await Task.sleep(for: .milliseconds(20)) }
                        }
                    }
                }
                // Crash only once the store has served requests (a loaded machine may take a while).
                let warmup = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < warmup, outcomes.all.filter({ $0.phase == 0 && $0.code == nil }).count < 10 {
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await server.crash()
                phase.set(1)
                // Down for at least 3 s, and until 6 operations ran from start to end while it
                // was (each waits up to the connect timeout), 20 s at most.
                let downSince = ContinuousClock.now
                while ContinuousClock.now - downSince < .seconds(3)
                    || (ContinuousClock.now - downSince < .seconds(30)
                        && outcomes.all.filter({ $0.phase == 1 && $0.endPhase == 1 }).count < 6)
                {
                    try await Task.sleep(for: .milliseconds(100))
                }
                try await server.start()
                phase.set(2)
                let deadline = ContinuousClock.now + .seconds(20)
                while ContinuousClock.now < deadline {
                    let recovered = outcomes.all.filter { $0.phase == 2 && $0.code == nil }.count
                    if recovered >= 20 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                phase.set(3)
                try await group.waitForAll()
            }

            let all = outcomes.all
            let before = all.filter { $0.phase == 0 }
            // Only operations that started and ended while the server was down (one that straddles
            // the restart may succeed once the pool reconnects).
            let down = all.filter { $0.phase == 1 && $0.endPhase == 1 }
            let after = all.filter { $0.phase == 2 }
            let summary = [0, 1, 2, 3].map { phase in
                let codes = all.filter { $0.phase == phase }.map { $0.code?.description ?? "ok" }
                return "phase \(phase): " + Dictionary(grouping: codes, by: { $0 }).map { "\($0.key)×\($0.value.count)" }.sorted().joined(separator: " ")
            }.joined(separator: "; ")
            let succeededBefore = before.filter { $0.code == nil }.count
            let failedWhileDown = down.filter { $0.code != nil }.count
            let refusedWhileDown = down.filter { $0.code == .connectionFailed }.count
            let succeededAfter = after.filter { $0.code == nil }.count
            #expect(succeededBefore > 0, "operations succeeded before the crash (\(summary))")
            #expect(down.count > 0 && failedWhileDown == down.count, "every operation failed while the server was down (\(summary))")
            let allowed: Set<SessionStoreError.Code> = [.connectionFailed, .connectionClosed, .timeout]
            let codes = Set(all.compactMap(\.code))
            #expect(codes.isSubset(of: allowed), "unexpected error codes \(codes)")
            #expect(refusedWhileDown > 0, "a stopped server is reported as connectionFailed (\(summary))")
            #expect(succeededAfter >= 20, "the store recovered after the restart (\(summary))")
            let slowest = all.map(\.latency).max() ?? .zero
            #expect(slowest < bound, "an operation took \(slowest)")
        }
    }
}

/// 0 up, 1 down, 2 restarted, 3 stop.
final class Phase: Sendable {
    private let state = Atomic<Int>(0)
    var value: Int { state.load(ordering: .relaxed) }
    func set(_ value: Int) { state.store(value, ordering: .relaxed) }
}

final class Outcomes: Sendable {
    private let state = Mutex<[PostgresRestartTests.Outcome]>([])
    func append(_ outcome: PostgresRestartTests.Outcome) { state.withLock { $0.append(outcome) } }
    var all: [PostgresRestartTests.Outcome] { state.withLock { $0 } }
}
