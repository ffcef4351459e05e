import Foundation
import Logging
import NIOCore
import RedisSessionStorage
import SessionStorage
import Testing
import _RedisWire

/// Reads a variable the test servers export; a missing one fails the test with a clear message.
func env(_ name: String) throws -> String {
    try #require(ProcessInfo.processInfo.environment[name], "\(name) is not set: start servers with scripts/services.sh")
}

func envInt(_ name: String) throws -> Int {
    try #require(Int(try env(name)), "\(name) is not a number")
}

/// The ways the suite reaches the shared Redis.
enum Target: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case plain
    case acl
    case tls
    case unix

    var testDescription: String { rawValue }

    /// A store configuration for this target; `prefix` isolates the test's keys.
    func configuration(prefix: String, suffix: String? = nil) throws -> RedisSessionStore.Configuration {
        var configuration = RedisSessionStore.Configuration(prefix: prefix, suffix: suffix)
        configuration.host = try env("REDIS_HOST")
        configuration.connectTimeout = .seconds(5)
        configuration.readTimeout = .seconds(5)
        switch self {
        case .plain:
            configuration.port = try envInt("REDIS_PORT")
        case .acl:
            configuration.port = try envInt("REDIS_ACL_PORT")
            configuration.username = try env("REDIS_ACL_USER")
            configuration.password = try env("REDIS_ACL_PASSWORD")
        case .tls:
            configuration.port = try envInt("REDIS_TLS_PORT")
            configuration.ssl = true
            configuration.sslVerify = true
            configuration.sslCAFile = try env("TLS_CA_FILE")
        case .unix:
            configuration.socket = try env("REDIS_SOCKET")
        }
        return configuration
    }

    /// A raw connection to the same server, for inspecting what the store wrote.
    func rawConnection() async throws -> RedisConnection {
        let configuration = try self.configuration(prefix: "raw")
        let address: RedisAddress = configuration.socket.map { .unixSocket(path: $0) } ?? .tcp(host: configuration.host, port: configuration.port)
        return try await RedisConnection.connect(
            configuration: .init(
                address: address,
                username: configuration.username,
                password: configuration.password,
                tls: configuration.ssl ? .require(verify: true, caFile: configuration.sslCAFile) : .disable
            )
        )
    }
}

/// A fresh prefix per test, so tests sharing a server never see each other's keys.
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

var now: Int { Int(Date().timeIntervalSince1970) }

/// Runs `body` with `store` running (its pool), then stops it.
func withRunning<Store: SessionStore & Sendable, T: Sendable>(
    _ store: Store,
    run: @escaping @Sendable () async throws -> Void,
    _ body: @Sendable (Store) async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await run() }
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

@discardableResult
func withStore<T: Sendable>(
    _ configuration: RedisSessionStore.Configuration,
    _ body: @Sendable (RedisSessionStore) async throws -> T
) async throws -> T {
    let store = RedisSessionStore(configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    return try await withRunning(store, run: { try await store.run() }, body)
}

/// Deletes every key under `prefix` (tests clean up after themselves on the shared server).
func cleanUp(_ connection: RedisConnection, prefix: String) async throws {
    let keys = try await connection.send(RedisCommand("KEYS", [.init("\(prefix):*")]))
    let names = (keys.array ?? []).compactMap(\.string)
    if !names.isEmpty {
        try await connection.send(.unlink(names))
    }
}

extension RedisConnection {
    func ttl(_ key: String) async throws -> Int {
        try #require(try await send(RedisCommand("TTL", [.init(key)])).int)
    }

    func type(_ key: String) async throws -> String {
        try #require(try await send(RedisCommand("TYPE", [.init(key)])).string)
    }

    func zscores(_ key: String) async throws -> [String: Int] {
        let reply = try await send(RedisCommand("ZRANGE", [.init(key), 0, -1, "WITHSCORES"]))
        var result: [String: Int] = [:]
        for (member, score) in reply.pairs ?? [] {
            result[member.string ?? "?"] = score.double.map { Int($0) }
        }
        return result
    }
}

/// Expects `body` to throw a `SessionStoreError` with `code`; returns it.
@discardableResult
func expectStoreError(
    _ code: SessionStoreError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> SessionStoreError? {
    do {
        try await body()
        Issue.record("expected \(code), nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as SessionStoreError {
        #expect(error.code == code, "\(String(reflecting: error))", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected SessionStoreError \(code), got \(String(reflecting: error))", sourceLocation: sourceLocation)
        return nil
    }
}

/// A redis-server this test owns (never the shared one), on a unix socket in a temp dir.
final class OwnRedisServer: Sendable {
    let directory: String
    let socket: String
    let arguments: [String]

    init(arguments: [String] = []) throws {
        directory = NSTemporaryDirectory() + "swift-redis-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        socket = directory + "/redis.sock"
        self.arguments = arguments
        try start()
    }

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = [
            "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
            "--daemonize", "yes", "--pidfile", directory + "/redis.pid", "--dir", directory, "--logfile", directory + "/redis.log",
        ] + arguments
        try process.run()
        // `--daemonize yes`: the launcher exits at once; wait for the socket, not the process
        // (waitUntilExit can hang under the test runner).
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) {
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    var pid: Int32? {
        (try? String(contentsOfFile: directory + "/redis.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func kill() {
        if let pid { Foundation.kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory + "/redis.pid")
        try? FileManager.default.removeItem(atPath: socket)
    }

    func stop() {
        kill()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
