import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// What a ``RedisConnection`` writes into its channel: commands and the promise of their replies.
struct RedisRequest: Sendable {
    var commands: [RedisCommand]
    var promise: EventLoopPromise<[RESPValue]>
}

/// Runs a ``RedisConnectionStateMachine`` on a channel: feeds it decoded values, writes, TLS
/// and timer events, and carries out its actions. All logic lives in the machine.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var machine: RedisConnectionStateMachine
    private var decoder: NIOSingleStepByteToMessageProcessor<RESPDecoder>
    private let encoder = RESPEncoder()
    private let handshakePromise: EventLoopPromise<Int>
    private let connectDeadline: NIODeadline
    private var logger: Logger
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var connectTimer: Scheduled<Void>?
    private var flushScheduled = false
    private var handshakeResolved = false
    private var context: ChannelHandlerContext?

    init(
        handshake: RedisConnectionStateMachine.Handshake,
        sendTimeout: TimeAmount,
        readTimeout: TimeAmount,
        connectDeadline: NIODeadline,
        decoderLimits: RESPDecoder.Limits,
        handshakePromise: EventLoopPromise<Int>,
        logger: Logger
    ) {
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
            run(machine.connected(now: .now()), context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        timer?.cancel()
        connectTimer?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        logger.debug("redis connection up")
        run(machine.connected(now: .now()), context: context)
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            logger.trace("redis TLS handshake done")
            run(machine.tlsEstablished(now: .now()), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            try decoder.process(buffer: buffer) { value in
                self.run(self.machine.received(value, now: .now()), context: context)
            }
        } catch {
            run(machine.errorCaught(error), context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("redis connection error", metadata: ["error": "\(String(reflecting: type(of: error)))"])
        run(machine.errorCaught(error), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        logger.debug("redis connection closed")
        run(machine.channelInactive(), context: context)
        resolveHandshake(.failure(RedisClientError(.connectionClosed, message: "the connection closed during the handshake")))
        timer?.cancel()
        timer = nil
        connectTimer?.cancel()
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        // The outbound promise only says "handed over"; the request's own promise gets the outcome.
        promise?.succeed()
        run(machine.send(request.commands, promise: request.promise, now: .now()), context: context)
    }

    func flush(context: ChannelHandlerContext) {
        // Coalesce the flushes of callers that wrote in the same event-loop tick into one syscall.
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute { [self] in
            self.flushScheduled = false
            self.context?.flush()
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        _ = machine.closeRequested()
        context.close(mode: mode, promise: promise)
    }

    // MARK: actions

    private func run(_ action: RedisConnectionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .write(let id, let commands):
            write(id: id, commands: commands, context: context)
            if !machine.isReady {
                // Handshake steps are flushed at once; requests wait for the coalesced flush.
                context.flush()
            }
        case .writeMany(let requests):
            for request in requests { write(id: request.id, commands: request.commands, context: context) }
            context.flush()
        case .succeed(let promise, let replies):
            promise.succeed(replies)
        case .handshakeSucceeded(let version, let queued):
            logger.debug("redis connection ready", metadata: ["resp": "\(version)"])
            for request in queued { write(id: request.id, commands: request.commands, context: context) }
            if !queued.isEmpty { context.flush() }
            resolveHandshake(.success(version))
        case .handshakeFailed(let error, let promises):
            resolveHandshake(.failure(error))
            for promise in promises { promise.fail(error) }
            context.close(promise: nil)
        case .failAndClose(let error, let promises):
            logger.debug("redis connection failing", metadata: ["code": "\(error.code)"])
            for promise in promises { promise.fail(error) }
            context.close(promise: nil)
        case .fail(let error, let promises):
            for promise in promises { promise.fail(error) }
        case .close:
            context.close(promise: nil)
        }
        updateTimer(context: context)
    }

    private func resolveHandshake(_ result: Result<Int, RedisClientError>) {
        guard !handshakeResolved else { return }
        handshakeResolved = true
        connectTimer?.cancel()
        connectTimer = nil
        handshakePromise.completeWith(result.mapError { $0 as any Error })
    }

    private func write(id: Int, commands: [RedisCommand], context: ChannelHandlerContext) {
        if logger.logLevel <= .trace {
            logger.trace("redis send", metadata: ["commands": "\(commands.map(\.name).joined(separator: ","))"])
        }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        encoder.encode(commands, into: &buffer)
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenSuccess { [self] in
            self.machine.written(id: id, now: .now())
            if let context = self.context { self.updateTimer(context: context) }
        }
        context.write(wrapOutboundOut(buffer), promise: written)
    }

    private func updateTimer(context: ChannelHandlerContext) {
        let deadline = machine.nextDeadline
        guard deadline != timerDeadline else { return }
        timer?.cancel()
        timer = nil
        timerDeadline = deadline
        guard let deadline else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.timerDeadline = nil
            self.timer = nil
            guard let context = self.context else { return }
            self.run(self.machine.timerFired(now: .now()), context: context)
        }
    }
}
