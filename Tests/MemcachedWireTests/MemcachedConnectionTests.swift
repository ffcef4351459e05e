import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import _MemcachedWire

@Suite("MemcachedConnection on a testing channel")
struct MemcachedConnectionTests {
    func makeConnection(readTimeout: Duration? = nil) async throws -> (MemcachedConnection, NIOAsyncTestingChannel) {
        let channel = NIOAsyncTestingChannel()
        try await channel.testingEventLoop.executeInContext {
            try channel.pipeline.syncOperations.addHandler(
                MemcachedChannelHandler(readTimeout: readTimeout, sendTimeout: nil, logger: Logger(label: "test")))
        }
        try await channel.connect(to: .init(unixDomainSocketPath: "/memcached")).get()
        return (MemcachedConnection(id: 1, address: .unixSocket(path: "/memcached"), channel: channel), channel)
    }

    func nextWrite(_ channel: NIOAsyncTestingChannel) async throws -> String {
        String(buffer: try await channel.waitForOutboundWrite(as: ByteBuffer.self))
    }

    @Test func pipelinedRequestsGetTheirOwnReplies() async throws {
        let (connection, channel) = try await makeConnection()
        let first = Task { try await connection.get("a") }
        #expect(try await nextWrite(channel) == "mg a v f c t O1\r\n")
        let second = Task { try await connection.add("b", value: ByteBuffer(string: "xy"), expiration: .seconds(60)) }
        #expect(try await nextWrite(channel) == "ms b 2 T60 F0 ME O2\r\nxy\r\n")
        let third = Task { try await connection.delete("c") }
        #expect(try await nextWrite(channel) == "md c O3\r\n")
        // all three replies in one read, split mid-value
        try await channel.writeInbound(ByteBuffer(string: "VA 4 O1 f0 c7 t-1\r\nv\r\n"))
        try await channel.writeInbound(ByteBuffer(string: "w\r\nNS O2\r\nNF O3\r\n"))
        let item = try #require(try await first.value)
        #expect(item.string == "v\r\nw")
        #expect(item.cas == 7)
        #expect(item.ttl == nil)
        #expect(try await second.value == false)
        #expect(try await third.value == false)
        try await channel.close()
    }

    @Test func anInvalidKeyWritesNothing() async throws {
        let (connection, channel) = try await makeConnection()
        await #expect(throws: MemcachedClientError.self) { _ = try await connection.get("bad key") }
        #expect(try await channel.readOutbound(as: ByteBuffer.self) == nil)
        try await channel.close()
    }

    @Test func closingFailsRequestsInFlight() async throws {
        let (connection, channel) = try await makeConnection()
        let pending = Task { try await connection.get("a") }
        _ = try await nextWrite(channel)
        try await channel.close()
        let error = await #expect(throws: MemcachedClientError.self) { _ = try await pending.value }
        #expect(error?.code == .connectionClosed)
        let after = await #expect(throws: MemcachedClientError.self) { _ = try await connection.get("a") }
        #expect(after?.code == .connectionClosed)
    }

    @Test func theReadTimeoutClosesTheConnection() async throws {
        let (connection, channel) = try await makeConnection(readTimeout: .seconds(2))
        let pending = Task { try await connection.get("a") }
        _ = try await nextWrite(channel)
        await channel.testingEventLoop.advanceTime(by: .seconds(1))
        try await channel.writeInbound(ByteBuffer(string: ""))
        await channel.testingEventLoop.advanceTime(by: .seconds(2))
        let error = await #expect(throws: MemcachedClientError.self) { _ = try await pending.value }
        #expect(error?.code == .timeout)
        #expect(!channel.isActive)
    }

    @Test func anOutOfStepReplyClosesTheConnection() async throws {
        let (connection, channel) = try await makeConnection()
        let pending = Task { try await connection.get("a") }
        _ = try await nextWrite(channel)
        try await channel.writeInbound(ByteBuffer(string: "EN O99\r\n"))
        let error = await #expect(throws: MemcachedClientError.self) { _ = try await pending.value }
        #expect(error?.code == .protocolError)
        #expect(!channel.isActive)
    }

    @Test func repliesSplitAnywhereAreDecodedInOrder() async throws {
        let (connection, channel) = try await makeConnection()
        let first = Task { try await connection.get("a") }
        _ = try await nextWrite(channel)
        let second = Task { try await connection.delete("b") }
        _ = try await nextWrite(channel)
        let third = Task { try await connection.get("c") }
        _ = try await nextWrite(channel)
        // every reply split byte by byte, as TLS records or small reads may cut them
        for byte in "VA 3 O1 c5 t-1 f0\r\nabc\r\nHD O2\r\nVA 0 O3 c6 t9 f0\r\n\r\n".utf8 {
            try await channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        #expect(try await first.value?.string == "abc")
        #expect(try await second.value == true)
        let empty = try #require(try await third.value)
        #expect(empty.value.readableBytes == 0)
        #expect(empty.ttl == 9)
        try await channel.close()
    }

    @Test func closingFailsEveryRequestInFlight() async throws {
        let (connection, channel) = try await makeConnection()
        var pending: [Task<MemcachedItem?, any Error>] = []
        for index in 0..<5 {
            pending.append(Task { try await connection.get("k\(index)") })
            _ = try await nextWrite(channel)
        }
        // the first is answered, then the server goes away with four in flight
        try await channel.writeInbound(ByteBuffer(string: "EN O1\r\n"))
        #expect(try await pending[0].value == nil)
        try await channel.close()
        for task in pending.dropFirst() {
            let error = await #expect(throws: MemcachedClientError.self) { _ = try await task.value }
            #expect(error?.code == .connectionClosed)
        }
    }

    @Test func aMalformedReplyFailsEveryRequestInFlight() async throws {
        let (connection, channel) = try await makeConnection()
        let first = Task { try await connection.get("a") }
        _ = try await nextWrite(channel)
        let second = Task { try await connection.get("b") }
        _ = try await nextWrite(channel)
        try await channel.writeInbound(ByteBuffer(string: "VA x O1\r\n"))
        for task in [first, second] {
            let error = await #expect(throws: MemcachedClientError.self) { _ = try await task.value }
            #expect(error?.code == .protocolError)
        }
        #expect(!channel.isActive)
    }
}
