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
/// `Reply` is whatever the handler completes with a request's replies (the caller's
/// continuation there, an integer in tests). The machine holds no channel; the
/// ``RedisChannelHandler`` feeds it events and runs the returned ``Action``.
struct RedisConnectionStateMachine<Reply> {
    /// What the handshake needs to know.
    struct Handshake: Sendable {
        var username: String?
        var password: String?
        var database: Int
        var clientName: String?
        var tls: Bool
        /// A connection that only subscribes (the Sentinel watcher): once ready, every value
        /// that is not the reply to a request is handed out as ``Action/push(_:)`` instead of
        /// being dropped (RESP3 pushes) or failing the connection (RESP2 `message` arrays,
        /// which look like replies and are told apart only by arriving with nothing in flight).
        var subscriber = false
    }

    /// One request waiting for its replies.
    struct Request {
        var id: Int
        /// How many replies complete the request.
        var expected: Int
        /// The replies so far, for a request of several commands.
        var replies: [RESPValue]
        /// `nil` for the handshake's own commands, whose replies the machine consumes.
        var reply: Reply?
        var deadline: NIODeadline
        var written: Bool
        /// The commands, kept only while the handshake holds the request back.
        var commands: RedisCommands
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
        /// Write these commands; call ``written(upTo:now:)`` when the bytes are out. A
        /// handshake step is flushed at once; a request goes into the current batch.
        case write(id: Int, commands: RedisCommands)
        /// Hand a request's replies to its caller (one reply per command).
        case succeed(Reply, RedisReplies)
        /// The handshake is done: the connection is ready, speaking this RESP version; write
        /// the requests that waited for it.
        case handshakeSucceeded(protocolVersion: Int, flush: [(id: Int, commands: RedisCommands)])
        /// The handshake failed: fail the connect, fail the requests, close the channel.
        case handshakeFailed(RedisClientError, [Reply])
        /// Fail these requests and close the channel.
        case failAndClose(RedisClientError, [Reply])
        /// Fail these requests (the channel is closed already, or the request was never sent).
        case fail(RedisClientError, [Reply])
        /// Close the channel.
        case close
        /// An out-of-band value arrived on a ``Handshake/subscriber`` connection (a pub/sub
        /// message): hand it to the connection's push handler.
        case push(RESPValue)
    }

    private(set) var state: State = .initialized
    private(set) var protocolVersion = 3
    private let handshake: Handshake
    private let sendTimeout: TimeAmount
    private let readTimeout: TimeAmount
    private var inFlight = CircularBuffer<Request>(initialCapacity: 16)
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

    /// A caller wants `commands` sent; `reply` gets one reply per command.
    mutating func send(_ commands: RedisCommands, reply: Reply, now: NIODeadline) -> Action {
        switch state {
        case .ready:
            let id = makeID()
            inFlight.append(
                Request(
                    id: id, expected: commands.count, replies: [], reply: reply,
                    deadline: now + sendTimeout, written: false, commands: []
                )
            )
            return .write(id: id, commands: commands)
        case .initialized, .waitingForTLS, .hello, .auth, .select:
            queuedDuringHandshake.append(
                Request(
                    id: makeID(), expected: commands.count, replies: [], reply: reply,
                    deadline: now + sendTimeout, written: false, commands: commands
                )
            )
            return .none
        case .closing, .closed:
            var error = RedisClientError(.connectionClosed, message: "the connection is closed")
            error.requestWasNotSent = true
            return .fail(error, [reply])
        }
    }

    /// The bytes of every request up to `id` (inclusive) were written to the socket: their
    /// read timeout starts.
    mutating func written(upTo id: Int, now: NIODeadline) {
        // Writes complete in order: walk back from the newest request to the first one
        // already marked.
        var index = inFlight.endIndex
        while index > inFlight.startIndex {
            index = inFlight.index(before: index)
            guard inFlight[index].id <= id else { continue }
            if inFlight[index].written { return }
            inFlight[index].written = true
            // The handshake's own commands are bounded by the connect timeout instead.
            if inFlight[index].reply != nil {
                inFlight[index].deadline = now + readTimeout
            }
        }
    }

    /// A value arrived.
    mutating func received(_ value: RESPValue, now: NIODeadline) -> Action {
        var value = value
        if case .push(let elements) = value {
            // Out-of-band (RESP3 pub/sub, client tracking): never the reply to a request,
            // except the confirmation of a subscription, which RESP3 also sends as a push.
            guard handshake.subscriber, case .ready = state else { return .none }
            guard !inFlight.isEmpty, Self.isSubscriptionConfirmation(elements) else { return .push(value) }
            value = .array(elements)
        }
        switch state {
        case .ready:
            guard !inFlight.isEmpty else {
                if handshake.subscriber {
                    // RESP2 pub/sub: a `message` array with no request waiting.
                    return .push(value)
                }
                state = .closing
                return .failAndClose(
                    RedisClientError(.protocolError, message: "the server sent a reply no request was waiting for"),
                    []
                )
            }
            let head = inFlight.startIndex
            if inFlight[head].expected == 1 && inFlight[head].replies.isEmpty {
                // The common case: one command, one reply, no array kept in between.
                let request = inFlight.removeFirst()
                return request.reply.map { .succeed($0, RedisReplies(value)) } ?? .none
            }
            inFlight[head].replies.append(value)
            guard inFlight[head].replies.count == inFlight[head].expected else { return .none }
            let request = inFlight.removeFirst()
            return request.reply.map { .succeed($0, RedisReplies(request.replies)) } ?? .none

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
                return failHandshake(RedisWireErrors.handshakeError(error))
            }
            protocolVersion = 3
            return afterAuthentication(now: now)

        case .auth:
            _ = inFlight.popFirst()
            if case .error(let error) = value {
                return failHandshake(RedisWireErrors.handshakeError(error))
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

        case .initialized, .waitingForTLS:
            state = .closing
            return .failAndClose(
                RedisClientError(.protocolError, message: "the server sent a value before the handshake"),
                takeAllReplies()
            )

        case .closing, .closed:
            return .none
        }
    }

    /// The timer of the oldest request fired (it may fire early: nothing happens then).
    mutating func timerFired(now: NIODeadline) -> Action {
        guard let head = inFlight.first, head.deadline <= now else { return .none }
        let what = head.written ? "no reply within the read timeout" : "the command could not be sent within the send timeout"
        let error = RedisClientError(.timeout, message: what)
        switch state {
        case .hello, .auth, .select, .waitingForTLS, .initialized:
            return failHandshake(RedisClientError(.timeout, message: "the handshake did not finish in time"))
        case .ready:
            state = .closing
            return .failAndClose(error, takeAllReplies())
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

    /// An error travelled up the pipeline (I/O, TLS, decoding), or a write failed.
    mutating func errorCaught(_ error: any Error) -> Action {
        let typed = RedisWireErrors.mapError(error, handshaking: !isReady)
        switch state {
        case .initialized, .waitingForTLS, .hello, .auth, .select:
            return failHandshake(typed)
        case .ready:
            state = .closing
            return .failAndClose(typed, takeAllReplies())
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
                takeAllReplies()
            )
        case .ready, .closing:
            let replies = takeAllReplies()
            return replies.isEmpty ? .none : .fail(error, replies)
        case .closed:
            return .none
        }
    }

    // MARK: helpers

    /// Whether a push is the reply to `SUBSCRIBE`/`PSUBSCRIBE`/`UNSUBSCRIBE`/`PUNSUBSCRIBE`.
    static func isSubscriptionConfirmation(_ elements: [RESPValue]) -> Bool {
        switch elements.first?.string?.lowercased() {
        case "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ssubscribe", "sunsubscribe": return true
        default: return false
        }
    }

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
        // Handshake replies are consumed by the state, not by a caller: no reply; the
        // connect timeout (armed by the handler) bounds the handshake, not the read timeout.
        let id = makeID()
        inFlight.append(
            Request(
                id: id, expected: 1, replies: [], reply: nil, deadline: .distantFuture, written: false, commands: []
            )
        )
        return .write(id: id, commands: RedisCommands(command))
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
        var flush: [(id: Int, commands: RedisCommands)] = []
        flush.reserveCapacity(queued.count)
        for var request in queued {
            flush.append((request.id, request.commands))
            request.commands = []
            inFlight.append(request)
        }
        return .handshakeSucceeded(protocolVersion: protocolVersion, flush: flush)
    }

    private mutating func failHandshake(_ error: RedisClientError) -> Action {
        state = .closing
        return .handshakeFailed(error, takeAllReplies())
    }

    private mutating func takeAllReplies() -> [Reply] {
        var replies: [Reply] = []
        replies.reserveCapacity(inFlight.count + queuedDuringHandshake.count)
        while let request = inFlight.popFirst() {
            if let reply = request.reply { replies.append(reply) }
        }
        replies += queuedDuringHandshake.compactMap(\.reply)
        queuedDuringHandshake = []
        return replies
    }
}

/// The error mapping of the connection layer, independent of the machine's reply type.
enum RedisWireErrors {
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
