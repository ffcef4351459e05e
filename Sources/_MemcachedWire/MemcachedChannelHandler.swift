import Logging
import NIOCore
import NIOSSL

/// A request and the promise its reply completes; what a ``MemcachedConnection`` writes into
/// its channel.
struct MemcachedTask: Sendable {
    var request: MemcachedRequest
    var promise: EventLoopPromise<MemcachedResponse>
}

/// Runs the actions of a ``MemcachedConnectionStateMachine`` on a channel: encodes requests,
/// completes promises with replies, and enforces the read and send timeouts.
final class MemcachedChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = MemcachedResponse
    typealias OutboundIn = MemcachedTask
    typealias OutboundOut = ByteBuffer

    private var stateMachine = MemcachedConnectionStateMachine<EventLoopPromise<MemcachedResponse>>()
    private let encoder = MemcachedRequestEncoder()
    private let readTimeout: TimeAmount?
    private let sendTimeout: TimeAmount?
    private var logger: Logger

    /// When the oldest request in flight last saw progress (sent on an idle connection, or a
    /// reply arrived); the read timeout counts from here.
    private var lastProgress = NIODeadline.now()
    private var readTimer: Scheduled<Void>?
    private var sendTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(readTimeout: Duration?, sendTimeout: Duration?, logger: Logger) {
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
        let task = unwrapOutboundIn(data)
        let wasIdle = stateMachine.inFlight == 0
        let action = stateMachine.sendRequested(task.request, promise: task.promise)
        if case .write(let request, let opaque) = action {
            logger.trace("memcached request", metadata: ["memcached_command": .string(request.commandName)])
            var buffer = context.channel.allocator.buffer(capacity: Self.estimatedSize(request))
            encoder.encode(request, opaque: opaque, into: &buffer)
            if wasIdle {
                lastProgress = context.eventLoop.now
                armReadTimer(context: context)
            }
            context.write(wrapOutboundOut(buffer), promise: promise)
        } else {
            promise?.fail(MemcachedClientError(.connectionClosed, message: "the connection is closed"))
            run(action, context: context)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all {
            let action = stateMachine.closeRequested()
            if case .closeAndFailAll(let promises, let error) = action {
                for promise in promises { promise.fail(error) }
            }
        }
        context.close(mode: mode, promise: promise)
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let response = unwrapInboundIn(data)
        lastProgress = context.eventLoop.now
        run(stateMachine.responseReceived(response), context: context)
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

    private func run(_ action: MemcachedConnectionStateMachine<EventLoopPromise<MemcachedResponse>>.Action, context: ChannelHandlerContext) {
        switch action {
        case .write:
            preconditionFailure("writes are run by write(context:data:promise:)")
        case .succeed(let promise, let response):
            promise.succeed(response)
        case .fail(let promise, let error):
            promise.fail(error)
        case .closeAndFailAll(let promises, let error):
            logger.debug("closing memcached connection", metadata: ["reason": "\(error.code)"])
            for promise in promises { promise.fail(error) }
            context.close(promise: nil)
        case .failAll(let promises, let error):
            for promise in promises { promise.fail(error) }
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

    private func sendTimerFired() {
        sendTimer = nil
        guard let context else { return }
        run(stateMachine.sendTimedOut(), context: context)
    }

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
