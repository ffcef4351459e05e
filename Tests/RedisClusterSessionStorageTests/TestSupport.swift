import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RedisClusterSessionStorage
import SessionStorage
import Testing
import _RedisWire

/// Reads a variable the test servers export; a missing one fails the test with a clear message.
func env(_ name: String) throws -> String {
    try #require(ProcessInfo.processInfo.environment[name], "\(name) is not set: start servers with scripts/services.sh")
}

/// The nodes of `REDIS_CLUSTER_NODES`.
func clusterNodes() throws -> [RedisClusterSessionStore.Configuration.Node] {
    try env("REDIS_CLUSTER_NODES").split(separator: ",").map { entry in
        let parts = entry.split(separator: ":")
        return .init(ip: String(parts[0]), port: try #require(Int(parts[1]), "a port of REDIS_CLUSTER_NODES is not a number"))
    }
}

/// A store configuration for the test cluster, patient enough for failovers and reshardings.
func clusterConfiguration(prefix: String?, suffix: String? = nil) throws -> RedisClusterSessionStore.Configuration {
    var configuration = RedisClusterSessionStore.Configuration(prefix: prefix, suffix: suffix)
    configuration.name = "test-cluster"
    configuration.nodes = try clusterNodes()
    configuration.password = try env("REDIS_CLUSTER_PASSWORD")
    configuration.connectTimeout = .seconds(1)
    configuration.readTimeout = .seconds(5)
    configuration.maxRedirections = 16
    configuration.maxConnectionAttempts = 20
    configuration.maxConnectionTimeout = .seconds(8)
    return configuration
}

/// Runs `body` with a store whose `run()` runs meanwhile.
func withClusterStore<T: Sendable>(
    _ configuration: RedisClusterSessionStore.Configuration,
    _ body: (RedisClusterSessionStore) async throws -> T
) async throws -> T {
    let store = RedisClusterSessionStore(configuration: configuration)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await store.run() }
        do {
            let result = try await body(store)
            group.cancelAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// A fresh prefix per test, so tests sharing the cluster never see each other's keys.
func uniquePrefix(_ label: String = "t") -> String {
    "swifttest-\(label)-\(UUID().uuidString.prefix(8))"
}

/// A 43-character session id, like the session core makes.
func sessionKey() -> String {
    var bytes = [UInt8](repeating: 0, count: 32)
    for index in bytes.indices { bytes[index] = .random(in: 0...255) }
    return Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// A direct connection to one node.
func connect(_ address: RedisAddress) async throws -> RedisConnection {
    try await RedisConnection.connect(
        configuration: .init(
            address: address,
            password: try env("REDIS_CLUSTER_PASSWORD"),
            connectTimeout: .seconds(2),
            readTimeout: .seconds(10)
        )
    )
}

/// Runs `scripts/services.sh` with the given arguments (kill / restart of a node).
///
/// Spawned with an empty signal mask and default signal actions: Foundation's `Process` passed
/// on the test runner's blocked signals, so a node the script restarted ignored the SIGTERM of
/// `services.sh stop` (which waited 20 s and then killed it).
func services(_ arguments: [String]) async throws {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/services.sh")
    let pid = try spawnWithDefaultSignals(["/bin/bash", script.path] + arguments)
    // Poll with waitpid instead of blocking a thread of the cooperative pool.
    let deadline = ContinuousClock.now + .seconds(120)
    var status: Int32 = 0
    var exited = false
    while !exited, ContinuousClock.now < deadline {
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid {
            exited = true
            try #require((status >> 8) & 0xFF == 0 && status & 0x7F == 0, "services.sh \(arguments.joined(separator: " ")) failed")
        } else if result == -1 && errno == ECHILD {
            exited = true
        } else {
            try await Task.sleep(for: .milliseconds(50))
        }
    }
    try #require(exited, "services.sh \(arguments.joined(separator: " ")) did not finish")
}

/// Starts `arguments[0]` with `arguments`, standard output and error to /dev/null, no signal
/// blocked and the usual termination signals at their default action (whatever the calling
/// thread blocks or ignores): the servers it starts must stop on SIGTERM.
func spawnWithDefaultSignals(_ arguments: [String]) throws -> pid_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigmask(&attributes, &mask)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
    try #require(spawned == 0, "could not start \(arguments[0]) (error \(spawned))")
    return pid
}

extension RESPValue {
    /// A field of `INFO` text, e.g. `master_repl_offset`.
    func infoField(_ name: String) -> String? {
        guard let text = string else { return nil }
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix(name + ":") {
            return String(line.dropFirst(name.count + 1))
        }
        return nil
    }
}
