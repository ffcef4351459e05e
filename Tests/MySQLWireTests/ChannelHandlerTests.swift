import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import _MySQLWire

@Suite("MySQL channel handler")
struct ChannelHandlerTests {
    /// An embedded channel with the handler, logged in to the captured MariaDB greeting.
    func loggedIn(read: Duration = .seconds(2)) throws -> (EmbeddedChannel, MySQLChannelHandler) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        // Connected, so `isActive` tells whether the handler closed it.
        _ = channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 3306))
        #expect(channel.isActive)
        let machine = MySQLConnectionStateMachine(
            authentication: .init(
                configuration: .init(username: "u", password: "p", database: nil, collation: 11, maxPacketSize: 1 << 20, tls: .disable)),
            maxPacketSize: 1 << 20)
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
}
