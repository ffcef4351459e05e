import NIOCore

/// The life of one Redis connection as a pure value: events in, actions out.
///
///     connecting → (TLS handshake) → HELLO 3 [AUTH] → (RESP2 fallback: AUTH) → (SELECT db) → ready → closed
///
/// In `ready`, requests are written as they come and wait in a FIFO for their replies (Redis
/// answers in order), so any number of requests can be in flight on one connection. Each
/// request carries a deadline: `sendTimeout` until its bytes are written, then `readTimeout`;
/// the channel handler arms one timer for the oldest request's deadline.
///
/// The machine holds no channel; the ``RedisChannelHandler`` feeds it events and runs the
/// returned ``Action``.
struct RedisConnectionStateMachine {
    /// What the handshake needs to know.
    struct Handshake: Sendable {
        var username: String?
        var password: String?
        var database: Int
        var clientName: String?
        var tls: Bool
    }

    /// One request waiting for its replies.
    struct Request {
        var id: Int
        var commands: [RedisCommand]
        var replies: [RESPValue]
        /// `nil` for the handshake's own commands, whose replies the machine consumes.
        var promise: EventLoopPromise<[RESPValue]>?
        var deadline: NIODeadline
        var written: Bool
    }

    enum State {
        case initialized
        case waitingForTLS
        case hello
        case auth
        case select
        case ready
        case closing
        case closed
    }

    /// What the handler must do.
    enum Action {
        case none
        /// Write (and flush) these commands; call ``written(id:now:)`` when the bytes are out.
        case write(id: Int, commands: [RedisCommand])
        /// Write several requests at once (those queued during the handshake).
        case writeMany([(id: Int, commands: [RedisCommand])])
        /// Hand the replies to the caller.
        case succeed(EventLoopPromise<[RESPValue]>, [RESPValue])
        /// The handshake is done: the connection is ready, speaking this RESP version.
        case handshakeSucceeded(protocolVersion: Int, flush: [(id: Int, commands: [RedisCommand])])
        /// The handshake failed: fail the connect, fail the requests, close the channel.
        case handshakeFailed(RedisClientError, [EventLoopPromise<[RESPValue]>])
        /// Fail these requests and close the channel.
        case failAndClose(RedisClientError, [EventLoopPromise<[RESPValue]>])
        /// Fail these requests (the channel is closed already).
        case fail(RedisClientError, [EventLoopPromise<[RESPValue]>])
        /// Close the channel.
        case close
    }

    private(set) var state: State = .initialized
    private(set) var protocolVersion = 3
    private let handshake: Handshake
    private let sendTimeout: TimeAmount
    private let readTimeout: TimeAmount
    private var inFlight = CircularBuffer<Request>()
    private var queuedDuringHandshake: [Request] = []
    private var nextID = 0

    init(handshake: Handshake, sendTimeout: TimeAmount, readTimeout: TimeAmount) {
        self.handshake = handshake
        self.sendTimeout = sendTimeout
        self.readTimeout = readTimeout
    }

    /// The deadline of the oldest request in flight, if any (handshake steps have none of their own).
    var nextDeadline: NIODeadline? {
        guard let deadline = inFlight.first?.deadline, deadline != .distantFuture else { return nil }
        return deadline
    }

    /// The number of requests written and awaiting replies.
    var inFlightCount: Int { inFlight.count }

    var isReady: Bool {
        if case .ready = state { return true }
        return false
    }

    // MARK: events

    /// The TCP (or unix) connection is up.
    mutating func connected(now: NIODeadline) -> Action {
        guard case .initialized = state else { return .none }
        if handshake.tls {
            state = .waitingForTLS
            return .none
        }
        return sendHello(now: now)
    }

    /// The TLS handshake is done.
    mutating func tlsEstablished(now: NIODeadline) -> Action {
        guard case .waitingForTLS = state else { return .none }
        return sendHello(now: now)
    }

    /// A caller wants `commands` sent; `promise` gets one reply per command.
    mutating func send(_ commands: [RedisCommand], promise: EventLoopPromise<[RESPValue]>, now: NIODeadline) -> Action {
        let id = makeID()
        let request = Request(
            id: id, commands: commands, replies: [], promise: promise,
            deadline: now + sendTimeout, written: false
        )
        switch state {
        case .ready:
            inFlight.append(request)
            return .write(id: id, commands: commands)
        case .initialized, .waitingForTLS, .hello, .auth, .select:
            queuedDuringHandshake.append(request)
            return .none
        case .closing, .closed:
            var error = RedisClientError(.connectionClosed, message: "the connection is closed")
            error.requestWasNotSent = true
            return .fail(error, [promise])
        }
    }

    /// The bytes of request `id` were written to the socket: its read timeout starts.
    mutating func written(id: Int, now: NIODeadline) {
        // Requests complete in order; the written one is usually near the end.
        var index = inFlight.endIndex
        while index > inFlight.startIndex {
            index = inFlight.index(before: index)
            if inFlight[index].id == id {
                inFlight[index].written = true
                // The handshake's own commands are bounded by the connect timeout instead.
                if inFlight[index].promise != nil {
                    inFlight[index].deadline = now + readTimeout
                }
                return
            }
        }
    }

    /// A value arrived.
    mutating func received(_ value: RESPValue, now: NIODeadline) -> Action {
        if case .push = value {
            // Out-of-band (RESP3 pub/sub, client tracking): never the reply to a request.
            return .none
        }
        switch state {
        case .hello:
            _ = inFlight.popFirst()
            if case .error(let error) = value {
                let prefix = error.prefix
                if prefix == "NOPROTO" || (prefix == "ERR" && error.message.lowercased().contains("unknown command")) {
                    // A server before Redis 6 (or one without RESP3): RESP2 with AUTH.
                    protocolVersion = 2
                    if let password = handshake.password {
                        state = .auth
                        return writeHandshakeStep(.auth(username: handshake.username, password: password), now: now)
                    }
                    return afterAuthentication(now: now)
                }
                return failHandshake(Self.handshakeError(error))
            }
            protocolVersion = 3
            return afterAuthentication(now: now)

        case .auth:
            _ = inFlight.popFirst()
            if case .error(let error) = value {
                return failHandshake(Self.handshakeError(error))
            }
            return afterAuthentication(now: now)

        case .select:
            _ = inFlight.popFirst()
            if case .error(let error) = value {
                return failHandshake(
                    RedisClientError(.serverError, message: "SELECT of the configured database failed", serverError: error)
                )
            }
            return ready()

        case .ready:
            guard var request = inFlight.popFirst() else {
                state = .closing
                return .failAndClose(
                    RedisClientError(.protocolError, message: "the server sent a reply no request was waiting for"),
                    []
                )
            }
            request.replies.append(value)
            if request.replies.count == request.commands.count, let promise = request.promise {
                return .succeed(promise, request.replies)
            }
            inFlight.prepend(request)
            return .none

        case .initialized, .waitingForTLS:
            state = .closing
            return .failAndClose(
                RedisClientError(.protocolError, message: "the server sent a value before the handshake"),
                takeAllPromises()
            )

        case .closing, .closed:
            return .none
        }
    }

    /// The timer of the oldest request fired.
    mutating func timerFired(now: NIODeadline) -> Action {
        guard let head = inFlight.first, head.deadline <= now else { return .none }
        let what = head.written ? "no reply within the read timeout" : "the command could not be sent within the send timeout"
        let error = RedisClientError(.timeout, message: what)
        switch state {
        case .hello, .auth, .select, .waitingForTLS, .initialized:
            return failHandshake(RedisClientError(.timeout, message: "the handshake did not finish in time"))
        case .ready:
            state = .closing
            return .failAndClose(error, takeAllPromises())
        case .closing, .closed:
            return .none
        }
    }

    /// The handshake step (TLS, HELLO, AUTH, SELECT) took longer than the connect timeout.
    mutating func connectTimeout() -> Action {
        switch state {
        case .initialized, .waitingForTLS, .hello, .auth, .select:
            return failHandshake(RedisClientError(.timeout, message: "the connection was not ready within the connect timeout"))
        case .ready, .closing, .closed:
            return .none
        }
    }

    /// An error travelled up the pipeline (I/O, TLS, decoding).
    mutating func errorCaught(_ error: any Error) -> Action {
        let typed = Self.mapError(error, handshaking: !isReady)
        switch state {
        case .initialized, .waitingForTLS, .hello, .auth, .select:
            return failHandshake(typed)
        case .ready:
            state = .closing
            return .failAndClose(typed, takeAllPromises())
        case .closing, .closed:
            return .none
        }
    }

    /// The owner asked to close the connection.
    mutating func closeRequested() -> Action {
        switch state {
        case .closing, .closed:
            return .none
        default:
            state = .closing
            return .close
        }
    }

    /// The channel is closed.
    mutating func channelInactive() -> Action {
        let previous = state
        state = .closed
        let error: RedisClientError
        if let partial = inFlight.first, let serverError = partial.replies.lazy.compactMap(\.error).first {
            // The server answered part of a pipeline with an error and then closed (e.g. a value
            // over proto-max-bulk-len): that error says more than "closed".
            error = .server(serverError)
        } else {
            error = RedisClientError(.connectionClosed, message: "the connection closed with requests in flight")
        }
        switch previous {
        case .initialized, .waitingForTLS, .hello, .auth, .select:
            return .handshakeFailed(
                RedisClientError(.connectionClosed, message: "the connection closed during the handshake"),
                takeAllPromises()
            )
        case .ready, .closing:
            let promises = takeAllPromises()
            return promises.isEmpty ? .none : .fail(error, promises)
        case .closed:
            return .none
        }
    }

    // MARK: helpers

    private enum HandshakeStep {
        case hello
        case auth(username: String?, password: String)
        case select(Int)
    }

    private mutating func makeID() -> Int {
        nextID &+= 1
        return nextID
    }

    private mutating func sendHello(now: NIODeadline) -> Action {
        state = .hello
        return writeHandshakeStep(.hello, now: now)
    }

    private mutating func writeHandshakeStep(_ step: HandshakeStep, now: NIODeadline) -> Action {
        let command: RedisCommand
        switch step {
        case .hello:
            command = .hello(
                protocolVersion: 3, username: handshake.username, password: handshake.password,
                clientName: handshake.clientName
            )
        case .auth(let username, let password):
            command = .auth(username: username, password: password)
        case .select(let database):
            command = .select(database)
        }
        // Handshake replies are consumed by the state, not by a caller: no promise; the
        // connect timeout (armed by the handler) bounds the handshake, not the read timeout.
        let id = makeID()
        inFlight.append(
            Request(id: id, commands: [command], replies: [], promise: nil, deadline: .distantFuture, written: false)
        )
        return .write(id: id, commands: [command])
    }

    private mutating func afterAuthentication(now: NIODeadline) -> Action {
        if handshake.database != 0 {
            state = .select
            return writeHandshakeStep(.select(handshake.database), now: now)
        }
        return ready()
    }

    private mutating func ready() -> Action {
        state = .ready
        let queued = queuedDuringHandshake
        queuedDuringHandshake = []
        for request in queued {
            inFlight.append(request)
        }
        return .handshakeSucceeded(protocolVersion: protocolVersion, flush: queued.map { ($0.id, $0.commands) })
    }

    private mutating func failHandshake(_ error: RedisClientError) -> Action {
        state = .closing
        return .handshakeFailed(error, takeAllPromises())
    }

    private mutating func takeAllPromises() -> [EventLoopPromise<[RESPValue]>] {
        var promises: [EventLoopPromise<[RESPValue]>] = []
        while let request = inFlight.popFirst() {
            if let promise = request.promise { promises.append(promise) }
        }
        promises += queuedDuringHandshake.compactMap(\.promise)
        queuedDuringHandshake = []
        return promises
    }

    static func handshakeError(_ error: RESPError) -> RedisClientError {
        switch error.prefix {
        case "WRONGPASS", "NOAUTH", "NOPERM", "INVALIDPASSWORD":
            return RedisClientError(.authenticationFailed, message: "the server refused the credentials", serverError: error)
        case "ERR" where error.message.lowercased().contains("password") || error.message.contains("AUTH"):
            return RedisClientError(.authenticationFailed, message: "the server refused the credentials", serverError: error)
        default:
            return RedisClientError(.serverError, message: "the handshake failed", serverError: error)
        }
    }

    static func mapError(_ error: any Error, handshaking: Bool) -> RedisClientError {
        if let error = error as? RedisClientError { return error }
        if let error = error as? RESPDecodingError {
            return RedisClientError(.protocolError, message: "the server sent bytes that are not RESP (\(error.code))", underlying: error)
        }
        let name = String(reflecting: type(of: error))
        if name.contains("NIOSSL") || name.contains("BoringSSL") {
            return RedisClientError(.tls, message: "TLS failed", underlying: error)
        }
        if handshaking {
            return RedisClientError(.connectionFailed, message: "the connection failed during the handshake", underlying: error)
        }
        return RedisClientError(.connectionClosed, message: "the connection failed", underlying: error)
    }
}
