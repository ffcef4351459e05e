import NIOCore
import NIOEmbedded
import Testing

@testable import _MySQLWire

@Suite("MySQL connection state machine")
struct ConnectionStateMachineTests {
    let loop = EmbeddedEventLoop()

    func authenticated(maxPacketSize: Int = 1 << 20, cache: Int = 2) -> MySQLConnectionStateMachine {
        var machine = MySQLConnectionStateMachine(
            authentication: .init(
                configuration: .init(
                    username: "u", password: "p", database: nil, collation: 11, maxPacketSize: UInt32(maxPacketSize), tls: .disable)),
            maxPacketSize: maxPacketSize, statementCacheCapacity: cache)
        _ = machine.packetReceived(ServerPacket.greeting(plugin: "mysql_native_password"), greeting: true)
        guard case .authenticated = machine.packetReceived(ServerPacket.ok(2), greeting: false) else {
            Issue.record("not authenticated")
            return machine
        }
        return machine
    }

    func writes(_ action: MySQLConnectionStateMachine.Action) -> [MySQLClientMessage] {
        switch action {
        case .write(let outgoing): return outgoing.map(\.message)
        case .complete(_, _, let then), .failTasks(_, _, let then): return then.map(\.message)
        default: return []
        }
    }

    @Test func textQueryResultSet() throws {
        var machine = authenticated()
        let promise = loop.makePromise(of: MySQLQueryResult.self)
        #expect(writes(machine.enqueue(MySQLTask(command: .query("SELECT 1"), promise: promise))) == [.query("SELECT 1")])
        #expect(machine.packetReceived(ServerPacket.packet(1, [1]), greeting: false).isWait)
        #expect(machine.packetReceived(ServerPacket.column(2, name: "a", type: .varString), greeting: false).isWait)
        #expect(machine.packetReceived(ServerPacket.eof(3), greeting: false).isWait)
        #expect(machine.packetReceived(ServerPacket.packet(4, [3, 0x61, 0x62, 0x63]), greeting: false).isWait)
        #expect(machine.packetReceived(ServerPacket.packet(5, [0xFB]), greeting: false).isWait)
        guard case .complete(_, .success(let result), let then) = machine.packetReceived(ServerPacket.eof(6), greeting: false) else {
            Issue.record("expected completion")
            return
        }
        #expect(then.isEmpty)
        #expect(result.rows.map(\.values) == [[.string("abc")], [.null]])
        promise.succeed(result)
    }

    @Test func executePreparesOnceAndCaches() throws {
        var machine = authenticated()
        let sql = "SELECT data FROM t WHERE sid = ?"
        let first = loop.makePromise(of: MySQLQueryResult.self)
        #expect(writes(machine.enqueue(MySQLTask(command: .execute(sql, binds: [.string("k")]), promise: first))) == [.prepare(sql)])
        // PREPARE OK: id 5, 1 column, 1 parameter.
        #expect(machine.packetReceived(ServerPacket.packet(1, [0, 5, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]), greeting: false).isWait)
        #expect(machine.packetReceived(ServerPacket.column(2, name: "?", type: .varString), greeting: false).isWait)
        #expect(machine.packetReceived(ServerPacket.eof(3), greeting: false).isWait)
        #expect(machine.packetReceived(ServerPacket.column(4, name: "data", type: .blob), greeting: false).isWait)
        let executed = machine.packetReceived(ServerPacket.eof(5), greeting: false)
        #expect(writes(executed) == [.execute(statementID: 5, binds: [.string("k")])])
        // Binary result: one row, value "v".
        _ = machine.packetReceived(ServerPacket.packet(1, [1]), greeting: false)
        _ = machine.packetReceived(ServerPacket.column(2, name: "data", type: .blob), greeting: false)
        _ = machine.packetReceived(ServerPacket.eof(3), greeting: false)
        _ = machine.packetReceived(ServerPacket.packet(4, [0, 0, 1, 0x76]), greeting: false)
        guard case .complete(_, .success(let result), _) = machine.packetReceived(ServerPacket.eof(5), greeting: false) else {
            Issue.record("expected completion")
            return
        }
        #expect(result.rows.first?.values == [.string("v")])
        first.succeed(result)
        // Second time: straight to EXECUTE.
        let second = loop.makePromise(of: MySQLQueryResult.self)
        #expect(
            writes(machine.enqueue(MySQLTask(command: .execute(sql, binds: [.string("x")]), promise: second)))
                == [.execute(statementID: 5, binds: [.string("x")])])
        _ = machine.packetReceived(ServerPacket.ok(1), greeting: false)
        second.succeed(.init())
        #expect(machine.cachedStatementCount == 1)
    }

    @Test func oversizedCommandIsRefusedBeforeSending() {
        var machine = authenticated(maxPacketSize: 1000)
        let promise = loop.makePromise(of: MySQLQueryResult.self)
        let action = machine.enqueue(MySQLTask(command: .execute("INSERT INTO t VALUES (?)", binds: [.string(String(repeating: "x", count: 1000))]), promise: promise))
        guard case .failTasks(_, let error, let then) = action else {
            Issue.record("expected the command to be refused")
            return
        }
        #expect(error.code == .packetTooLarge)
        #expect(then.isEmpty)
        promise.fail(error)
    }

    @Test func serverErrorKeepsTheConnectionUsable() {
        var machine = authenticated()
        let promise = loop.makePromise(of: MySQLQueryResult.self)
        _ = machine.enqueue(MySQLTask(command: .query("SELEC"), promise: promise))
        guard case .complete(_, .failure(let error), _) = machine.packetReceived(
            ServerPacket.error(1, code: 1064, state: "42000", message: "You have an error in your SQL syntax"), greeting: false)
        else {
            Issue.record("expected a failed command")
            return
        }
        #expect(error.code == .server)
        #expect(error.errorCode == 1064)
        #expect(error.sqlState == "42000")
        promise.fail(error)
        let next = loop.makePromise(of: MySQLQueryResult.self)
        #expect(writes(machine.enqueue(MySQLTask(command: .ping, promise: next))) == [.ping])
        next.succeed(.init())
    }

    @Test func evictionClosesTheOldestStatement() {
        var machine = authenticated(cache: 1)
        for (index, sql) in ["SELECT ?", "SELECT ?, 1"].enumerated() {
            let promise = loop.makePromise(of: MySQLQueryResult.self)
            _ = machine.enqueue(MySQLTask(command: .execute(sql, binds: [.int(1)]), promise: promise))
            _ = machine.packetReceived(ServerPacket.packet(1, [0, UInt8(index + 1), 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]), greeting: false)
            _ = machine.packetReceived(ServerPacket.column(2, name: "?", type: .longlong), greeting: false)
            let action = machine.packetReceived(ServerPacket.eof(3), greeting: false)
            if index == 0 {
                #expect(writes(action) == [.execute(statementID: 1, binds: [.int(1)])])
            } else {
                #expect(writes(action) == [.closeStatement(1), .execute(statementID: 2, binds: [.int(1)])])
            }
            _ = machine.packetReceived(ServerPacket.ok(1), greeting: false)
            promise.succeed(.init())
        }
    }
}

extension MySQLConnectionStateMachine.Action {
    var isWait: Bool {
        if case .wait = self { return true }
        return false
    }
}
