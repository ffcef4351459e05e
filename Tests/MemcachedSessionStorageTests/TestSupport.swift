import _MemcachedWire
import Foundation
import Logging
import MemcachedSessionStorage
import NIOCore
import SessionStorage
import Testing

/// How a test reaches the shared memcached started by `scripts/services.sh`.
enum Transport: String, CaseIterable, Sendable, CustomStringConvertible {
    case tcp
    case unixSocket
    case tls

    var description: String { rawValue }
}

enum Env {
    static func value(_ name: String) throws -> String {
        try #require(
            ProcessInfo.processInfo.environment[name],
            "\(name) is not set: start servers with scripts/services.sh (or export the variables of CONVENTIONS.md)")
    }

    static func configuration(_ transport: Transport, prefix: String? = nil, suffix: String? = nil) throws -> MemcachedSessionStore.Configuration {
        var configuration = MemcachedSessionStore.Configuration(prefix: prefix, suffix: suffix)
        configuration.connectTimeout = .seconds(5)
        switch transport {
        case .tcp:
            configuration.host = try value("MEMCACHED_HOST")
            configuration.port = try #require(Int(try value("MEMCACHED_PORT")))
        case .unixSocket:
            configuration.socket = try value("MEMCACHED_SOCKET")
        case .tls:
            configuration.host = try value("MEMCACHED_HOST")
            configuration.port = try #require(Int(try value("MEMCACHED_TLS_PORT")))
            configuration.ssl = true
            configuration.sslVerify = true
            configuration.caFile = try value("TLS_CA_FILE")
        }
        return configuration
    }
}

/// Runs `body` with a store whose client runs for the duration.
@discardableResult
func withStore<T: Sendable>(
    _ configuration: MemcachedSessionStore.Configuration,
    _ body: @Sendable (MemcachedSessionStore) async throws -> T
) async throws -> T {
    var logger = Logger(label: "memcached-tests")
    logger.logLevel = .critical
    let store = try MemcachedSessionStore(configuration: configuration, logger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await store.run()
            return nil
        }
        do {
            let result = try await body(store)
            group.cancelAll()
            while try await group.next() != nil {}
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// Runs `body` with a client whose pools run for the duration.
@discardableResult
func withClient<T: Sendable>(
    _ configuration: MemcachedClient.Configuration,
    _ body: @Sendable (MemcachedClient) async throws -> T
) async throws -> T {
    var logger = Logger(label: "memcached-tests")
    logger.logLevel = .critical
    let client = try MemcachedClient(configuration: configuration, logger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await client.run()
            return nil
        }
        do {
            let result = try await body(client)
            group.cancelAll()
            while try await group.next() != nil {}
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// A memcached process of the test's own (for tests that kill servers, count commands or need
/// several servers), on a port in 22100-22999.
final class OwnMemcached: @unchecked Sendable {
    // @unchecked: `process` is only replaced by start()/kill(), which tests call sequentially.
    let port: Int
    private var process: Process?

    init() throws {
        port = Int.random(in: 22100...22999)
        try start()
    }

    var address: MemcachedServerAddress { .tcp(host: "127.0.0.1", port: port) }

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/memcached")
        process.arguments = ["-u", "root", "-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", "64", "-I", "4m"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        // wait until it accepts connections
        for _ in 0..<100 {
            if Self.canConnect(port: port) { return }
            usleep(20_000)
        }
        throw ConformanceLikeError("memcached on port \(port) did not start")
    }

    func kill() {
        guard let process else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    deinit { kill() }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

struct ConformanceLikeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Fails when `body` does not finish within `seconds` (so a hung task fails the test instead
/// of hanging the run).
func withDeadline<T: Sendable>(seconds: Int, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        guard let first = try await group.next(), let result = first else {
            group.cancelAll()
            throw ConformanceLikeError("did not finish within \(seconds) s")
        }
        group.cancelAll()
        return result
    }
}
