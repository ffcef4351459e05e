import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// What a ``RedisConnection`` hands to its channel: commands and where their replies go.
struct RedisTask: Sendable {
    var commands: RedisCommands
    var reply: RedisReply
}

/// Runs a ``RedisConnectionStateMachine`` on a channel: feeds it decoded values, writes, TLS
/// and timer events, and carries out its actions. All protocol logic lives in the machine.
///
/// A reply resumes the caller's continuation directly on the event loop (no promise, no
/// future). ``send(_:)`` takes every request a ``RedisConnection`` collected during one
/// event-loop turn and encodes them into one buffer: one write, one flush, one syscall.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisTask
    typealias OutboundOut = ByteBuffer

    private var machine: RedisConnectionStateMachine<RedisReply>
    private var decoder: NIOSingleStepByteToMessageProcessor<RESPDecoder>
    private let encoder = RESPEncoder()
    private let handshakePromise: EventLoopPromise<Int>
    private let connectDeadline: NIODeadline
    private var logger: Logger
    /// The one request timer; it may be armed earlier than the oldest request's deadline
    /// (it then re-arms when it fires), never later.
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var connectTimer: Scheduled<Void>?
    private var handshakeResolved = false
    private var context: ChannelHandlerContext?
    /// Gets the out-of-band values of a subscriber connection (see ``RedisConnectionStateMachine/Handshake/subscriber``).
    private let onPush: (@Sendable (RESPValue) -> Void)?
    /// The requests the connection's callers handed over, written by ``drainOutbox()``.
    let outbox: RedisOutbox
    /// An empty array with capacity, for the next batch taken from the outbox.
    private var spareBatch: [RedisTask] = []

    init(
        handshake: RedisConnectionStateMachine<RedisReply>.Handshake,
        sendTimeout: TimeAmount,
        readTimeout: TimeAmount,
        connectDeadline: NIODeadline,
        decoderLimits: RESPDecoder.Limits,
        handshakePromise: EventLoopPromise<Int>,
        outbox: RedisOutbox = RedisOutbox(),
        logger: Logger,
        onPush: (@Sendable (RESPValue) -> Void)? = nil
    ) {
        self.outbox = outbox
        self.onPush = onPush
        self.machine = RedisConnectionStateMachine(handshake: handshake, sendTimeout: sendTimeout, readTimeout: readTimeout)
        self.decoder = NIOSingleStepByteToMessageProcessor(RESPDecoder(limits: decoderLimits), maximumBufferSize: nil)
        self.handshakePromise = handshakePromise
        self.connectDeadline = connectDeadline
        self.logger = logger
    }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loop = context.eventLoop.assumeIsolated()
        connectTimer = loop.scheduleTask(deadline: connectDeadline) { [self] in
            guard let context = self.context else { return }
            self.run(self.machine.connectTimeout(), context: context)
        }
        if context.channel.isActive {
            run(machine.connected(now: context.eventLoop.now), context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        timer?.cancel()
        connectTimer?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        logger.debug("redis connection up")
        run(machine.connected(now: context.eventLoop.now), context: context)
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            logger.trace("redis TLS handshake done")
            run(machine.tlsEstablished(now: context.eventLoop.now), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let now = context.eventLoop.now
        do {
            try decoder.process(buffer: buffer) { value in
                self.run(self.machine.received(value, now: now), context: context)
            }
        } catch {
            run(machine.errorCaught(error), context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The callers resumed by these replies (and any others) may have sent requests
        // meanwhile: they go out now, in one write.
        drainOutbox()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("redis connection error", metadata: ["error": "\(String(reflecting: type(of: error)))"])
        run(machine.errorCaught(error), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        logger.debug("redis connection closed")
        run(machine.channelInactive(), context: context)
        // Requests still in the outbox fail as not sent.
        drainOutbox()
        resolveHandshake(.failure(RedisClientError(.connectionClosed, message: "the connection closed during the handshake")))
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        connectTimer?.cancel()
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The outbound promise only says "handed over"; the task's reply gets the outcome.
        promise?.succeed()
        send(CollectionOfOne(unwrapOutboundIn(data)))
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        _ = machine.closeRequested()
        context.close(mode: mode, promise: promise)
    }

    // MARK: requests

    /// The drain job a caller scheduled (nothing was awaited when it handed its request over).
    func runDrainJob() {
        var tasks = takeSpareBatch()
        outbox.jobStarted(into: &tasks)
        writeOutbox(&tasks)
    }

    /// Writes every request of the outbox.
    private func drainOutbox() {
        var tasks = takeSpareBatch()
        outbox.takeAll(into: &tasks)
        writeOutbox(&tasks)
    }

    /// The array the last batch was taken into, empty with its capacity: it and the outbox's
    /// take turns (see ``RedisOutboxState/takeAll(into:)``). A drain run from within a
    /// drain (the connection closing during a write) gets a new one.
    private func takeSpareBatch() -> [RedisTask] {
        var tasks: [RedisTask] = []
        swap(&tasks, &spareBatch)
        return tasks
    }

    /// Writes `tasks` in one buffer, then records whether replies are awaited; with none
    /// awaited (the connection closed, say), requests handed over meanwhile are written (or
    /// failed) at once. Keeps the emptied array for the next batch.
    private func writeOutbox(_ tasks: inout [RedisTask]) {
        while true {
            if !tasks.isEmpty { send(tasks) }
            // Emptied here, not under the outbox's lock: the requests' commands are freed.
            tasks.removeAll(keepingCapacity: true)
            outbox.settle(awaitingReplies: machine.isReady && machine.inFlightCount > 0, into: &tasks)
            if tasks.isEmpty { break }
        }
        swap(&tasks, &spareBatch)
    }

    /// Encodes `tasks` into one buffer and writes and flushes it. Runs on the event loop.
    ///
    /// A task the connection cannot take any more (closed, or the handler left the pipeline)
    /// fails at once with `requestWasNotSent`; every other one is resumed later by its
    /// replies, a timeout, or the connection closing.
    func send<Tasks: Collection<RedisTask>>(_ tasks: Tasks) {
        guard let context else {
            var error = RedisClientError(.connectionClosed, message: "the connection is closed")
            error.requestWasNotSent = true
            for task in tasks { task.reply.resume(throwing: error) }
            return
        }
        let now = context.eventLoop.now
        // Made up front: only a batch that finds the connection closed writes nothing.
        var buffer = context.channel.allocator.buffer(capacity: Self.estimatedSize(tasks))
        var lastID: Int?
        for task in tasks {
            let action = machine.send(task.commands, reply: task.reply, now: now)
            guard case .write(let id, let commands) = action else {
                run(action, context: context)
                continue
            }
            traceSend(commands)
            encoder.encode(commands, into: &buffer)
            lastID = id
        }
        if let lastID {
            writeBatch(buffer, upTo: lastID, context: context)
        }
        updateTimer(context: context)
    }

    // MARK: actions

    private func run(_ action: RedisConnectionStateMachine<RedisReply>.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            // Still re-arm below: a timer that fired early finds nothing to fail but must
            // wait for the new oldest request.
            break
        case .succeed(let reply, let replies):
            reply.resume(returning: replies)
        case .write(let id, let commands):
            // A handshake step (requests are written by send(_:)): flushed at once.
            traceSend(commands)
            var buffer = context.channel.allocator.buffer(capacity: 128)
            encoder.encode(commands, into: &buffer)
            if machine.isReady {
                writeBatch(buffer, upTo: id, context: context)
            } else {
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            }
        case .handshakeSucceeded(let version, let queued):
            logger.debug("redis connection ready", metadata: ["resp": "\(version)"])
            if let last = queued.last {
                var buffer = context.channel.allocator.buffer(capacity: 256 * queued.count)
                for request in queued {
                    traceSend(request.commands)
                    encoder.encode(request.commands, into: &buffer)
                }
                writeBatch(buffer, upTo: last.id, context: context)
            }
            resolveHandshake(.success(version))
        case .handshakeFailed(let error, let replies):
            resolveHandshake(.failure(error))
            for reply in replies { reply.resume(throwing: error) }
            context.close(promise: nil)
        case .failAndClose(let error, let replies):
            logger.debug("redis connection failing", metadata: ["code": "\(error.code)"])
            for reply in replies { reply.resume(throwing: error) }
            context.close(promise: nil)
        case .fail(let error, let replies):
            for reply in replies { reply.resume(throwing: error) }
        case .close:
            context.close(promise: nil)
        case .push(let value):
            onPush?(value)
        }
        updateTimer(context: context)
    }

    /// Writes and flushes one buffer holding every request up to `id`; their read timeouts
    /// start once it is out. A failed write fails every request in flight at once.
    private func writeBatch(_ buffer: ByteBuffer, upTo id: Int, context: ChannelHandlerContext) {
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] result in
            guard let context = self.context else { return }
            switch result {
            case .success:
                self.machine.written(upTo: id, now: context.eventLoop.now)
                self.updateTimer(context: context)
            case .failure(let error):
                self.run(self.machine.errorCaught(error), context: context)
            }
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: written)
    }

    private func traceSend(_ commands: some Collection<RedisCommand>) {
        if logger.logLevel <= .trace {
            logger.trace("redis send", metadata: ["commands": "\(commands.map(\.name).joined(separator: ","))"])
        }
    }

    private func resolveHandshake(_ result: Result<Int, RedisClientError>) {
        guard !handshakeResolved else { return }
        handshakeResolved = true
        connectTimer?.cancel()
        connectTimer = nil
        handshakePromise.completeWith(result.mapError { $0 as any Error })
    }

    /// Arms the request timer for the oldest request's deadline, unless it is armed for that
    /// deadline or an earlier one: a reply moves the deadline on, and re-arming on every reply
    /// would cost a cancel and a schedule each; the timer re-arms itself when it fires early.
    private func updateTimer(context: ChannelHandlerContext) {
        guard let deadline = machine.nextDeadline else { return }
        if let armed = timerDeadline, armed <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.timerDeadline = nil
            self.timer = nil
            guard let context = self.context else { return }
            self.run(self.machine.timerFired(now: context.eventLoop.now), context: context)
        }
    }

    private static func estimatedSize<Tasks: Collection<RedisTask>>(_ tasks: Tasks) -> Int {
        var size = 0
        for task in tasks {
            for command in task.commands { size += command.estimatedWireSize }
        }
        return size
    }
}
