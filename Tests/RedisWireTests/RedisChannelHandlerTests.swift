import Dispatch
import NIOCore
import Synchronization
import NIOEmbedded
import Testing
@testable import _RedisWire

/// The channel handler and the connection's batching on an `NIOAsyncTestingChannel`: bytes
/// out, bytes in, virtual time, no network.
@Suite("Redis channel handler")
struct RedisChannelHandlerTests {
    struct Harness {
        let channel: NIOAsyncTestingChannel
        let connection: RedisConnection
        let handshake: EventLoopFuture<Int>
        var loop: NIOAsyncTestingEventLoop { channel.testingEventLoop }
    }

    /// A channel with the handler, connected; the handshake is not answered yet.
    func makeHarness(password: String? = nil, readTimeout: TimeAmount = .seconds(5)) async throws -> Harness {
        let channel = NIOAsyncTestingChannel()
        let handshake = channel.eventLoop.makePromise(of: Int.self)
        let box = NIOLoopBoundBox.makeEmptyBox(valueType: RedisChannelHandler.self, eventLoop: channel.eventLoop)
        let outbox = RedisOutbox()
        try await channel.eventLoop.submit {
            let handler = RedisChannelHandler(
                handshake: .init(username: nil, password: password, database: 0, clientName: nil, tls: false),
                sendTimeout: .seconds(5), readTimeout: readTimeout, connectDeadline: .now() + .seconds(60),
                decoderLimits: .init(), handshakePromise: handshake, outbox: outbox, logger: .init(label: "test")
            )
            box.value = handler
            try channel.pipeline.syncOperations.addHandler(handler)
        }.get()
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 6379)).get()
        let connection = RedisConnection(
            id: 1, protocolVersion: 3, address: .tcp(host: "127.0.0.1", port: 6379), channel: channel,
            handler: box, outbox: outbox, logger: .init(label: "test")
        )
        return Harness(channel: channel, connection: connection, handshake: handshake.futureResult)
    }

    /// A harness whose handshake (RESP3, no password) is done.
    func makeReadyHarness(readTimeout: TimeAmount = .seconds(5)) async throws -> Harness {
        let harness = try await makeHarness(readTimeout: readTimeout)
        #expect(try await readOutbound(harness.channel) == ["*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"])
        try await harness.channel.writeInbound(ByteBuffer(string: "%1\r\n$5\r\nproto\r\n:3\r\n"))
        #expect(try await harness.handshake.get() == 3)
        return harness
    }

    /// Every buffer written so far, one string per write.
    func readOutbound(_ channel: NIOAsyncTestingChannel) async throws -> [String] {
        var writes: [String] = []
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
            writes.append(String(buffer: buffer))
        }
        return writes
    }

    /// Waits (briefly polling) until `condition` holds.
    func eventually(_ condition: () async throws -> Bool) async throws {
        for _ in 0..<2_000 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(1))
        }
        Issue.record("the condition never held")
        throw CancellationError()
    }

    /// Whether something was written since the last look.
    func wroteSomething(_ channel: NIOAsyncTestingChannel) async throws -> Bool {
        try await channel.readOutbound(as: ByteBuffer.self) != nil
    }

    /// Holds the event loop until the returned closure is called, so that requests handed
    /// over meanwhile all land in one event-loop turn.
    func holdLoop(_ loop: NIOAsyncTestingEventLoop) async -> (release: @Sendable () -> Void, done: Task<Void, any Error>) {
        let started = DispatchSemaphore(value: 0)
        let gate = DispatchSemaphore(value: 0)
        let done = Task {
            try await loop.executeInContext {
                started.signal()
                gate.wait()
            }
        }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                started.wait()
                continuation.resume()
            }
        }
        return ({ gate.signal() }, done)
    }

    @Test func handshakeSendsHelloWithAuth() async throws {
        let harness = try await makeHarness(password: "pw")
        #expect(try await readOutbound(harness.channel) == ["*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$2\r\npw\r\n"])
        try await harness.channel.writeInbound(ByteBuffer(string: "%1\r\n$5\r\nproto\r\n:3\r\n"))
        #expect(try await harness.handshake.get() == 3)
        _ = try? await harness.channel.finish()
    }

    @Test func requestsOfOneTurnAreOneWriteAndRepliesResumeTheirCallers() async throws {
        let harness = try await makeReadyHarness()
        let (release, held) = await holdLoop(harness.loop)
        let callers = 5
        let requests = (0..<callers).map { index in
            Task { try await harness.connection.pipeline([.get("k\(index)")]) }
        }
        try await eventually { harness.connection.pendingRequestCount == callers }
        release()
        try await held.value

        // One write holds every request, in the order they were handed over.
        let writes = try await readOutbound(harness.channel)
        try #require(writes.count == 1, "expected one write, got \(writes.count)")
        var order: [Int] = []
        for command in writes[0].split(separator: "*") {
            #expect(command.hasPrefix("2\r\n$3\r\nGET\r\n$2\r\nk") && command.hasSuffix("\r\n"))
            // "\r\n" is one Character: count bytes.
            order.append(Int(try #require(command.utf8.dropLast(2).last)) - Int(UInt8(ascii: "0")))
        }
        #expect(order.sorted() == Array(0..<callers))

        // Replies in that order, split at awkward places, each reach the caller that sent it.
        var replies = ""
        for index in order { replies += "$2\r\nv\(index)\r\n" }
        let bytes = Array(replies.utf8)
        try await harness.channel.writeInbound(ByteBuffer(bytes: bytes[..<7]))
        try await harness.channel.writeInbound(ByteBuffer(bytes: bytes[7...]))
        for (index, request) in requests.enumerated() {
            #expect(try await request.value == [.bulkString(ByteBuffer(string: "v\(index)"))])
        }
        _ = try? await harness.channel.finish()
    }

    @Test func requestsHandedOverWhileRepliesAreAwaitedGoOutTogetherWithTheNextRead() async throws {
        let harness = try await makeReadyHarness()
        let first = Task { try await harness.connection.send(.get("a")) }
        try await eventually { try await wroteSomething(harness.channel) }
        let later = (0..<3).map { index in Task { try await harness.connection.send(.get("k\(index)")) } }
        try await eventually { harness.connection.pendingRequestCount == 3 }
        #expect(try await !wroteSomething(harness.channel))
        // A partial reply is a read too: whatever waits is written then, in one buffer.
        try await harness.channel.writeInbound(ByteBuffer(string: "$1\r"))
        let writes = try await readOutbound(harness.channel)
        try #require(writes.count == 1, "expected one write, got \(writes.count)")
        #expect(writes[0].split(separator: "*").count == 3)
        try await harness.channel.writeInbound(ByteBuffer(string: "\nv\r\n$1\r\nx\r\n$1\r\nx\r\n$1\r\nx\r\n"))
        #expect(try await first.value == .bulkString(ByteBuffer(string: "v")))
        for request in later { #expect(try await request.value == .bulkString(ByteBuffer(string: "x"))) }
        // Nothing awaited any more: the next request schedules its own write.
        let next = Task { try await harness.connection.send(.ping()) }
        try await eventually { try await wroteSomething(harness.channel) }
        try await harness.channel.writeInbound(ByteBuffer(string: "+PONG\r\n"))
        #expect(try await next.value == .simpleString(ByteBuffer(string: "PONG")))
        _ = try? await harness.channel.finish()
    }

    @Test func requestsWaitingForAReadFailAsNotSentWhenTheConnectionCloses() async throws {
        let harness = try await makeReadyHarness()
        let first = Task { try await harness.connection.send(.get("a")) }
        try await eventually { try await wroteSomething(harness.channel) }
        let waiting = Task { try await harness.connection.send(.get("b")) }
        try await eventually { harness.connection.pendingRequestCount == 1 }
        try await harness.channel.close()
        do {
            _ = try await first.value
            Issue.record("a request in flight outlived the connection")
        } catch let error as RedisClientError {
            #expect(error.code == .connectionClosed && !error.requestWasNotSent)
        }
        do {
            _ = try await waiting.value
            Issue.record("a waiting request outlived the connection")
        } catch let error as RedisClientError {
            #expect(error.code == .connectionClosed && error.requestWasNotSent)
        }
    }

    @Test func aTransactionAndASingleCommandShareABatch() async throws {
        let harness = try await makeReadyHarness()
        let (release, held) = await holdLoop(harness.loop)
        let transaction = Task { try await harness.connection.transaction([.set("a", "1"), .get("a")]) }
        try await eventually { harness.connection.pendingRequestCount == 1 }
        let ping = Task { try await harness.connection.send(.ping()) }
        try await eventually { harness.connection.pendingRequestCount == 2 }
        release()
        try await held.value
        let writes = try await readOutbound(harness.channel)
        #expect(writes == [
            "*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nEXEC\r\n"
                + "*1\r\n$4\r\nPING\r\n"
        ])
        try await harness.channel.writeInbound(
            ByteBuffer(string: "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\n1\r\n+PONG\r\n")
        )
        #expect(try await transaction.value == [.simpleString(ByteBuffer(string: "OK")), .bulkString(ByteBuffer(string: "1"))])
        #expect(try await ping.value == .simpleString(ByteBuffer(string: "PONG")))
        _ = try? await harness.channel.finish()
    }

    @Test func closeFailsEveryRequestInFlightAndLaterOnesAreNotSent() async throws {
        let harness = try await makeReadyHarness()
        let (release, held) = await holdLoop(harness.loop)
        let first = Task { try await harness.connection.send(.ping()) }
        try await eventually { harness.connection.pendingRequestCount == 1 }
        let second = Task { try await harness.connection.pipeline([.get("a"), .get("b")]) }
        try await eventually { harness.connection.pendingRequestCount == 2 }
        release()
        try await held.value
        var written = 0
        try await eventually {
            written += try await readOutbound(harness.channel).joined().filter { $0 == "*" }.count
            return written == 3
        }
        try await harness.channel.close()
        await #expect(throws: RedisClientError.self) { try await first.value }
        do {
            _ = try await second.value
            Issue.record("a request in flight outlived the connection")
        } catch let error as RedisClientError {
            #expect(error.code == .connectionClosed && !error.requestWasNotSent)
        }
        do {
            _ = try await harness.connection.send(.ping())
            Issue.record("a request was sent on a closed connection")
        } catch let error as RedisClientError {
            #expect(error.code == .connectionClosed && error.requestWasNotSent)
        }
    }

    @Test func malformedBytesFailRequestsAndClose() async throws {
        let harness = try await makeReadyHarness()
        let request = Task { try await harness.connection.send(.ping()) }
        try await eventually { try await wroteSomething(harness.channel) }
        _ = try? await harness.channel.writeInbound(ByteBuffer(string: "?garbage\r\n"))
        do {
            _ = try await request.value
            Issue.record("a malformed reply was accepted")
        } catch let error as RedisClientError {
            #expect(error.code == .protocolError)
        }
        #expect(!harness.channel.isActive)
    }

    @Test func theReadTimeoutFailsTheRequestAndTheTimerFollowsTheOldestRequest() async throws {
        let harness = try await makeReadyHarness(readTimeout: .seconds(5))
        let first = Task { try await harness.connection.send(.get("a")) }
        try await eventually { try await wroteSomething(harness.channel) }
        // The first is answered after 3 s; the second, sent then, has its own 5 s.
        await harness.loop.advanceTime(by: .seconds(3))
        let second = Task { try await harness.connection.send(.get("b")) }
        try await eventually { harness.connection.pendingRequestCount == 1 }
        // A reply is awaited: the second request goes out with the next read, not before.
        #expect(try await !wroteSomething(harness.channel))
        try await harness.channel.writeInbound(ByteBuffer(string: "$-1\r\n"))
        #expect(try await first.value == .bulkString(nil))
        #expect(try await readOutbound(harness.channel) == ["*2\r\n$3\r\nGET\r\n$1\r\nb\r\n"])
        // The timer armed for the first request's deadline fires and finds the second in time.
        await harness.loop.advanceTime(by: .seconds(3))
        #expect(harness.channel.isActive)
        await harness.loop.advanceTime(by: .seconds(3))
        do {
            _ = try await second.value
            Issue.record("no timeout")
        } catch let error as RedisClientError {
            #expect(error.code == .timeout)
        }
        try await eventually { !harness.channel.isActive }
    }
}

/// ``RedisMultiplexer`` on a test connection: leases shared, kept briefly when idle.
@Suite("Redis multiplexer")
struct RedisMultiplexerTests {
    final class Counts: Sendable {
        private let counts = Mutex((leases: 0, releases: 0))
        var leases: Int { counts.withLock { $0.leases } }
        var releases: Int { counts.withLock { $0.releases } }
        func leased() { counts.withLock { $0.leases += 1 } }
        func released() { counts.withLock { $0.releases += 1 } }
    }

    /// A multiplexer (4 requests per connection, idle release after 50 ms) whose leases hand
    /// out the harness's connection and are counted.
    func makeMultiplexer() async throws -> (RedisChannelHandlerTests.Harness, Counts, RedisMultiplexer.Lease, RedisMultiplexer) {
        let harness = try await RedisChannelHandlerTests().makeReadyHarness()
        let counts = Counts()
        let connection = harness.connection
        let lease: RedisMultiplexer.Lease = {
            counts.leased()
            return (connection, { counts.released() })
        }
        return (harness, counts, lease, RedisMultiplexer(maximumRequests: 4, idleRelease: .milliseconds(50)))
    }

    @Test func anIdleLeaseIsKeptBrieflyThenHandedBack() async throws {
        let (harness, counts, lease, multiplexer) = try await makeMultiplexer()
        let connection = harness.connection
        #expect(try await multiplexer.withConnection(lease: lease) { $0.id } == connection.id)
        #expect(try await multiplexer.withConnection(lease: lease) { $0.id } == connection.id)
        // Back-to-back requests reuse the lease: no release and new lease in between.
        #expect(counts.leases == 1 && counts.releases == 0)
        await harness.loop.advanceTime(by: .milliseconds(49))
        #expect(counts.releases == 0)
        await harness.loop.advanceTime(by: .milliseconds(1))
        #expect(counts.releases == 1)

        // A request ending within the idle delay keeps the lease for another round.
        _ = try await multiplexer.withConnection(lease: lease) { $0.id }
        await harness.loop.advanceTime(by: .milliseconds(30))
        _ = try await multiplexer.withConnection(lease: lease) { $0.id }
        #expect(counts.leases == 2 && counts.releases == 1)
        // Retiring an idle connection hands its lease back at once.
        multiplexer.retire(connection)
        #expect(counts.releases == 2)
        await harness.loop.advanceTime(by: .milliseconds(100))
        #expect(counts.leases == 2 && counts.releases == 2)
        _ = try? await harness.channel.finish()
    }

    @Test func aLeaseIdleOnlyAtTheCheckIsKeptUntilIdleForTheWholeDelay() async throws {
        let (harness, counts, lease, multiplexer) = try await makeMultiplexer()
        // A request ends: the check is armed for +50 ms.
        _ = try await multiplexer.withConnection(lease: lease) { $0.id }
        await harness.loop.advanceTime(by: .milliseconds(30))
        // Another round comes and goes before the check: idle at +50 ms, but not for 50 ms.
        _ = try await multiplexer.withConnection(lease: lease) { $0.id }
        await harness.loop.advanceTime(by: .milliseconds(20))
        #expect(counts.leases == 1 && counts.releases == 0)
        // Nothing since: the check runs again 50 ms after the last request, at +80 ms.
        await harness.loop.advanceTime(by: .milliseconds(29))
        #expect(counts.releases == 0)
        await harness.loop.advanceTime(by: .milliseconds(1))
        #expect(counts.leases == 1 && counts.releases == 1)
        // The next request leases afresh.
        _ = try await multiplexer.withConnection(lease: lease) { $0.id }
        #expect(counts.leases == 2)
        _ = try? await harness.channel.finish()
    }
}

/// ``RedisOutboxState``: when requests are written.
@Suite("Redis outbox")
struct RedisOutboxStateTests {
    /// Appends `elements` and returns, for each, whether it asked for a drain job.
    func append(_ elements: [Int], to outbox: inout RedisOutboxState<Int>) -> [Bool] {
        elements.map { outbox.append($0) }
    }

    @Test func theFirstRequestSchedulesOneJobWhichLaterOnesJoin() {
        var outbox = RedisOutboxState<Int>()
        #expect(append([1, 2], to: &outbox) == [true, false])
        var taken = outbox.jobStarted()
        #expect(taken == [1, 2])
        // Written, and replies awaited: nothing is scheduled, the next read takes them.
        taken = outbox.settle(awaitingReplies: true)
        #expect(taken.isEmpty)
        #expect(append([3, 4], to: &outbox) == [false, false])
        taken = outbox.takeAll()
        #expect(taken == [3, 4])
        taken = outbox.settle(awaitingReplies: true)
        #expect(taken.isEmpty)
        // Every reply is in: the next request schedules a job again.
        taken = outbox.takeAll() + outbox.settle(awaitingReplies: false)
        #expect(taken.isEmpty)
        #expect(append([5], to: &outbox) == [true])
        taken = outbox.jobStarted()
        #expect(taken == [5])
    }

    @Test func requestsHandedOverDuringAWriteThatLeavesNothingAwaitedAreReturned() {
        var outbox = RedisOutboxState<Int>()
        #expect(append([1], to: &outbox) == [true])
        var taken = outbox.jobStarted()
        #expect(taken == [1])
        // Replies of an earlier write are awaited while this request comes.
        taken = outbox.settle(awaitingReplies: true)
        #expect(append([2], to: &outbox) == [false])
        // Then the connection closes: nothing is awaited, and nobody else would take the
        // request: it is returned at once (to be written or failed).
        taken = outbox.settle(awaitingReplies: false)
        #expect(taken == [2])
        #expect(outbox.elements.isEmpty)
    }

    @Test func aRequestDuringAScheduledJobDoesNotScheduleAnother() {
        var outbox = RedisOutboxState<Int>()
        #expect(append([1], to: &outbox) == [true])
        // A read drains before the job runs: the job then finds only what came later.
        var taken = outbox.takeAll()
        #expect(taken == [1])
        #expect(append([2], to: &outbox) == [false])
        taken = outbox.jobStarted()
        #expect(taken == [2])
        taken = outbox.jobStarted()
        #expect(taken.isEmpty)
    }

    @Test func batchesTakenIntoAnArrayTradeItForTheOutboxs() {
        var outbox = RedisOutboxState<Int>()
        var batch: [Int] = []
        batch.reserveCapacity(64)
        let capacity = batch.capacity
        #expect(append([1, 2], to: &outbox) == [true, false])
        outbox.jobStarted(into: &batch)
        #expect(batch == [1, 2] && outbox.elements.isEmpty)
        // The outbox goes on with the batch's old storage: no growth from nothing.
        #expect(outbox.elements.capacity == capacity)
        #expect(append([3], to: &outbox) == [true])
        // The same rules as without reuse: awaited replies leave requests for the next read.
        outbox.settle(awaitingReplies: true, into: &batch)
        #expect(batch.isEmpty && outbox.elements == [3])
        outbox.jobStarted(into: &batch)
        #expect(batch == [3] && outbox.elements.isEmpty)
        #expect(append([4], to: &outbox) == [false])
        // Nothing awaited any more: what came meanwhile is handed out at once.
        outbox.settle(awaitingReplies: false, into: &batch)
        #expect(batch == [4] && outbox.elements.isEmpty)
        outbox.settle(awaitingReplies: false, into: &batch)
        #expect(batch.isEmpty)
        #expect(append([5], to: &outbox) == [true])
        // A batch not emptied by its caller is emptied first: nothing is written twice.
        batch = [9]
        outbox.jobStarted(into: &batch)
        #expect(batch == [5] && outbox.elements.isEmpty)
    }
}
