import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import _ConnectionPoolModule

/// One connection to a Redis server, ready for commands.
///
/// Many requests can be in flight at once: concurrent callers pipeline on the connection and
/// their replies are matched in order. The requests handed over during one event-loop turn
/// are written together (one buffer, one flush); each reply resumes its caller directly.
public final class RedisConnection: PooledConnection, Sendable {
    /// The identifier the pool gave the connection.
    public let id: Int
    /// The RESP version spoken: 3 after `HELLO 3`, 2 with servers before Redis 6.
    public let protocolVersion: Int
    /// The address connected to.
    public let address: RedisAddress
    let channel: any Channel
    let logger: Logger
    /// The channel's ``RedisChannelHandler``, set by the channel initializer on the event loop.
    private let handler: NIOLoopBoundBox<RedisChannelHandler?>

    /// Requests handed over by callers off the event loop, written in batches by the handler
    /// (see ``RedisOutboxState``).
    let outbox: RedisOutbox
    /// Writes the outbox on the event loop; scheduled by ``enqueue(_:)``.
    private let drainJob: @Sendable () -> Void

    init(
        id: Int, protocolVersion: Int, address: RedisAddress, channel: any Channel,
        handler: NIOLoopBoundBox<RedisChannelHandler?>, outbox: RedisOutbox, logger: Logger
    ) {
        self.outbox = outbox
        self.id = id
        self.protocolVersion = protocolVersion
        self.address = address
        self.channel = channel
        self.handler = handler
        self.logger = logger
        self.drainJob = Self.makeDrainJob(handler: handler, outbox: outbox)
    }

    /// Connects, runs the handshake (TLS, `HELLO 3` with `AUTH`, RESP2 fallback, `SELECT`)
    /// and returns a ready connection.
    ///
    /// - Parameters:
    ///   - configuration: the server and credentials.
    ///   - id: an identifier for logs and the pool.
    ///   - eventLoop: the event loop of the channel.
    ///   - tlsContext: a prebuilt TLS context (built from `configuration.tls` when `nil`).
    ///   - logger: connection lifecycle at debug, commands at trace (names only).
    /// - Throws: ``RedisClientError`` with code `connectionFailed`, `timeout`, `tls`,
    ///   `authenticationFailed` or `serverError`.
    public static func connect(
        configuration: Configuration,
        id: Int = 0,
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any(),
        tlsContext: NIOSSLContext? = nil,
        logger: Logger = Logger(label: "redis", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> RedisConnection {
        try await connect(
            configuration: configuration, id: id, eventLoop: eventLoop, tlsContext: tlsContext, logger: logger, onPush: nil
        )
    }

    /// Connects like ``connect(configuration:id:eventLoop:tlsContext:logger:)``; with `onPush`,
    /// the connection is a subscriber: every value that is not the reply to a request (a
    /// pub/sub message, RESP3 push or RESP2 array) goes to `onPush`, on the event loop.
    static func connect(
        configuration: Configuration,
        id: Int = 0,
        eventLoop: any EventLoop,
        tlsContext: NIOSSLContext?,
        logger: Logger,
        onPush: (@Sendable (RESPValue) -> Void)?
    ) async throws -> RedisConnection {
        var logger = logger
        logger[metadataKey: RedisLoggingKeys.connectionID] = "\(id)"
        logger[metadataKey: RedisLoggingKeys.address] = "\(configuration.address)"
        let tlsContext = try tlsContext ?? configuration.tls.makeContext()
        let sniName: String?
        if configuration.tls.enabled {
            let name = configuration.tls.serverName ?? configuration.address.host
            // An IP address is verified against the certificate but is not a valid SNI name.
            sniName = name.flatMap { (try? SocketAddress(ipAddress: $0, port: 0)) == nil ? $0 : nil }
        } else {
            sniName = nil
        }
        let handshake = RedisConnectionStateMachine<RedisReply>.Handshake(
            username: configuration.username,
            password: configuration.password,
            database: configuration.database,
            clientName: configuration.clientName,
            tls: tlsContext != nil,
            subscriber: onPush != nil
        )
        let connectTimeout = TimeAmount(configuration.connectTimeout)
        let connectDeadline = NIODeadline.now() + connectTimeout
        let handshakePromise = eventLoop.makePromise(of: Int.self)
        let sendTimeout = TimeAmount(configuration.sendTimeout)
        let readTimeout = TimeAmount(configuration.readTimeout)
        let limits = configuration.decoderLimits
        let handlerLogger = logger
        // `ClientBootstrap(group: eventLoop)` puts the channel on `eventLoop` itself.
        let handlerBox = NIOLoopBoundBox.makeEmptyBox(valueType: RedisChannelHandler.self, eventLoop: eventLoop)
        let outbox = RedisOutbox()

        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: sniName))
                    }
                    let handler = RedisChannelHandler(
                        handshake: handshake,
                        sendTimeout: sendTimeout,
                        readTimeout: readTimeout,
                        connectDeadline: connectDeadline,
                        decoderLimits: limits,
                        handshakePromise: handshakePromise,
                        outbox: outbox,
                        logger: handlerLogger,
                        onPush: onPush
                    )
                    handlerBox.value = handler
                    try sync.addHandler(handler)
                }
            }

        let channel: any Channel
        do {
            switch configuration.address.storage {
            case .tcp(let host, let port):
                bootstrap = bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1)
                channel = try await bootstrap.connect(host: host, port: port).get()
            case .unixSocket(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            // The channel never came up: the handler (if any) was never added to a live channel.
            handshakePromise.fail(error)
            throw Self.connectError(error, address: configuration.address)
        }
        do {
            let version = try await handshakePromise.futureResult.get()
            return RedisConnection(
                id: id, protocolVersion: version, address: configuration.address, channel: channel,
                handler: handlerBox, outbox: outbox, logger: logger
            )
        } catch {
            channel.close(promise: nil)
            throw RedisWireErrors.mapError(error, handshaking: true)
        }
    }

    static func connectError(_ error: any Error, address: RedisAddress) -> RedisClientError {
        if let error = error as? RedisClientError { return error }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return RedisClientError(.timeout, message: "connecting to \(address) timed out", underlying: error)
        }
        return RedisClientError(.connectionFailed, message: "connecting to \(address) failed", underlying: error)
    }

    /// Sends one command and returns its reply.
    ///
    /// - Throws: ``RedisClientError`` with code `serverError` for an error reply (its
    ///   ``RedisClientError/serverError`` holds the reply), or the connection's error.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        // No array of one command on the way in, none of one reply on the way out.
        let reply: RESPValue = try await withRedisContinuation { continuation in
            enqueue(RedisTask(commands: RedisCommands(command), reply: .one(continuation)))
        }
        return try reply.checked()
    }

    /// Sends several commands in one write and returns their replies, in order.
    ///
    /// Error replies are returned as ``RESPValue/error(_:)`` values, not thrown: the other
    /// commands of the pipeline ran. A lost connection or a timeout throws.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        return try await withRedisContinuation { continuation in
            enqueue(RedisTask(commands: RedisCommands(commands), reply: .many(continuation)))
        }
    }

    /// Hands a request to the event loop. Concurrent callers share the connection: their
    /// requests are queued in the ``outbox`` and written together, so a burst costs one
    /// wake-up and one write syscall instead of one each; while replies are awaited, the
    /// next read of replies writes them (no wake-up at all).
    func enqueue(_ task: RedisTask) {
        if outbox.append(task) {
            channel.eventLoop.execute(drainJob)
        }
    }

    /// The job that writes the outbox, made once (a closure made per job is an allocation).
    private static func makeDrainJob(
        handler: NIOLoopBoundBox<RedisChannelHandler?>, outbox: RedisOutbox
    ) -> @Sendable () -> Void {
        {
            if let handler = handler.value {
                handler.runDrainJob()
            } else {
                var error = RedisClientError(.connectionClosed, message: "the connection is closed")
                error.requestWasNotSent = true
                for task in outbox.jobStarted() { task.reply.resume(throwing: error) }
            }
        }
    }

    /// The number of requests waiting for the next batch (for tests).
    var pendingRequestCount: Int { outbox.count }

    /// Runs `commands` atomically in `MULTI` … `EXEC` (one write, one round trip) and returns
    /// `EXEC`'s replies, one per command; an element may be an error reply of that command.
    ///
    /// - Throws: ``RedisClientError`` `transactionAborted` when a command was rejected while
    ///   queued (`EXECABORT`) or a watched key changed (nil `EXEC`).
    public func transaction(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        try Self.execResult(await pipeline([.multi()] + commands + [.exec()]), count: commands.count)
    }

    static func execResult(_ replies: [RESPValue], count: Int) throws -> [RESPValue] {
        guard replies.count == count + 2 else {
            throw RedisClientError(.protocolError, message: "a transaction got \(replies.count) replies for \(count + 2) commands")
        }
        if case .error(let error) = replies[0] {
            throw RedisClientError(.serverError, message: "MULTI failed", serverError: error)
        }
        let queuedError = replies[1...count].lazy.compactMap(\.error).first
        switch replies[count + 1] {
        case .error(let error):
            throw RedisClientError(
                .transactionAborted, message: "the transaction was aborted",
                serverError: queuedError ?? error
            )
        case .array(nil), .null:
            throw RedisClientError(.transactionAborted, message: "the transaction was aborted (a watched key changed)")
        case .array(.some(let results)) where results.count == count:
            return results
        default:
            throw RedisClientError(.protocolError, message: "EXEC sent an unexpected reply")
        }
    }

    /// Closes the connection; requests in flight fail with `connectionClosed`.
    public func close() {
        channel.close(mode: .all, promise: nil)
    }

    /// Closes the connection and waits until it is closed.
    public func closeAndWait() async {
        close()
        try? await channel.closeFuture.get()
    }

    /// Whether the channel is still open.
    public var isActive: Bool { channel.isActive }

    /// Registers `closure` to run once the connection is closed.
    public func onClose(_ closure: @escaping @Sendable ((any Error)?) -> Void) {
        channel.closeFuture.whenComplete { _ in closure(nil) }
    }
}

extension RESPValue {
    /// The value itself, or a ``RedisClientError`` `serverError` if it is an error reply.
    public func checked() throws -> RESPValue {
        if case .error(let error) = self { throw RedisClientError.server(error) }
        return self
    }
}

/// The metadata keys of this client's log lines.
public enum RedisLoggingKeys {
    /// The connection's pool identifier.
    public static let connectionID = "redis_connection_id"
    /// The server's address.
    public static let address = "redis_address"
    /// The pool's name (the `pool` option).
    public static let pool = "redis_pool"
}
