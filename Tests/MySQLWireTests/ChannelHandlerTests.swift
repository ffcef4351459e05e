import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import _MySQLWire

@Suite("MySQL channel handler")
struct ChannelHandlerTests {
    /// An embedded channel with the handler, logged in to the captured MariaDB greeting.
    func loggedIn(read: Duration = .seconds(2), pipelineDepth: Int = 1) throws -> (EmbeddedChannel, MySQLChannelHandler) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        // Connected, so `isActive` tells whether the handler closed it.
        _ = channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 3306))
        #expect(channel.isActive)
        let machine = MySQLConnectionStateMachine(
            authentication: .init(
                configuration: .init(username: "u", password: "p", database: nil, collation: 11, maxPacketSize: 1 << 20, tls: .disable)),
            maxPacketSize: 1 << 20, pipelineDepth: pipelineDepth)
        let connected = loop.makePromise(of: MySQLHandshakeV10.self)
        let handler = MySQLChannelHandler(
            machine: machine, maximumPacketSize: 1 << 20, connectPromise: connected, tls: nil,
            timeouts: .init(connect: .seconds(10), send: .seconds(10), read: read), logger: Logger(label: "test"))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.writeInbound(Self.framed(ByteBuffer(hex: AuthenticationTests.capturedMariaDBGreeting), sequenceID: 0))
        _ = try channel.readOutbound(as: ByteBuffer.self)  // the handshake response
        try channel.writeInbound(Self.framed(ServerPacket.ok(2).payload, sequenceID: 2))
        #expect((try Self.outcome(connected.futureResult)?.get())?.isMariaDB == true)
        return (channel, handler)
    }

    /// The result of a future of the embedded loop, or `nil` while it is pending (never blocks).
    static func outcome<T>(_ future: EventLoopFuture<T>) -> Result<T, any Error>? {
        let box = Box<Result<T, any Error>?>(nil)
        future.whenComplete { box.value = $0 }
        return box.value
    }

    /// `@unchecked Sendable`: the embedded loop runs every callback at once, on the test's thread.
    final class Box<Value>: @unchecked Sendable {
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    static func framed(_ payload: ByteBuffer, sequenceID: UInt8) -> ByteBuffer {
        var buffer = ByteBuffer()
        MySQLPacketEncoder().frame(payload, sequenceID: sequenceID, into: &buffer)
        return buffer
    }

    @Test func packetsSplitAcrossReadsAndTheReadDeadlineFollowsEachCommand() throws {
        let (channel, handler) = try loggedIn(read: .seconds(2))
        let loop = channel.embeddedEventLoop
        // A ping answered in two reads (the OK packet split in the middle).
        let ping = loop.makePromise(of: MySQLQueryResult.self)
        handler.enqueue(MySQLTask(command: .ping, promise: ping))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == Self.framed(ByteBuffer(bytes: [0x0E]), sequenceID: 0))
        var ok = Self.framed(ServerPacket.ok(1).payload, sequenceID: 1)
        let head = ok.readSlice(length: 5)!
        try channel.writeInbound(head)
        loop.advanceTime(by: .milliseconds(1500))
        try channel.writeInbound(ok)
        #expect((try? Self.outcome(ping.futureResult)?.get()) != nil)

        // A second command 1.5 s later: the first command's deadline (2 s after its write) has
        // passed by then, but this command has its own.
        let second = loop.makePromise(of: MySQLQueryResult.self)
        handler.enqueue(MySQLTask(command: .ping, promise: second))
        _ = try channel.readOutbound(as: ByteBuffer.self)
        loop.advanceTime(by: .milliseconds(1500))
        #expect(channel.isActive)
        try channel.writeInbound(Self.framed(ServerPacket.ok(1).payload, sequenceID: 1))
        #expect((try? Self.outcome(second.futureResult)?.get()) != nil)

        // Idle: no timeout without a command on the wire.
        loop.advanceTime(by: .seconds(10))
        #expect(channel.isActive)

        // A command without a reply fails with the read timeout once its deadline passes.
        let third = loop.makePromise(of: MySQLQueryResult.self)
        handler.enqueue(MySQLTask(command: .ping, promise: third))
        loop.advanceTime(by: .milliseconds(1900))
        #expect(channel.isActive)
        #expect(Self.outcome(third.futureResult) == nil)
        loop.advanceTime(by: .milliseconds(200))
        guard case .failure(let error as MySQLError)? = Self.outcome(third.futureResult) else {
            Issue.record("expected the read timeout")
            return
        }
        #expect(error.code == .timeout)
        #expect(!channel.isActive)
    }

    @Test func aPartialPacketAtTheEndOfTheStreamFailsTheCommand() throws {
        let (channel, handler) = try loggedIn()
        let loop = channel.embeddedEventLoop
        let ping = loop.makePromise(of: MySQLQueryResult.self)
        handler.enqueue(MySQLTask(command: .ping, promise: ping))
        var ok = Self.framed(ServerPacket.ok(1).payload, sequenceID: 1)
        try channel.writeInbound(ok.readSlice(length: 6)!)
        channel.pipeline.fireChannelInactive()
        guard case .failure(is MySQLError)? = Self.outcome(ping.futureResult) else {
            Issue.record("expected the command to fail")
            return
        }
        // Commands after the close fail at once.
        let late = loop.makePromise(of: MySQLQueryResult.self)
        handler.enqueue(MySQLTask(command: .ping, promise: late))
        guard case .failure(is MySQLError)? = Self.outcome(late.futureResult) else {
            Issue.record("expected the late command to fail")
            return
        }
    }

    /// Every outbound buffer flushed so far (the embedded channel holds unflushed writes back).
    static func flushed(_ channel: EmbeddedChannel) throws -> Int {
        var count = 0
        while try channel.readOutbound(as: ByteBuffer.self) != nil { count += 1 }
        return count
    }

    @Test func pipelinedCommandsAreHeldWhileTheServerHasEnoughToRunAndFlushedTogether() throws {
        let (channel, handler) = try loggedIn(pipelineDepth: 16)
        let loop = channel.embeddedEventLoop
        let update = "UPDATE t SET a = ?"
        // Prepare and run the statement once (statement 7: one parameter, no columns).
        let first = loop.makePromise(of: MySQLQueryResult.self)
        handler.enqueue(MySQLTask(command: .execute(update, binds: [.int(0)]), promise: first))
        #expect(try Self.flushed(channel) == 1)  // the prepare
        var prepareReply = Self.framed(ServerPacket.packet(1, [0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).payload, sequenceID: 1)
        prepareReply.writeImmutableBuffer(Self.framed(ServerPacket.column(2, name: "?", type: .longlong).payload, sequenceID: 2))
        prepareReply.writeImmutableBuffer(Self.framed(ServerPacket.eof(3).payload, sequenceID: 3))
        try channel.writeInbound(prepareReply)
        #expect(try Self.flushed(channel) == 1)  // the execute
        try channel.writeInbound(Self.framed(ServerPacket.ok(1).payload, sequenceID: 1))
        #expect((try? Self.outcome(first.futureResult)?.get()) != nil)

        // Ten executes at once: the first four go out one by one; the other six are held while
        // four flushed ones wait for their replies.
        let promises = (1...10).map { _ in loop.makePromise(of: MySQLQueryResult.self) }
        for (index, promise) in promises.enumerated() {
            handler.enqueue(MySQLTask(command: .execute(update, binds: [.int(Int64(index))]), promise: promise))
        }
        #expect(try Self.flushed(channel) == MySQLChannelHandler.flushWatermark)
        // One reply leaves three flushed ones without a reply: the six held go out together.
        try channel.writeInbound(Self.framed(ServerPacket.ok(1).payload, sequenceID: 1))
        #expect(try Self.flushed(channel) == 10 - MySQLChannelHandler.flushWatermark)
        // Every command completes, in order, and nothing is left to flush.
        var replies = ByteBuffer()
        for _ in 1..<10 { replies.writeImmutableBuffer(Self.framed(ServerPacket.ok(1).payload, sequenceID: 1)) }
        try channel.writeInbound(replies)
        for promise in promises { #expect((try? Self.outcome(promise.futureResult)?.get()) != nil) }
        #expect(try Self.flushed(channel) == 0)
        #expect(channel.isActive)

        // A command alone on an idle connection goes out at once.
        let alone = loop.makePromise(of: MySQLQueryResult.self)
        handler.enqueue(MySQLTask(command: .execute(update, binds: [.int(99)]), promise: alone))
        #expect(try Self.flushed(channel) == 1)
        try channel.writeInbound(Self.framed(ServerPacket.ok(1).payload, sequenceID: 1))
        #expect((try? Self.outcome(alone.futureResult)?.get()) != nil)

        // A close while commands are held: every caller is told the connection closed, and the
        // held commands never reach the server (no COM_QUIT is written, whose flush would send them).
        let late = (1...10).map { _ in loop.makePromise(of: MySQLQueryResult.self) }
        for promise in late { handler.enqueue(MySQLTask(command: .execute(update, binds: [.int(1)]), promise: promise)) }
        #expect(try Self.flushed(channel) == MySQLChannelHandler.flushWatermark)
        _ = channel.close()
        for promise in late {
            guard case .failure(let error as MySQLError)? = Self.outcome(promise.futureResult) else {
                Issue.record("expected every command to fail")
                continue
            }
            #expect(error.code == .connectionClosed)
        }
        #expect(try Self.flushed(channel) == 0)
    }
}
