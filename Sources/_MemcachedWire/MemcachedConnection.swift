import _ConnectionPoolModule
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// One connection to a memcached server, with an async API. Requests are pipelined: any
/// number of tasks may call it at once; their requests are written back to back and each
/// gets its own reply.
public final class MemcachedConnection: PooledConnection, MemcachedCommands, Sendable {
    /// How a connection connects and times out.
    public struct Configuration: Sendable {
        /// TLS (off by default).
        public var tls: MemcachedTLS = .disable
        /// The longest a connect (TCP and TLS handshake) may take.
        public var connectTimeout: Duration = .seconds(10)
        /// The longest a write may stay blocked; `nil` for no limit.
        public var sendTimeout: Duration? = .seconds(10)
        /// The longest to wait for a reply while requests are in flight; `nil` for no limit.
        public var readTimeout: Duration? = .seconds(10)
        /// The largest value accepted in a reply.
        public var maximumValueLength: Int = 64 << 20

        /// The defaults.
        public init() {}
    }

    /// The connection's id, unique within its client.
    public let id: Int
    /// The server it is connected to.
    public let address: MemcachedServerAddress
    let channel: any Channel

    /// Requests handed over by callers off the event loop, written in one batch (and one
    /// flush, one syscall) by the next run of ``drainOutbox()`` on the event loop.
    private let outbox = Mutex(Outbox())

    private struct Outbox: ~Copyable {
        var tasks: [MemcachedTask] = []
        var scheduled = false
    }

    /// The array the last drain took out of the outbox, emptied and swapped back in by the
    /// next drain: the two arrays keep their capacity, so handing requests over allocates nothing.
    private let spare: NIOLoopBoundBox<[MemcachedTask]>

    /// The channel's ``MemcachedChannelHandler``, looked up once on the event loop.
    private let handler: NIOLoopBoundBox<MemcachedChannelHandler?>

    init(id: Int, address: MemcachedServerAddress, channel: any Channel) {
        self.id = id
        self.address = address
        self.channel = channel
        self.handler = NIOLoopBoundBox.makeEmptyBox(valueType: MemcachedChannelHandler.self, eventLoop: channel.eventLoop)
        self.spare = NIOLoopBoundBox.makeBoxSendingValue([], eventLoop: channel.eventLoop)
    }

    /// Connects to `address`.
    ///
    /// - Throws: ``MemcachedClientError`` with code `connectionFailed`, `timeout` or `tls`.
    public static func connect(
        to address: MemcachedServerAddress,
        configuration: Configuration = .init(),
        id: Int = 0,
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any(),
        logger: Logger
    ) async throws -> MemcachedConnection {
        let context = try configuration.tls.makeContext()
        return try await connect(to: address, configuration: configuration, sslContext: context, id: id, eventLoop: eventLoop, logger: logger)
    }

    static func connect(
        to address: MemcachedServerAddress,
        configuration: Configuration,
        sslContext: NIOSSLContext?,
        id: Int,
        eventLoop: any EventLoop,
        logger: Logger
    ) async throws -> MemcachedConnection {
        var logger = logger
        logger[metadataKey: "memcached_connection_id"] = .stringConvertible(id)
        logger[metadataKey: "memcached_server"] = .string(address.description)
        let handshake: EventLoopPromise<Void>? = sslContext == nil ? nil : eventLoop.makePromise()
        var serverHostname = configuration.tls.serverName
        if serverHostname == nil, case .tcp(let host, _) = address, !host.isIPAddress {
            serverHostname = host
        }
        let hostname = serverHostname
        let handlerLogger = logger
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let sslContext, let handshake {
                        try pipeline.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: hostname))
                        try pipeline.addHandler(TLSHandshakeWaiter(promise: handshake))
                    }
                    try pipeline.addHandler(
                        MemcachedChannelHandler(
                            readTimeout: configuration.readTimeout,
                            sendTimeout: configuration.sendTimeout,
                            maximumValueLength: configuration.maximumValueLength,
                            logger: handlerLogger
                        )
                    )
                }
            }
        let channel: any Channel
        do {
            switch address {
            case .tcp(let host, let port):
                channel = try await bootstrap.connect(host: host, port: port).get()
            case .unixSocket(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            handshake?.fail(error)
            if case ChannelError.connectTimeout = error {
                throw MemcachedClientError(.timeout, message: "connecting to the server timed out", underlying: error)
            }
            throw MemcachedClientError(.connectionFailed, message: "could not connect to the server", underlying: error)
        }
        if let handshake {
            let timer = eventLoop.scheduleTask(in: TimeAmount(configuration.connectTimeout)) {
                handshake.fail(MemcachedClientError(.timeout, message: "the TLS handshake timed out"))
            }
            do {
                try await handshake.futureResult.get()
                timer.cancel()
            } catch {
                timer.cancel()
                channel.close(promise: nil)
                if let error = error as? MemcachedClientError, error.code == .timeout { throw error }
                throw MemcachedClientError(.tls, message: "the TLS handshake failed", underlying: error)
            }
        }
        logger.debug("memcached connection established")
        return MemcachedConnection(id: id, address: address, channel: channel)
    }

    /// Sends one request and waits for its reply. The key is validated first: an invalid
    /// key throws ``MemcachedClientError/Code/invalidKey`` (or `keyTooLong`) and nothing is sent.
    public nonisolated(nonsending) func execute(_ request: MemcachedRequest) async throws -> MemcachedResponse {
        try request.validate()
        return try await send(request)
    }

    /// Sends a request that was validated already and waits for its reply.
    nonisolated(nonsending) func send(_ request: MemcachedRequest) async throws -> MemcachedResponse {
        try await withUnsafeThrowingContinuation { (reply: MemcachedReply) in
            // Concurrent callers share the connection: their requests are queued here and
            // written together by one task on the event loop, so a burst of requests costs
            // one wake-up and one write syscall instead of one each. The channel handler
            // resumes `reply` directly (no promise, no future-to-async hop).
            let schedule = outbox.withLock { outbox -> Bool in
                outbox.tasks.append(MemcachedTask(request: request, reply: reply))
                if outbox.scheduled { return false }
                outbox.scheduled = true
                return true
            }
            if schedule {
                channel.eventLoop.execute { self.drainOutbox() }
            }
        }
    }

    private func drainOutbox() {
        var tasks = spare.value
        spare.value = []
        outbox.withLock { outbox in
            outbox.scheduled = false
            swap(&tasks, &outbox.tasks)
        }
        defer {
            tasks.removeAll(keepingCapacity: true)
            spare.value = tasks
        }
        if handler.value == nil {
            handler.value = try? channel.pipeline.syncOperations.handler(type: MemcachedChannelHandler.self)
        }
        guard let handler = handler.value else {
            let error = MemcachedClientError(.connectionClosed, message: "the connection is closed")
            for task in tasks { task.reply.resume(throwing: error) }
            return
        }
        handler.send(tasks)
    }

    /// Closes the connection; requests in flight fail with `connectionClosed`.
    public func close() {
        channel.close(mode: .all, promise: nil)
    }

    /// Closes the connection and waits until it is closed.
    public func closeAndWait() async {
        try? await channel.close(mode: .all).get()
    }

    /// Calls `closure` once the connection has closed.
    public func onClose(_ closure: @escaping @Sendable ((any Error)?) -> Void) {
        channel.closeFuture.whenComplete { _ in closure(nil) }
    }

    /// Whether the connection is still open.
    public var isActive: Bool { channel.isActive }
}

/// Completes a promise when the TLS handshake finished or failed.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            promise.succeed(())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}

extension MemcachedChannelHandler {
    static func closedError(_ error: any Error) -> MemcachedClientError {
        if let error = error as? MemcachedClientError { return error }
        return MemcachedClientError(.connectionClosed, message: "the connection is closed", underlying: error)
    }
}

extension String {
    var isIPAddress: Bool {
        (try? SocketAddress(ipAddress: self, port: 0)) != nil
    }
}
