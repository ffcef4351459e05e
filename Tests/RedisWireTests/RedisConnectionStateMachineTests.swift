import NIOCore
import NIOEmbedded
import Testing
@testable import _RedisWire

@Suite("Redis connection state machine")
struct RedisConnectionStateMachineTests {
    /// Replies are plain integers here: the request's number.
    typealias Machine = RedisConnectionStateMachine<Int>

    func machine(password: String? = nil, username: String? = nil, database: Int = 0, tls: Bool = false) -> Machine {
        RedisConnectionStateMachine(
            handshake: .init(username: username, password: password, database: database, clientName: nil, tls: tls),
            sendTimeout: .seconds(1), readTimeout: .seconds(2)
        )
    }

    func written(_ action: Machine.Action) -> [String]? {
        if case .write(_, let commands) = action { return commands.map { ([$0.name] + $0.arguments.map(\.text)).joined(separator: " ") } }
        return nil
    }

    func ok() -> RESPValue { .simpleString(ByteBuffer(string: "OK")) }
    func helloReply() -> RESPValue { .map([RESPMapEntry(key: .bulkString(ByteBuffer(string: "proto")), value: .integer(3))]) }

    @Test func helloWithAuthThenSelectThenReady() {
        var m = machine(password: "pw", username: "u", database: 3)
        #expect(written(m.connected(now: .now())) == ["HELLO 3 AUTH u pw"])
        #expect(written(m.received(helloReply(), now: .now())) == ["SELECT 3"])
        guard case .handshakeSucceeded(let version, let flushed) = m.received(ok(), now: .now()) else {
            Issue.record("not ready"); return
        }
        #expect(version == 3 && flushed.isEmpty && m.isReady)
    }

    @Test func tlsWaitsForTheTLSHandshake() {
        var m = machine(tls: true)
        guard case .none = m.connected(now: .now()) else { Issue.record("wrote before TLS"); return }
        #expect(written(m.tlsEstablished(now: .now())) == ["HELLO 3"])
    }

    @Test func fallsBackToRESP2AndAuthWhenHelloIsUnknown() {
        var m = machine(password: "pw")
        _ = m.connected(now: .now())
        let unknown = RESPValue.error(RESPError(message: "ERR unknown command 'HELLO', with args beginning with: '3'"))
        #expect(written(m.received(unknown, now: .now())) == ["AUTH pw"])
        guard case .handshakeSucceeded(let version, _) = m.received(ok(), now: .now()) else { Issue.record("not ready"); return }
        #expect(version == 2)
    }

    @Test func wrongPasswordFailsTheHandshakeWithAnAuthError() {
        var m = machine(password: "secret-pw")
        _ = m.connected(now: .now())
        let reply = RESPValue.error(RESPError(message: "WRONGPASS invalid username-password pair or user is disabled."))
        guard case .handshakeFailed(let error, _) = m.received(reply, now: .now()) else { Issue.record("no failure"); return }
        #expect(error.code == .authenticationFailed)
        #expect(!"\(error)".contains("secret-pw") && !String(reflecting: error).contains("secret-pw"))
    }

    @Test func requestsPipelineAndCompleteInOrder() throws {
        var m = machine()
        _ = m.connected(now: .now())
        _ = m.received(helloReply(), now: .now())
        #expect(written(m.send([.get("a"), .get("b")], reply: 1, now: .now())) == ["GET a", "GET b"])
        #expect(written(m.send([.ping()], reply: 2, now: .now())) == ["PING"])
        #expect(written(m.send([.get("c")], reply: 3, now: .now())) == ["GET c"])
        #expect(m.inFlightCount == 3)
        guard case .none = m.received(.bulkString(nil), now: .now()) else { Issue.record("completed early"); return }
        guard case .succeed(let first, let replies) = m.received(.integer(1), now: .now()) else { Issue.record("no reply"); return }
        #expect(first == 1 && replies == [.bulkString(nil), .integer(1)])
        // Pushes are never replies.
        guard case .none = m.received(.push([.integer(1)]), now: .now()) else { Issue.record("push consumed"); return }
        guard case .succeed(let second, let secondReplies) = m.received(ok(), now: .now()) else { Issue.record("no reply"); return }
        #expect(second == 2 && secondReplies == [ok()])
        guard case .succeed(let third, let thirdReplies) = m.received(.integer(7), now: .now()) else { Issue.record("no reply"); return }
        #expect(third == 3 && thirdReplies == [.integer(7)])
        #expect(m.inFlightCount == 0)
    }

    @Test func requestsDuringTheHandshakeWaitAndAreFlushedWhenReady() {
        var m = machine()
        guard case .none = m.send([.ping()], reply: 1, now: .now()) else { Issue.record("sent early"); return }
        _ = m.connected(now: .now())
        guard case .handshakeSucceeded(_, let flushed) = m.received(helloReply(), now: .now()) else { Issue.record("not ready"); return }
        #expect(flushed.count == 1 && flushed.first?.commands.map(\.name) == ["PING"])
        guard case .succeed(1, _) = m.received(.simpleString(ByteBuffer(string: "PONG")), now: .now()) else {
            Issue.record("the queued request got no reply"); return
        }
    }

    @Test func theReadTimeoutStartsWhenWrittenAndFailsEverything() {
        var m = machine()
        _ = m.connected(now: .now())
        _ = m.received(helloReply(), now: .now())
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        guard case .write(let id, _) = m.send([.ping()], reply: 1, now: start) else { Issue.record("no write"); return }
        guard case .write(let id2, _) = m.send([.ping()], reply: 2, now: start) else { Issue.record("no write"); return }
        guard case .write(let id3, _) = m.send([.ping()], reply: 3, now: start + .milliseconds(5)) else { Issue.record("no write"); return }
        #expect(m.nextDeadline == start + .seconds(1))  // the send timeout until written
        // One batch holding the first two is out: both read timeouts start, the third waits.
        m.written(upTo: id2, now: start + .milliseconds(10))
        #expect(id < id2 && id2 < id3)
        #expect(m.nextDeadline == start + .milliseconds(10) + .seconds(2))
        guard case .none = m.timerFired(now: start + .seconds(2)) else { Issue.record("fired early"); return }
        guard case .failAndClose(let error, let replies) = m.timerFired(now: start + .seconds(3)) else { Issue.record("no timeout"); return }
        #expect(error.code == .timeout && replies == [1, 2, 3])
        // After the timeout nothing more is sent on this connection.
        guard case .fail(let closed, let failed) = m.send([.ping()], reply: 4, now: start) else { Issue.record("sent on a closing connection"); return }
        #expect(closed.code == .connectionClosed && closed.requestWasNotSent && failed == [4])
    }

    @Test func anUnwrittenRequestTimesOutWithTheSendTimeout() {
        var m = machine()
        _ = m.connected(now: .now())
        _ = m.received(helloReply(), now: .now())
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        guard case .write(let id, _) = m.send([.ping()], reply: 1, now: start) else { Issue.record("no write"); return }
        guard case .write = m.send([.ping()], reply: 2, now: start) else { Issue.record("no write"); return }
        m.written(upTo: id, now: start)
        // The first is answered; the second was never written: its send timeout (1 s) counts.
        guard case .succeed(1, _) = m.received(ok(), now: start) else { Issue.record("no reply"); return }
        #expect(m.nextDeadline == start + .seconds(1))
        guard case .failAndClose(let error, let replies) = m.timerFired(now: start + .seconds(1)) else { Issue.record("no timeout"); return }
        #expect(error.code == .timeout && error.message.contains("send timeout") && replies == [2])
    }

    @Test func channelCloseFailsEveryRequestInFlight() {
        var m = machine()
        _ = m.connected(now: .now())
        _ = m.received(helloReply(), now: .now())
        _ = m.send([.ping()], reply: 1, now: .now())
        _ = m.send([.multi(), .set("k", "v"), .exec()], reply: 2, now: .now())
        _ = m.received(.simpleString(ByteBuffer(string: "PONG")), now: .now())
        guard case .fail(let error, let replies) = m.channelInactive() else { Issue.record("not failed"); return }
        #expect(error.code == .connectionClosed && replies == [2])
        guard case .fail(let closed, [3]) = m.send([.ping()], reply: 3, now: .now()) else { Issue.record("sent on a closed connection"); return }
        #expect(closed.requestWasNotSent)
    }

    @Test func anUnexpectedReplyIsAProtocolError() {
        var m = machine()
        _ = m.connected(now: .now())
        _ = m.received(helloReply(), now: .now())
        guard case .failAndClose(let error, _) = m.received(ok(), now: .now()) else { Issue.record("accepted"); return }
        #expect(error.code == .protocolError)
    }

    @Test func closingMidPipelineAfterAnErrorReportsTheServerError() {
        var m = machine()
        _ = m.connected(now: .now())
        _ = m.received(helloReply(), now: .now())
        _ = m.send([.multi(), .set("k", "v"), .exec()], reply: 1, now: .now())
        _ = m.received(ok(), now: .now())
        _ = m.received(.error(RESPError(message: "ERR Protocol error: invalid bulk length")), now: .now())
        guard case .fail(let error, let replies) = m.channelInactive() else { Issue.record("not failed"); return }
        #expect(error.code == .serverError && error.serverErrorPrefix == "ERR" && replies == [1])
    }

    @Test func transactionResults() throws {
        let queued = RESPValue.simpleString(ByteBuffer(string: "QUEUED"))
        let ok = ok()
        #expect(try RedisConnection.execResult([ok, queued, .array([.integer(1)])], count: 1) == [.integer(1)])
        #expect(throws: RedisClientError.self) { try RedisConnection.execResult([ok, queued, .array(nil)], count: 1) }
        do {
            _ = try RedisConnection.execResult(
                [ok, .error(RESPError(message: "ERR wrong number of arguments")), .error(RESPError(message: "EXECABORT Transaction discarded"))],
                count: 1)
            Issue.record("no error")
        } catch let error as RedisClientError {
            #expect(error.code == .transactionAborted && error.serverErrorPrefix == "ERR")
        }
    }
}
