import NIOCore
import NIOEmbedded
import Testing
@testable import _RedisWire

@Suite("Redis connection state machine")
struct RedisConnectionStateMachineTests {
    let loop = EmbeddedEventLoop()

    func machine(password: String? = nil, username: String? = nil, database: Int = 0, tls: Bool = false) -> RedisConnectionStateMachine {
        RedisConnectionStateMachine(
            handshake: .init(username: username, password: password, database: database, clientName: nil, tls: tls),
            sendTimeout: .seconds(1), readTimeout: .seconds(2)
        )
    }

    func written(_ action: RedisConnectionStateMachine.Action) -> [String]? {
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
        let p1 = loop.makePromise(of: [RESPValue].self)
        let p2 = loop.makePromise(of: [RESPValue].self)
        #expect(written(m.send([.get("a"), .get("b")], promise: p1, now: .now())) == ["GET a", "GET b"])
        #expect(written(m.send([.ping()], promise: p2, now: .now())) == ["PING"])
        #expect(m.inFlightCount == 2)
        guard case .none = m.received(.bulkString(nil), now: .now()) else { Issue.record("completed early"); return }
        guard case .succeed(let first, let replies) = m.received(.integer(1), now: .now()) else { Issue.record("no reply"); return }
        #expect(first.futureResult === p1.futureResult && replies == [.bulkString(nil), .integer(1)])
        // Pushes are never replies.
        guard case .none = m.received(.push([.integer(1)]), now: .now()) else { Issue.record("push consumed"); return }
        guard case .succeed(let second, _) = m.received(ok(), now: .now()) else { Issue.record("no reply"); return }
        #expect(second.futureResult === p2.futureResult)
        p1.succeed([]); p2.succeed([])
    }

    @Test func requestsDuringTheHandshakeWaitAndAreFlushedWhenReady() {
        var m = machine()
        let p = loop.makePromise(of: [RESPValue].self)
        guard case .none = m.send([.ping()], promise: p, now: .now()) else { Issue.record("sent early"); return }
        _ = m.connected(now: .now())
        guard case .handshakeSucceeded(_, let flushed) = m.received(helloReply(), now: .now()) else { Issue.record("not ready"); return }
        #expect(flushed.count == 1)
        p.succeed([])
    }

    @Test func theReadTimeoutStartsWhenWrittenAndFailsEverything() {
        var m = machine()
        _ = m.connected(now: .now())
        _ = m.received(helloReply(), now: .now())
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let p1 = loop.makePromise(of: [RESPValue].self)
        let p2 = loop.makePromise(of: [RESPValue].self)
        guard case .write(let id, _) = m.send([.ping()], promise: p1, now: start) else { Issue.record("no write"); return }
        _ = m.send([.ping()], promise: p2, now: start)
        #expect(m.nextDeadline == start + .seconds(1))  // the send timeout until written
        m.written(id: id, now: start + .milliseconds(10))
        #expect(m.nextDeadline == start + .milliseconds(10) + .seconds(2))
        guard case .none = m.timerFired(now: start + .seconds(2)) else { Issue.record("fired early"); return }
        guard case .failAndClose(let error, let promises) = m.timerFired(now: start + .seconds(3)) else { Issue.record("no timeout"); return }
        #expect(error.code == .timeout && promises.count == 2)
        for p in promises { p.fail(error) }
        // After the timeout nothing more is sent on this connection.
        let p3 = loop.makePromise(of: [RESPValue].self)
        guard case .fail(let closed, _) = m.send([.ping()], promise: p3, now: start) else { Issue.record("sent on a closing connection"); return }
        #expect(closed.code == .connectionClosed && closed.requestWasNotSent)
        p3.fail(closed)
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
        let p = loop.makePromise(of: [RESPValue].self)
        _ = m.send([.multi(), .set("k", "v"), .exec()], promise: p, now: .now())
        _ = m.received(ok(), now: .now())
        _ = m.received(.error(RESPError(message: "ERR Protocol error: invalid bulk length")), now: .now())
        guard case .fail(let error, let promises) = m.channelInactive() else { Issue.record("not failed"); return }
        #expect(error.code == .serverError && error.serverErrorPrefix == "ERR" && promises.count == 1)
        p.fail(error)
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
