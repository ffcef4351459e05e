import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Runs the actions of ``MySQLConnectionStateMachine`` on a channel: splits the bytes into
/// packets (``MySQLPacketDecoder``, run here rather than in a `ByteToMessageHandler`, so no
/// packet is boxed into a `NIOAny`), writes packets, adds the TLS handler, arms the handshake,
/// send and read timeouts, completes promises and resumes the callers' continuations.
final class MySQLChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = MySQLTask
    typealias OutboundOut = ByteBuffer

    private var machine: MySQLConnectionStateMachine
    private var decoder: NIOSingleStepByteToMessageProcessor<MySQLPacketDecoder>
    private let encoder = MySQLPacketEncoder()
    private let connectPromise: EventLoopPromise<MySQLHandshakeV10>
    private let tls: (context: NIOSSLContext, serverHostname: String?)?
    private let timeouts: MySQLConnection.Configuration.Timeouts
    private let logger: Logger
    /// Whether the per-command trace is logged, read once: asking the logger per command copies
    /// its handler (an existential) for every statement.
    private let tracesCommands: Bool
    private var sawGreeting = false
    private var authenticated = false
    private var handshakeTimer: Scheduled<Void>?
    /// When the command on the wire must have its complete reply (`nil`: none on the wire).
    private var readDeadline: NIODeadline?
    /// One timer checks `readDeadline` (re-armed while commands follow each other), so a command
    /// schedules no timer of its own.
    private var readTimer: Scheduled<Void>?
    /// Armed while the socket does not take the buffered writes (the channel is not writable).
    private var sendTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    /// Commands written to the channel but not flushed yet (pipelining, see ``write(_:context:isCommand:)``).
    private var heldCommands = 0
    /// While `channelRead` runs: the commands its replies release are flushed once, at
    /// `channelReadComplete`, however many replies the read held.
    private var reading = false
    /// A pipelined command is flushed at once only while fewer than this many flushed commands
    /// wait for their replies; otherwise it is held and flushed with the others written
    /// meanwhile when the replies bring the server's backlog below it. The server still has
    /// that many commands to run when the held ones arrive, so it never waits for them, and
    /// one system call (and one read on the server) carries several commands.
    static let flushWatermark = 4

    init(
        machine: MySQLConnectionStateMachine,
        maximumPacketSize: Int,
        connectPromise: EventLoopPromise<MySQLHandshakeV10>,
        tls: (context: NIOSSLContext, serverHostname: String?)?,
        timeouts: MySQLConnection.Configuration.Timeouts,
        logger: Logger
    ) {
        self.machine = machine
        self.decoder = NIOSingleStepByteToMessageProcessor(MySQLPacketDecoder(maximumPacketSize: maximumPacketSize))
        self.connectPromise = connectPromise
        self.tls = tls
        self.timeouts = timeouts
        self.logger = logger
        self.tracesCommands = logger.logLevel <= .trace
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        handshakeTimer = scheduleTimeout(
            timeouts.connect, context: context,
            MySQLError(.timeout, message: "the handshake did not finish within the connect timeout"))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        handshakeTimer?.cancel()
        readTimer?.cancel()
        sendTimer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        reading = true
        defer { reading = false }
        do {
            try decoder.process(buffer: buffer) { packet in
                let first = !sawGreeting
                sawGreeting = true
                run(machine.packetReceived(packet, greeting: first), context: context)
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushHeldCommandsIfDue(context: context)
        context.fireChannelReadComplete()
    }

    /// Flushes the held commands when the server's backlog (flushed commands without a reply)
    /// is below ``flushWatermark``.
    private func flushHeldCommandsIfDue(context: ChannelHandlerContext) {
        guard heldCommands > 0, machine.commandsOnTheWire - heldCommands < Self.flushWatermark else { return }
        heldCommands = 0
        context.flush()
        armSendTimerIfBlocked(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        do {
            // A partial packet left at the end of the stream is an error (the server closed mid-packet).
            try decoder.finishProcessing(seenEOF: true) { packet in
                run(machine.packetReceived(packet, greeting: !sawGreeting), context: context)
            }
        } catch {
            errorCaught(context: context, error: error)
        }
        run(machine.channelInactive(), context: context)
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendTimer?.cancel()
            sendTimer = nil
        }
        context.fireChannelWritabilityChanged()
    }

    /// Queues a command (on the event loop): the path of ``MySQLConnection``, which needs no
    /// write promise of the pipeline.
    func enqueue(_ task: MySQLTask) {
        guard let context else {
            task.promise.fail(MySQLError(.connectionClosed, message: "the connection is closed"))
            return
        }
        run(machine.enqueue(task), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let typed: MySQLError
        if let error = error as? MySQLError {
            typed = error
        } else if error is NIOSSLError || error is BoringSSLError {
            typed = MySQLError(.tls, message: "the TLS handshake or session failed", underlying: error)
        } else {
            typed = MySQLError(.connectionClosed, message: "the connection failed", underlying: error)
        }
        run(machine.errorHappened(typed), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            logger.debug("mysql tls established")
            run(machine.tlsEstablished(), context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let task = unwrapOutboundIn(data)
        promise?.succeed()
        run(machine.enqueue(task), context: context)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, authenticated else {
            context.close(mode: mode, promise: promise)
            return
        }
        if case .quitAndClose(let quit, let promises) = machine.quit() {
            for p in promises { p.fail(MySQLError(.connectionClosed, message: "the connection was closed")) }
            writeQuitUnlessCommandsAreHeld(quit, context: context)
        }
        context.close(mode: mode, promise: promise)
    }

    // MARK: - actions

    private func run(_ action: MySQLConnectionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .wait:
            break
        case .write(let outgoing):
            write(outgoing, context: context, isCommand: authenticated)
        case .startTLS(let outgoing):
            guard let tls else {
                run(machine.errorHappened(MySQLError(.tls, message: "TLS requested without a TLS configuration")), context: context)
                return
            }
            write([outgoing], context: context, isCommand: false)
            do {
                let handler = try NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverHostname)
                try context.pipeline.syncOperations.addHandler(handler, position: .first)
            } catch {
                run(machine.errorHappened(MySQLError(.tls, message: "the TLS handler could not be created", underlying: error)), context: context)
            }
        case .authenticated(let greeting, let then):
            authenticated = true
            handshakeTimer?.cancel()
            handshakeTimer = nil
            logger.debug("mysql connection authenticated", metadata: ["mysql_server_version": .string(greeting.serverVersion)])
            connectPromise.succeed(greeting)
            write(then, context: context, isCommand: true)
        case .complete(let promise, let result, let then):
            // With pipelined commands still on the wire, the read timeout counts again from this
            // reply (progress); with none, the next write starts it.
            readDeadline = machine.commandsOnTheWire > 0 ? context.eventLoop.now + TimeAmount(timeouts.read) : nil
            // The next command first: it is on the wire before the caller resumes.
            write(then, context: context, isCommand: true)
            promise.complete(result)
        case .failTasks(let promises, let error, let then):
            write(then, context: context, isCommand: true)
            for promise in promises { promise.fail(error) }
        case .closeWithError(let error, let promises):
            readTimer?.cancel()
            sendTimer?.cancel()
            handshakeTimer?.cancel()
            logger.debug("mysql connection closing", metadata: ["mysql_error_code": .string(error.code.description)])
            connectPromise.fail(error)
            for promise in promises { promise.fail(error) }
            context.close(promise: nil)
        case .quitAndClose(let quit, let promises):
            for promise in promises { promise.fail(MySQLError(.connectionClosed, message: "the connection was closed")) }
            writeQuitUnlessCommandsAreHeld(quit, context: context)
            context.close(promise: nil)
        }
    }

    private func write(_ outgoing: [MySQLConnectionStateMachine.Outgoing], context: ChannelHandlerContext, isCommand: Bool) {
        guard !outgoing.isEmpty else { return }
        var capacity = 0
        for item in outgoing { capacity += 4 + Self.payloadSizeHint(item.message) }
        var buffer = context.channel.allocator.buffer(capacity: capacity)
        for item in outgoing {
            if tracesCommands {
                logger.trace("mysql send", metadata: ["mysql_command": .string(Self.name(item.message))])
            }
            encoder.encode(item.message, sequenceID: item.sequenceID, into: &buffer)
        }
        guard isCommand else {
            heldCommands = 0
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            return
        }
        // The read timeout counts from the write of the command to the end of its reply (with
        // commands already on the wire, from the last reply: a pipelined write does not move it).
        let deadline: NIODeadline
        if let current = readDeadline {
            deadline = current
        } else {
            deadline = context.eventLoop.now + TimeAmount(timeouts.read)
            readDeadline = deadline
        }
        if readTimer == nil { armReadTimer(deadline, context: context) }
        context.write(wrapOutboundOut(buffer), promise: nil)
        heldCommands += outgoing.count
        // Flushed now unless a read is running (its end flushes) or the server still has
        // enough commands to run (a later reply flushes): see `flushWatermark`.
        if !reading { flushHeldCommandsIfDue(context: context) }
    }

    /// Writes COM_QUIT before a close, unless commands are held (written, not flushed): their
    /// callers were just told the connection closed, so they must never reach the server, and
    /// a flush (the quit's) would send them. The close alone discards them.
    private func writeQuitUnlessCommandsAreHeld(_ quit: MySQLConnectionStateMachine.Outgoing, context: ChannelHandlerContext) {
        guard heldCommands == 0 else { return }
        write([quit], context: context, isCommand: false)
    }

    /// The send timeout runs while the socket does not take the writes: a flush that completes
    /// within the call (or leaves less than the channel's write buffer water mark pending,
    /// caught by the read timeout then) arms no timer.
    private func armSendTimerIfBlocked(context: ChannelHandlerContext) {
        if !context.channel.isWritable, sendTimer == nil {
            sendTimer = scheduleTimeout(timeouts.send, context: context, MySQLError(.timeout, message: "the send timeout passed"))
        }
    }

    /// Arms the one read timer for `deadline`; when it fires it fails the connection if the
    /// command on the wire then is past its deadline, re-arms for a later deadline, and stops
    /// when no command is on the wire.
    private func armReadTimer(_ deadline: NIODeadline, context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        readTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            let handler = handler.value
            handler.readTimer = nil
            guard let context = handler.context, let current = handler.readDeadline else { return }
            if current <= context.eventLoop.now {
                handler.run(handler.machine.errorHappened(MySQLError(.timeout, message: "the read timeout passed")), context: context)
            } else {
                handler.armReadTimer(current, context: context)
            }
        }
    }

    private func scheduleTimeout(_ duration: Duration, context: ChannelHandlerContext, _ error: MySQLError) -> Scheduled<Void> {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        return context.eventLoop.scheduleTask(in: .init(duration)) {
            let handler = handler.value
            guard let context = handler.context else { return }
            handler.run(handler.machine.errorHappened(error), context: context)
        }
    }

    /// The payload size to reserve for `message` (exact for COM_STMT_EXECUTE, the common
    /// command), so the buffer is allocated once.
    static func payloadSizeHint(_ message: MySQLClientMessage) -> Int {
        switch message {
        case .execute(_, let binds): return MySQLClientMessage.executePayloadSize(binds: binds)
        case .query(let sql), .prepare(let sql): return 1 + sql.utf8.count
        default: return 64
        }
    }

    static func name(_ message: MySQLClientMessage) -> String {
        switch message {
        case .sslRequest: return "SSLRequest"
        case .handshakeResponse: return "HandshakeResponse41"
        case .authData: return "AuthData"
        case .quit: return "COM_QUIT"
        case .query: return "COM_QUERY"
        case .ping: return "COM_PING"
        case .prepare: return "COM_STMT_PREPARE"
        case .execute: return "COM_STMT_EXECUTE"
        case .closeStatement: return "COM_STMT_CLOSE"
        case .resetStatement: return "COM_STMT_RESET"
        }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
