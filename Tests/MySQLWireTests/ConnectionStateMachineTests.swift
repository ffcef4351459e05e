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

    /// A machine logged in to MariaDB (the captured greeting, which offers
    /// MARIADB_CLIENT_CACHE_METADATA).
    func authenticatedToMariaDB() -> MySQLConnectionStateMachine {
        var machine = MySQLConnectionStateMachine(
            authentication: .init(
                configuration: .init(username: "u", password: "p", database: nil, collation: 11, maxPacketSize: 1 << 20, tls: .disable)),
            maxPacketSize: 1 << 20, statementCacheCapacity: 4)
        let greeting = MySQLPacket(sequenceID: 0, payload: ByteBuffer(hex: AuthenticationTests.capturedMariaDBGreeting))
        _ = machine.packetReceived(greeting, greeting: true)
        guard case .authenticated = machine.packetReceived(ServerPacket.ok(2), greeting: false) else {
            Issue.record("not authenticated")
            return machine
        }
        return machine
    }

    /// Runs one binary result set of one row through `machine`; returns the completion.
    func binaryResult(
        _ machine: inout MySQLConnectionStateMachine, header: [UInt8], columns: [MySQLPacket], row: [UInt8]
    ) -> MySQLConnectionStateMachine.Action {
        var sequence: UInt8 = 1
        var actions = [machine.packetReceived(ServerPacket.packet(sequence, header), greeting: false)]
        for column in columns {
            sequence += 1
            actions.append(machine.packetReceived(MySQLPacket(sequenceID: sequence, payload: column.payload), greeting: false))
        }
        for packet in [ServerPacket.eof(sequence + 1), ServerPacket.packet(sequence + 2, row)] {
            actions.append(machine.packetReceived(packet, greeting: false))
        }
        guard actions.allSatisfy(\.isWait) else { return actions.first { !$0.isWait }! }
        return machine.packetReceived(ServerPacket.eof(sequence + 3), greeting: false)
    }

    @Test func mariaDBSkippedColumnDefinitionsUseTheCachedOnes() throws {
        var machine = authenticatedToMariaDB()
        #expect(machine.cachesMetadata)
        let sql = "SELECT data FROM t WHERE sid = ?"
        let first = loop.makePromise(of: MySQLQueryResult.self)
        _ = machine.enqueue(MySQLTask(command: .execute(sql, binds: [.string("k")]), promise: first))
        // PREPARE OK: id 9, 1 column, 1 parameter; the column is named "data" at prepare time.
        _ = machine.packetReceived(ServerPacket.packet(1, [0, 9, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]), greeting: false)
        _ = machine.packetReceived(ServerPacket.column(2, name: "?", type: .varString), greeting: false)
        _ = machine.packetReceived(ServerPacket.eof(3), greeting: false)
        _ = machine.packetReceived(ServerPacket.column(4, name: "data", type: .blob), greeting: false)
        #expect(writes(machine.packetReceived(ServerPacket.eof(5), greeting: false)) == [.execute(statementID: 9, binds: [.string("k")])])

        // First execute: column count 1, metadata follows (1), a definition named "d2".
        let firstDone = binaryResult(
            &machine, header: [1, 1], columns: [ServerPacket.column(2, name: "d2", type: .blob)], row: [0, 0, 1, 0x76])
        guard case .complete(_, .success(let result), _) = firstDone else {
            Issue.record("expected completion, got \(firstDone)")
            return
        }
        #expect(result.columns.map(\.name) == ["d2"])
        #expect(result.rows.first?.values == [.string("v")])
        first.succeed(result)

        // Second execute: metadata skipped (0), no definition, straight to the EOF and the row;
        // the columns are those the first execute sent.
        let second = loop.makePromise(of: MySQLQueryResult.self)
        #expect(
            writes(machine.enqueue(MySQLTask(command: .execute(sql, binds: [.string("x")]), promise: second)))
                == [.execute(statementID: 9, binds: [.string("x")])])
        let secondDone = binaryResult(&machine, header: [1, 0], columns: [], row: [0, 0, 2, 0x77, 0x78])
        guard case .complete(_, .success(let skipped), _) = secondDone else {
            Issue.record("expected completion, got \(secondDone)")
            return
        }
        #expect(skipped.columns.map(\.name) == ["d2"])
        #expect(skipped.rows.first?[column: "d2"] == .string("wx"))
        second.succeed(skipped)

        // Skipped definitions whose count differs from the cached ones: a protocol error.
        let third = loop.makePromise(of: MySQLQueryResult.self)
        _ = machine.enqueue(MySQLTask(command: .execute(sql, binds: [.string("y")]), promise: third))
        guard case .closeWithError(let error, let promises) = machine.packetReceived(ServerPacket.packet(1, [2, 0]), greeting: false)
        else {
            Issue.record("expected the connection to close")
            return
        }
        #expect(error.code == .protocolError)
        #expect(promises.count == 1)
        third.fail(error)
    }

    @Test func mySQLResultSetHasNoMetadataFlag() throws {
        // Without the capability, the byte after the column count is not read as a flag: a
        // result set with 1 column sends its definition as always.
        var machine = authenticated()
        #expect(!machine.cachesMetadata)
        let sql = "SELECT ?"
        let promise = loop.makePromise(of: MySQLQueryResult.self)
        _ = machine.enqueue(MySQLTask(command: .execute(sql, binds: [.int(1)]), promise: promise))
        _ = machine.packetReceived(ServerPacket.packet(1, [0, 3, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]), greeting: false)
        _ = machine.packetReceived(ServerPacket.column(2, name: "?", type: .longlong), greeting: false)
        _ = machine.packetReceived(ServerPacket.eof(3), greeting: false)
        _ = machine.packetReceived(ServerPacket.column(4, name: "?", type: .longlong), greeting: false)
        _ = machine.packetReceived(ServerPacket.eof(5), greeting: false)
        let done = binaryResult(
            &machine, header: [1], columns: [ServerPacket.column(2, name: "n", type: .longlong)], row: [0, 0, 7, 0, 0, 0, 0, 0, 0, 0])
        guard case .complete(_, .success(let result), _) = done else {
            Issue.record("expected completion, got \(done)")
            return
        }
        #expect(result.rows.first?[column: "n"] == .int(7))
        promise.succeed(result)
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

    /// A machine with `depth` commands allowed on the wire and "UPDATE t SET a = ?" (statement
    /// 7: one parameter, no columns) prepared and cached.
    func pipelining(depth: Int) -> MySQLConnectionStateMachine {
        var machine = MySQLConnectionStateMachine(
            authentication: .init(
                configuration: .init(username: "u", password: "p", database: nil, collation: 11, maxPacketSize: 1 << 20, tls: .disable)),
            maxPacketSize: 1 << 20, statementCacheCapacity: 4, pipelineDepth: depth)
        _ = machine.packetReceived(ServerPacket.greeting(plugin: "mysql_native_password"), greeting: true)
        _ = machine.packetReceived(ServerPacket.ok(2), greeting: false)
        let promise = loop.makePromise(of: MySQLQueryResult.self)
        _ = machine.enqueue(MySQLTask(command: .execute("UPDATE t SET a = ?", binds: [.int(0)]), promise: promise))
        _ = machine.packetReceived(ServerPacket.packet(1, [0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]), greeting: false)
        _ = machine.packetReceived(ServerPacket.column(2, name: "?", type: .longlong), greeting: false)
        _ = machine.packetReceived(ServerPacket.eof(3), greeting: false)
        _ = machine.packetReceived(ServerPacket.ok(1), greeting: false)
        promise.succeed(.init())
        return machine
    }

    @Test func pipelinedExecutesGoOutTogetherAndCompleteInOrder() {
        var machine = pipelining(depth: 3)
        #expect(machine.commandsOnTheWire == 0)
        let promises = (0..<4).map { _ in loop.makePromise(of: MySQLQueryResult.self) }
        let update = "UPDATE t SET a = ?"
        var written: [[MySQLClientMessage]] = []
        for (index, promise) in promises.enumerated() {
            written.append(writes(machine.enqueue(MySQLTask(command: .execute(update, binds: [.int(Int64(index + 1))]), promise: promise))))
        }
        // Three on the wire at once (the depth), the fourth waits.
        #expect(written[0] == [.execute(statementID: 7, binds: [.int(1)])])
        #expect(written[1] == [.execute(statementID: 7, binds: [.int(2)])])
        #expect(written[2] == [.execute(statementID: 7, binds: [.int(3)])])
        #expect(written[3].isEmpty)
        #expect(machine.commandsOnTheWire == 3)

        // The first reply is an error: it fails the first command only, and the fourth goes out.
        let first = machine.packetReceived(ServerPacket.error(1, code: 1062, state: "23000", message: "Duplicate entry"), greeting: false)
        guard case .complete(_, .failure(let error), let then) = first else {
            Issue.record("expected the first command to fail, got \(first)")
            return
        }
        #expect(error.errorCode == 1062)
        #expect(then.map(\.message) == [.execute(statementID: 7, binds: [.int(4)])])
        promises[0].fail(error)
        // The others complete in the order they went out, each with its own reply.
        for (index, affected) in [(1, 2), (2, 3), (3, 4)] {
            let action = machine.packetReceived(ServerPacket.packet(1, [0, UInt8(affected), 0, 2, 0, 0, 0]), greeting: false)
            guard case .complete(_, .success(let result), let then) = action else {
                Issue.record("expected command \(index) to complete, got \(action)")
                return
            }
            #expect(result.affectedRows == UInt64(affected))
            #expect(then.isEmpty)
            promises[index].succeed(result)
        }
        #expect(machine.commandsOnTheWire == 0)
    }

    @Test func aPrepareWaitsForTheWireAndNothingFollowsIt() {
        var machine = pipelining(depth: 4)
        let update = "UPDATE t SET a = ?"
        let select = "SELECT ?"
        let a = loop.makePromise(of: MySQLQueryResult.self)
        let b = loop.makePromise(of: MySQLQueryResult.self)
        let c = loop.makePromise(of: MySQLQueryResult.self)
        #expect(writes(machine.enqueue(MySQLTask(command: .execute(update, binds: [.int(1)]), promise: a))).count == 1)
        // Not cached: waits, and what comes after it waits too (the order is kept).
        #expect(machine.enqueue(MySQLTask(command: .execute(select, binds: [.int(2)]), promise: b)).isWait)
        #expect(machine.enqueue(MySQLTask(command: .execute(update, binds: [.int(3)]), promise: c)).isWait)
        #expect(machine.commandsOnTheWire == 1)
        // The first reply: the prepare goes out, alone.
        let afterA = machine.packetReceived(ServerPacket.ok(1), greeting: false)
        #expect(writes(afterA) == [.prepare(select)])
        a.succeed(.init())
        // PREPARE OK (statement 8, one column, one parameter): the execute follows, then the
        // queued cached execute is pipelined behind it once its reply is read.
        _ = machine.packetReceived(ServerPacket.packet(1, [0, 8, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]), greeting: false)
        _ = machine.packetReceived(ServerPacket.column(2, name: "?", type: .longlong), greeting: false)
        _ = machine.packetReceived(ServerPacket.eof(3), greeting: false)
        _ = machine.packetReceived(ServerPacket.column(4, name: "?", type: .longlong), greeting: false)
        #expect(writes(machine.packetReceived(ServerPacket.eof(5), greeting: false)) == [.execute(statementID: 8, binds: [.int(2)])])
        #expect(machine.commandsOnTheWire == 1)
        _ = machine.packetReceived(ServerPacket.packet(1, [1]), greeting: false)
        _ = machine.packetReceived(ServerPacket.column(2, name: "?", type: .longlong), greeting: false)
        _ = machine.packetReceived(ServerPacket.eof(3), greeting: false)
        _ = machine.packetReceived(ServerPacket.packet(4, [0, 0, 2, 0, 0, 0, 0, 0, 0, 0]), greeting: false)
        let afterB = machine.packetReceived(ServerPacket.eof(5), greeting: false)
        guard case .complete(_, .success(let result), let then) = afterB else {
            Issue.record("expected the select to complete, got \(afterB)")
            return
        }
        #expect(result.rows.first?.values == [.int(2)])
        #expect(then.map(\.message) == [.execute(statementID: 7, binds: [.int(3)])])
        b.succeed(result)
        _ = machine.packetReceived(ServerPacket.ok(1), greeting: false)
        c.succeed(.init())
    }

    @Test func aClosedConnectionFailsEveryPipelinedCommand() {
        var machine = pipelining(depth: 8)
        let promises = (0..<5).map { _ in loop.makePromise(of: MySQLQueryResult.self) }
        for (index, promise) in promises.enumerated() {
            _ = machine.enqueue(MySQLTask(command: .execute("UPDATE t SET a = ?", binds: [.int(Int64(index))]), promise: promise))
        }
        #expect(machine.commandsOnTheWire == 5)
        guard case .closeWithError(let error, let failed) = machine.channelInactive() else {
            Issue.record("expected the connection to close")
            return
        }
        #expect(error.code == .connectionClosed)
        #expect(failed.count == 5)
        for promise in promises { promise.fail(error) }
        #expect(machine.commandsOnTheWire == 0)
    }
}

extension MySQLConnectionStateMachine.Action {
    var isWait: Bool {
        if case .wait = self { return true }
        return false
    }
}
