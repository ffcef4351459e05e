import Foundation
import NIOCore
import NIOPosix
import RedisSessionStorage
import SessionStorage
import Testing
import _RedisWire

/// Failures map to typed errors, on time, with no secret in their description.
@Suite("Redis store errors")
struct RedisErrorTests {
    @Test func wrongPasswordIsAnAuthenticationErrorWithoutThePassword() async throws {
        let password = "not-the-password-\(UUID().uuidString.prefix(6))"
        var configuration = try Target.acl.configuration(prefix: uniquePrefix("auth"))
        configuration.password = password
        try await withStore(configuration) { store in
            let error = await expectStoreError(.authenticationFailed) {
                _ = try await store.get(name: "session", key: sessionKey(), currentTime: now)
            }
            #expect(error.map { !"\($0)".contains(password) } == true)
            #expect(error.map { !String(reflecting: $0).contains(password) } == true)
        }
        // The default user of the ACL server without any password.
        var anonymous = try Target.acl.configuration(prefix: uniquePrefix("auth"))
        anonymous.username = nil
        anonymous.password = nil
        try await withStore(anonymous) { store in
            await expectStoreError(.authenticationFailed) {
                _ = try await store.get(name: "session", key: sessionKey(), currentTime: now)
            }
        }
    }

    @Test func defaultUserWithRequirePassLogsIn() async throws {
        var configuration = try Target.acl.configuration(prefix: uniquePrefix("default"))
        configuration.username = nil
        configuration.password = try env("REDIS_ACL_DEFAULT_PASSWORD")
        try await withStore(configuration) { store in
            let value = try await store.get(name: "session", key: sessionKey(), currentTime: now)
            #expect(value == nil)
        }
    }

    @Test func unknownCAIsATLSError() async throws {
        var configuration = try Target.tls.configuration(prefix: uniquePrefix("tls"))
        configuration.sslCAFile = try env("TLS_UNKNOWN_CA_FILE")
        try await withStore(configuration) { store in
            await expectStoreError(.tls) {
                _ = try await store.get(name: "session", key: sessionKey(), currentTime: now)
            }
        }
        // Without verification the same server is accepted (ssl_verify off).
        configuration.sslVerify = false
        try await withStore(configuration) { store in
            let value = try await store.get(name: "session", key: sessionKey(), currentTime: now)
            #expect(value == nil)
        }
    }

    @Test func tlsToAPlainPortIsATLSError() async throws {
        var configuration = try Target.plain.configuration(prefix: uniquePrefix("tlsplain"))
        configuration.ssl = true
        configuration.connectTimeout = .seconds(2)
        try await withStore(configuration) { store in
            // Redis reads the ClientHello as an unfinished inline command and waits: the
            // handshake fails (TLS) or the connect timeout passes, never a hang.
            let start = ContinuousClock.now
            do {
                _ = try await store.get(name: "session", key: sessionKey(), currentTime: now)
                Issue.record("a TLS connection to a plain port succeeded")
            } catch let error as SessionStoreError {
                #expect(error.code == .tls || error.code == .timeout, "\(error)")
            }
            #expect(ContinuousClock.now - start < .seconds(4))
        }
    }

    @Test func refusedConnectionIsAConnectionError() async throws {
        var configuration = try Target.plain.configuration(prefix: uniquePrefix("refused"))
        // A socket path nobody listens on.
        configuration.socket = NSTemporaryDirectory() + "no-redis-\(UUID().uuidString.prefix(6)).sock"
        configuration.connectTimeout = .seconds(1)
        try await withStore(configuration) { store in
            let start = ContinuousClock.now
            await expectStoreError(.connectionFailed) {
                _ = try await store.get(name: "session", key: sessionKey(), currentTime: now)
            }
            #expect(ContinuousClock.now - start < .seconds(3))
        }
    }

    @Test func silentServerIsAReadTimeoutOnTime() async throws {
        // A listener that accepts and reads but never answers.
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Discard()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        // The handshake (HELLO) gets no answer: bounded by the connect timeout.
        let configuration = RedisSessionStore.Configuration(port: port, connectTimeout: .milliseconds(500), readTimeout: .milliseconds(300))
        try await withStore(configuration) { store in
            let start = ContinuousClock.now
            await expectStoreError(.timeout) {
                _ = try await store.get(name: "session", key: sessionKey(), currentTime: now)
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(2), "took \(elapsed)")
        }

        // Past the handshake: a connection on which the server goes silent after logging in.
        let connection = try await RedisConnection.connect(
            configuration: .init(address: .tcp(host: try env("REDIS_HOST"), port: try envInt("REDIS_PORT")), readTimeout: .milliseconds(300))
        )
        let start = ContinuousClock.now
        do {
            // A blocking pop on an empty list: a reply that does not come within the read timeout.
            _ = try await connection.send(RedisCommand("BLPOP", [.init("swifttest-never-\(UUID().uuidString)"), 0]))
            Issue.record("BLPOP returned")
        } catch let error as RedisClientError {
            #expect(error.code == .timeout)
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(2), "took \(elapsed)")
        // The connection is closed after a timeout (its replies would be out of step).
        try await Task.sleep(for: .milliseconds(50))
        #expect(!connection.isActive)
    }

    @Test func valueOverProtoMaxBulkLenIsValueTooLarge() async throws {
        let server = try OwnRedisServer(arguments: ["--proto-max-bulk-len", "1mb"])
        defer { server.stop() }
        var configuration = RedisSessionStore.Configuration(prefix: "big", socket: server.socket)
        configuration.maximumValueSize = nil  // let the server refuse it
        let big = String(repeating: "x", count: 2 << 20)
        try await withStore(configuration) { store in
            // The server answers "invalid bulk length" and closes; when our write of the rest
            // of the value fails first, the reply is lost and only the closed connection is seen.
            for metadata in [nil, try SessionMetadata(audience: "a", subject: "s")] {
                do {
                    try await store.set(name: "session", key: sessionKey(), value: big, ttl: 60, currentTime: now, metadata: metadata)
                    Issue.record("a value over proto-max-bulk-len was stored")
                } catch let error as SessionStoreError {
                    #expect(error.code == .valueTooLarge || error.code == .connectionClosed, "\(error)")
                }
            }
            // The store still works afterwards.
            let key = sessionKey()
            try await store.set(name: "session", key: key, value: "small", ttl: 60, currentTime: now)
            #expect(try await store.get(name: "session", key: key, currentTime: now) == "small")
        }
        // With the limit configured, the value is refused before it is sent.
        configuration.maximumValueSize = 1 << 20
        try await withStore(configuration) { store in
            await expectStoreError(.valueTooLarge) {
                try await store.set(name: "session", key: sessionKey(), value: big, ttl: 60, currentTime: now)
            }
        }
    }

    @Test func wrongTypeIsAServerErrorNamingThePrefix() async throws {
        let prefix = uniquePrefix("wrongtype")
        let raw = try await Target.plain.rawConnection()
        defer { raw.close() }
        try await raw.send(.set("\(prefix):session:app:alice", "not a zset"))
        try await withStore(try Target.plain.configuration(prefix: prefix)) { store in
            let error = await expectStoreError(.serverError) {
                _ = try await store.readMetadata(name: "session", audience: "app", subject: "alice", currentTime: now)
            }
            #expect((error?.underlying as? RedisClientError)?.serverErrorPrefix == "WRONGTYPE")
            // Inside the transaction of a set, the failed ZADD is an error too.
            await expectStoreError(.serverError) {
                try await store.set(
                    name: "session", key: sessionKey(), value: "v", ttl: 60, currentTime: now,
                    metadata: try SessionMetadata(audience: "app", subject: "alice"))
            }
        }
        try await cleanUp(raw, prefix: prefix)
    }

    @Test func backlogOverflowIsPoolExhaustedAtOnce() async throws {
        var configuration = try Target.plain.configuration(prefix: uniquePrefix("backlog"))
        configuration.poolSize = 1
        configuration.requestsPerConnection = 1
        configuration.backlog = 1
        configuration.readTimeout = .seconds(5)
        let raw = try await Target.plain.rawConnection()
        defer { raw.close() }
        let list = "swifttest-backlog-\(UUID().uuidString)"
        try await withStore(configuration) { store in
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Two blocked requests: one on the only connection, one in the backlog.
                for _ in 0..<2 {
                    group.addTask { _ = try await store.client.send(RedisCommand("BLPOP", [.init(list), 3])) }
                }
                try await Task.sleep(for: .milliseconds(300))
                let start = ContinuousClock.now
                await expectStoreError(.poolExhausted) {
                    _ = try await store.get(name: "session", key: sessionKey(), currentTime: now)
                }
                #expect(ContinuousClock.now - start < .milliseconds(200))
                try await raw.send(RedisCommand("RPUSH", [.init(list), "a", "b"]))
                try await group.waitForAll()
            }
        }
    }
}

/// Reads and discards everything: a server that never answers.
private final class Discard: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
