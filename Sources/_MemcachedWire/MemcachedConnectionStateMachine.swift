import NIOCore

/// The state of one memcached connection: which requests are in flight, in what order, and
/// what to do with each reply. A pure value with no channel inside: events in, actions out.
///
/// Requests are pipelined: any number may be in flight; replies come back in request order.
/// Every meta request carries an opaque token (`O…`); a reply whose token does not belong to
/// the oldest request in flight means the stream is out of step, and the connection is closed.
///
/// `Promise` is whatever the channel handler completes (an `EventLoopPromise` there, an
/// integer in tests).
public struct MemcachedConnectionStateMachine<Promise> {
    /// What the channel handler does next.
    public enum Action {
        /// Encode and write `request` with `opaque` as its `O` token.
        case write(MemcachedRequest, opaque: String?)
        /// Complete the request with a reply.
        case succeed(Promise, MemcachedResponse)
        /// Fail one request; the connection stays usable.
        case fail(Promise, MemcachedClientError)
        /// Close the channel and fail every request that was in flight.
        case closeAndFailAll([Promise], MemcachedClientError)
        /// The channel is closed already: fail every request that was in flight.
        case failAll([Promise], MemcachedClientError)
        /// Nothing to do.
        case none
    }

    private enum Expected {
        case meta(opaque: String)
        case noOp
        case stats
    }

    private struct Pending {
        var promise: Promise
        var expected: Expected
    }

    private enum State {
        case active
        case closing(MemcachedClientError)
        case closed(MemcachedClientError)
    }

    private var state: State = .active
    private var pending = CircularBuffer<Pending>(initialCapacity: 16)
    private var nextOpaque: UInt32 = 0

    /// Creates the machine of a connection that is open.
    public init() {}

    /// How many requests are in flight.
    public var inFlight: Int { pending.count }

    /// Whether the connection can take requests.
    public var isActive: Bool {
        if case .active = state { return true }
        return false
    }

    /// A request is to be sent.
    public mutating func sendRequested(_ request: MemcachedRequest, promise: Promise) -> Action {
        switch state {
        case .closing(let error), .closed(let error):
            return .fail(promise, MemcachedClientError(.connectionClosed, message: "the connection is closed", underlying: error))
        case .active:
            break
        }
        switch request {
        case .metaNoOp:
            pending.append(Pending(promise: promise, expected: .noOp))
            return .write(request, opaque: nil)
        case .stats:
            pending.append(Pending(promise: promise, expected: .stats))
            return .write(request, opaque: nil)
        case .metaGet, .metaSet, .metaDelete, .metaArithmetic:
            nextOpaque &+= 1
            let opaque = String(nextOpaque)
            pending.append(Pending(promise: promise, expected: .meta(opaque: opaque)))
            return .write(request, opaque: opaque)
        }
    }

    /// A reply arrived.
    public mutating func responseReceived(_ response: MemcachedResponse) -> Action {
        guard case .active = state else { return .none }
        guard let head = pending.first else {
            return closeAndFailAll(MemcachedClientError(.protocolError, message: "the server sent a reply no request was waiting for"))
        }
        switch (response, head.expected) {
        case (.error(let reply), _):
            pending.removeFirst()
            return .fail(head.promise, reply.clientError)
        case (.stats, .stats):
            pending.removeFirst()
            return .succeed(head.promise, response)
        case (.meta(let meta), .noOp) where meta.status == .noOp:
            pending.removeFirst()
            return .succeed(head.promise, response)
        case (.meta(let meta), .meta(let opaque)) where meta.status != .noOp:
            if let received = meta.flags.opaque, received != opaque {
                return closeAndFailAll(MemcachedClientError(.protocolError, message: "a reply's opaque token does not match its request"))
            }
            pending.removeFirst()
            return .succeed(head.promise, response)
        default:
            return closeAndFailAll(MemcachedClientError(.protocolError, message: "the server sent a reply of the wrong kind"))
        }
    }

    /// No reply arrived within the read timeout while requests were in flight.
    public mutating func readTimedOut() -> Action {
        guard case .active = state, !pending.isEmpty else { return .none }
        return closeAndFailAll(MemcachedClientError(.timeout, message: "no reply from the server within the read timeout"))
    }

    /// Writes stayed blocked past the send timeout.
    public mutating func sendTimedOut() -> Action {
        guard case .active = state else { return .none }
        return closeAndFailAll(MemcachedClientError(.timeout, message: "could not send to the server within the send timeout"))
    }

    /// The pipeline reported an error (decoding, TLS, I/O).
    public mutating func errorCaught(_ error: MemcachedClientError) -> Action {
        guard case .active = state else { return .none }
        return closeAndFailAll(error)
    }

    /// The user asked to close the connection.
    public mutating func closeRequested() -> Action {
        guard case .active = state else { return .none }
        return closeAndFailAll(MemcachedClientError(.connectionClosed, message: "the connection was closed by the client"))
    }

    /// The channel closed.
    public mutating func channelInactive() -> Action {
        let error: MemcachedClientError
        switch state {
        case .closed:
            return .none
        case .closing(let reason):
            error = reason
        case .active:
            error = MemcachedClientError(.connectionClosed, message: "the server closed the connection")
        }
        state = .closed(error)
        let promises = pending.map(\.promise)
        pending.removeAll()
        return promises.isEmpty ? .none : .failAll(promises, error)
    }

    private mutating func closeAndFailAll(_ error: MemcachedClientError) -> Action {
        state = .closing(error)
        let promises = pending.map(\.promise)
        pending.removeAll()
        return .closeAndFailAll(promises, error)
    }
}

extension MemcachedConnectionStateMachine.Action: Equatable where Promise: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.write(let a, let oa), .write(let b, let ob)): a == b && oa == ob
        case (.succeed(let pa, let ra), .succeed(let pb, let rb)): pa == pb && ra == rb
        case (.fail(let pa, let ea), .fail(let pb, let eb)): pa == pb && ea.code == eb.code
        case (.closeAndFailAll(let pa, let ea), .closeAndFailAll(let pb, let eb)): pa == pb && ea.code == eb.code
        case (.failAll(let pa, let ea), .failAll(let pb, let eb)): pa == pb && ea.code == eb.code
        case (.none, .none): true
        default: false
        }
    }
}
