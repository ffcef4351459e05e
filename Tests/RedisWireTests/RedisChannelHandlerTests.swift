import NIOCore
import NIOEmbedded
import Testing
@testable import _RedisWire

/// The channel handler on an `NIOAsyncTestingChannel`: bytes out, bytes in, no network.
@Suite("Redis channel handler")
struct RedisChannelHandlerTests {
    func makeChannel(password: String? = nil) async throws -> (NIOAsyncTestingChannel, EventLoopFuture<Int>) {
        let channel = NIOAsyncTestingChannel()
        let handshake = channel.eventLoop.makePromise(of: Int.self)
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(
                RedisChannelHandler(
                    handshake: .init(username: nil, password: password, database: 0, clientName: nil, tls: false),
                    sendTimeout: .seconds(5), readTimeout: .seconds(5), connectDeadline: .now() + .seconds(5),
                    decoderLimits: .init(), handshakePromise: handshake, logger: .init(label: "test")
                )
            )
        }.get()
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 6379)).get()
        return (channel, handshake.futureResult)
    }

    func readOutbound(_ channel: NIOAsyncTestingChannel) async throws -> String {
        var result = ""
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
            result += String(buffer: buffer)
        }
        return result
    }

    @Test func handshakeThenPipelinedRequests() async throws {
        let (channel, handshake) = try await makeChannel(password: "pw")
        #expect(try await readOutbound(channel) == "*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$2\r\npw\r\n")
        try await channel.writeInbound(ByteBuffer(string: "%1\r\n$5\r\nproto\r\n:3\r\n"))
        #expect(try await handshake.get() == 3)

        let p1 = channel.eventLoop.makePromise(of: [RESPValue].self)
        let p2 = channel.eventLoop.makePromise(of: [RESPValue].self)
        try await channel.writeOutbound(RedisRequest(commands: [.get("a")], promise: p1))
        try await channel.writeOutbound(RedisRequest(commands: [.get("b")], promise: p2))
        // Both are written before any reply: pipelining.
        #expect(try await readOutbound(channel) == "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n")
        // Replies split anywhere still match in order.
        try await channel.writeInbound(ByteBuffer(string: "$2\r\nv"))
        try await channel.writeInbound(ByteBuffer(string: "1\r\n$-1\r\n"))
        #expect(try await p1.futureResult.get() == [.bulkString(ByteBuffer(string: "v1"))])
        #expect(try await p2.futureResult.get() == [.bulkString(nil)])
        _ = try? await channel.finish()
    }

    @Test func malformedBytesFailRequestsAndClose() async throws {
        let (channel, handshake) = try await makeChannel()
        _ = try await readOutbound(channel)
        try await channel.writeInbound(ByteBuffer(string: "+OK\r\n"))
        _ = try await handshake.get()
        let p = channel.eventLoop.makePromise(of: [RESPValue].self)
        try await channel.writeOutbound(RedisRequest(commands: [.ping()], promise: p))
        _ = try? await channel.writeInbound(ByteBuffer(string: "?garbage\r\n"))
        do {
            _ = try await p.futureResult.get()
            Issue.record("a malformed reply was accepted")
        } catch let error as RedisClientError {
            #expect(error.code == .protocolError)
        }
        #expect(!channel.isActive)
    }

    @Test func closeFailsRequestsInFlight() async throws {
        let (channel, handshake) = try await makeChannel()
        _ = try await readOutbound(channel)
        try await channel.writeInbound(ByteBuffer(string: "+OK\r\n"))
        _ = try await handshake.get()
        let p = channel.eventLoop.makePromise(of: [RESPValue].self)
        try await channel.writeOutbound(RedisRequest(commands: [.ping()], promise: p))
        try await channel.close()
        do {
            _ = try await p.futureResult.get()
            Issue.record("no error")
        } catch let error as RedisClientError {
            #expect(error.code == .connectionClosed)
        }
    }
}
