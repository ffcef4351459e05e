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
func services(_ arguments: [String]) async throws {
    let process = Process()
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/services.sh")
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [script.path] + arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Poll with waitpid instead of waitUntilExit, which blocks a thread of the cooperative pool
    // and (like isRunning) missed the exit of a script that started a daemon.
    let deadline = ContinuousClock.now + .seconds(120)
    var status: Int32 = 0
    var exited = false
    while !exited, ContinuousClock.now < deadline {
        let result = waitpid(process.processIdentifier, &status, WNOHANG)
        if result == process.processIdentifier {
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
