import Logging
import NIOCore
import NIOSSL

/// Where the reply of one request goes: the continuation of the task that sent it.
///
/// Unchecked (no allocation, no atomic flag per request): every continuation is held by
/// exactly one owner at a time (the connection's outbox, then the state machine's list of
/// requests in flight, which hands it out exactly once: to its reply, or to the error that
/// fails every request in flight).
typealias MemcachedReply = UnsafeContinuation<MemcachedResponse, any Error>

/// A request and the continuation its reply resumes; what a ``MemcachedConnection`` hands to
/// its channel handler.
struct MemcachedTask: Sendable {
    var request: MemcachedRequest
    var reply: MemcachedReply
}

/// Runs the actions of a ``MemcachedConnectionStateMachine`` on a channel: encodes requests,
/// decodes replies (with its ``MemcachedResponseDecoder``, straight from the bytes read: no
/// message boxed per reply between two handlers), resumes the callers with replies, and
/// enforces the read and send timeouts.
final class MemcachedChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = MemcachedTask
    typealias OutboundOut = ByteBuffer

    private var stateMachine = MemcachedConnectionStateMachine<MemcachedReply>()
    private let encoder = MemcachedRequestEncoder()
    private var decoder: MemcachedResponseDecoder
    /// Bytes read and not decoded yet (the start of a reply split across reads or TLS records).
    private var received: ByteBuffer?
    private let readTimeout: TimeAmount?
    private let sendTimeout: TimeAmount?
    private var logger: Logger

    /// When the oldest request in flight last saw progress (sent on an idle connection, or a
    /// reply arrived); the read timeout counts from here.
    private var lastProgress = NIODeadline.now()
    private var readTimer: Scheduled<Void>?
    private var sendTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(readTimeout: Duration?, sendTimeout: Duration?, maximumValueLength: Int = 64 << 20, logger: Logger) {
        self.decoder = MemcachedResponseDecoder(maximumValueLength: maximumValueLength)
        self.readTimeout = readTimeout.map(TimeAmount.init)
        self.sendTimeout = sendTimeout.map(TimeAmount.init)
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        readTimer?.cancel()
        sendTimer?.cancel()
        self.context = nil
    }

    // MARK: outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        send([unwrapOutboundIn(data)], promise: promise)
    }

    /// Encodes `tasks` into one buffer, writes and flushes it. Runs on the event loop. A task
    /// the connection cannot take any more fails at once; every other one is completed
    /// later by its reply, a timeout or the connection closing.
    func send(_ tasks: [MemcachedTask], promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            let error = MemcachedClientError(.connectionClosed, message: "the connection is closed")
            for task in tasks { task.reply.resume(throwing: error) }
            promise?.fail(error)
            return
        }
        var buffer: ByteBuffer?
        for task in tasks {
            let wasIdle = stateMachine.inFlight == 0
            let action = stateMachine.sendRequested(task.request, promise: task.reply)
            guard case .write(let request, let opaque) = action else {
                run(action, context: context)
                continue
            }
            logger.trace("memcached request", metadata: ["memcached_command": .string(request.commandName)])
            if buffer == nil {
                // room for the whole batch at once: a batch of sets never regrows (and copies) the buffer
                var capacity = 0
                for task in tasks { capacity += Self.estimatedSize(task.request) }
                buffer = context.channel.allocator.buffer(capacity: capacity)
            }
            encoder.encode(request, opaque: opaque, into: &buffer!)
            if wasIdle {
                lastProgress = context.eventLoop.now
                armReadTimer(context: context)
            }
        }
        if let buffer {
            // A write that fails leaves requests in flight that will never be answered: the
            // connection is closed and they fail at once (not after the read timeout).
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            let written = promise ?? context.eventLoop.makePromise()
            written.futureResult.whenFailure { error in
                handler.value.writeFailed(error)
            }
            context.writeAndFlush(wrapOutboundOut(buffer), promise: written)
        } else {
            promise?.fail(MemcachedClientError(.connectionClosed, message: "the connection is closed"))
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all {
            let action = stateMachine.closeRequested()
            if case .closeAndFailAll(let promises, let error) = action {
                for reply in promises { reply.resume(throwing: error) }
            }
        }
        context.close(mode: mode, promise: promise)
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if var received, received.readableBytes > 0 {
            // the rest of a reply: appended to what came before
            self.received = nil  // one reference only: the append does not copy
            var bytes = bytes
            received.writeBuffer(&bytes)
            self.received = received
        } else {
            self.received = bytes
        }
        guard stateMachine.isActive else {
            received = nil
            return
        }
        var decoded = false
        do {
            while var buffer = received {
                received = nil
                let response = try decoder.decode(buffer: &buffer)
                received = buffer
                guard let response else { break }
                decoded = true
                run(stateMachine.responseReceived(response), context: context)
                guard stateMachine.isActive else {
                    received = nil
                    break
                }
            }
        } catch {
            received = nil
            errorCaught(context: context, error: error)
            return
        }
        if decoded { lastProgress = context.eventLoop.now }
        if let buffer = received {
            if buffer.readableBytes == 0 {
                received = nil
            } else if buffer.readerIndex >= 64 << 10 {
                // a long reply still arriving: drop the bytes consumed already
                received = nil
                var buffer = buffer
                buffer.discardReadBytes()
                received = buffer
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("memcached connection error", metadata: ["error": "\(String(reflecting: error))"])
        run(stateMachine.errorCaught(Self.map(error)), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        readTimer?.cancel()
        sendTimer?.cancel()
        run(stateMachine.channelInactive(), context: context)
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendTimer?.cancel()
            sendTimer = nil
        } else if let sendTimeout, sendTimer == nil {
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            sendTimer = context.eventLoop.scheduleTask(in: sendTimeout) {
                handler.value.sendTimerFired()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: actions

    private func run(_ action: MemcachedConnectionStateMachine<MemcachedReply>.Action, context: ChannelHandlerContext) {
        switch action {
        case .write:
            preconditionFailure("writes are run by send(_:promise:)")
        case .succeed(let reply, let response):
            reply.resume(returning: response)
        case .fail(let reply, let error):
            reply.resume(throwing: error)
        case .closeAndFailAll(let replies, let error):
            logger.debug("closing memcached connection", metadata: ["reason": "\(error.code)"])
            for reply in replies { reply.resume(throwing: error) }
            context.close(promise: nil)
        case .failAll(let replies, let error):
            for reply in replies { reply.resume(throwing: error) }
        case .none:
            break
        }
    }

    private func armReadTimer(context: ChannelHandlerContext) {
        guard let readTimeout, readTimer == nil else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        readTimer = context.eventLoop.scheduleTask(deadline: lastProgress + readTimeout) {
            handler.value.readTimerFired()
        }
    }

    private func readTimerFired() {
        readTimer = nil
        guard let context, let readTimeout, stateMachine.inFlight > 0 else { return }
        let deadline = lastProgress + readTimeout
        if deadline > context.eventLoop.now {
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            readTimer = context.eventLoop.scheduleTask(deadline: deadline) {
                handler.value.readTimerFired()
            }
            return
        }
        run(stateMachine.readTimedOut(), context: context)
    }

    private func writeFailed(_ error: any Error) {
        guard let context else { return }
        run(stateMachine.errorCaught(Self.map(error)), context: context)
    }

    private func sendTimerFired() {
        sendTimer = nil
        guard let context else { return }
        run(stateMachine.sendTimedOut(), context: context)
    }

    /// An upper bound of the encoded size for common requests (a header with a key of at
    /// most 250 bytes and a few flags), plus the value of a set.
    private static func estimatedSize(_ request: MemcachedRequest) -> Int {
        if case .metaSet(_, let value, _) = request { return value.readableBytes + 320 }
        return 320
    }

    /// Maps an error of the pipeline to the client's error type.
    static func map(_ error: any Error) -> MemcachedClientError {
        if let error = error as? MemcachedClientError { return error }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return MemcachedClientError(.tls, message: "TLS failed", underlying: error)
        }
        return MemcachedClientError(.connectionClosed, message: "the connection failed", underlying: error)
    }
}
