import NIOCore

/// A command of a connection.
public enum MySQLCommand: Sendable, Hashable {
    /// COM_QUERY (text protocol).
    case query(String)
    /// COM_STMT_PREPARE (once per connection, cached) + COM_STMT_EXECUTE (binary protocol).
    case execute(String, binds: [MySQLValue])
    /// COM_PING.
    case ping
}

/// What a command's result completes: the caller's continuation (resumed straight from the
/// channel handler, no future in between) or an event-loop promise. An unsafe continuation is
/// safe here: the state machine hands every task's promise out exactly once (completed,
/// failed or drained when the connection closes).
enum MySQLResultPromise: Sendable {
    case continuation(UnsafeContinuation<MySQLQueryResult, any Error>)
    case promise(EventLoopPromise<MySQLQueryResult>)

    func succeed(_ result: MySQLQueryResult) {
        switch self {
        case .continuation(let continuation): continuation.resume(returning: result)
        case .promise(let promise): promise.succeed(result)
        }
    }

    func fail(_ error: MySQLError) {
        switch self {
        case .continuation(let continuation): continuation.resume(throwing: error)
        case .promise(let promise): promise.fail(error)
        }
    }

    func complete(_ result: Result<MySQLQueryResult, MySQLError>) {
        switch result {
        case .success(let value): succeed(value)
        case .failure(let error): fail(error)
        }
    }
}

/// A command and what its result completes.
struct MySQLTask: Sendable {
    var command: MySQLCommand
    var promise: MySQLResultPromise

    init(command: MySQLCommand, promise: EventLoopPromise<MySQLQueryResult>) {
        self.command = command
        self.promise = .promise(promise)
    }

    init(command: MySQLCommand, continuation: UnsafeContinuation<MySQLQueryResult, any Error>) {
        self.command = command
        self.promise = .continuation(continuation)
    }
}

/// A prepared statement of the per-connection cache.
struct MySQLPreparedStatement: Sendable, Hashable {
    var id: UInt32
    var parameterCount: Int
    var columns: [MySQLColumn]
}

/// The state of one connection after the TCP connect, as a pure state machine: packets and
/// commands in, actions out. It holds the command queue and the cache of prepared statements.
///
/// Pipelining: with a `pipelineDepth` above 1, executes of cached statements are written while
/// earlier commands still wait for their replies (up to `pipelineDepth` commands on the wire);
/// the server answers in order, so the replies are read in the order the commands went out. A
/// command that needs a prepare (or any other kind of command) waits until nothing is on the
/// wire, and nothing is pipelined behind a prepare; an error reply fails only its own command.
struct MySQLConnectionStateMachine {
    /// A message to write and its sequence id.
    struct Outgoing: Sendable, Equatable {
        var message: MySQLClientMessage
        var sequenceID: UInt8
    }

    enum Action {
        case wait
        /// Write these messages (a command: arm the read timeout).
        case write([Outgoing])
        /// Write the SSLRequest, then add the TLS handler.
        case startTLS(Outgoing)
        /// Authenticated; then write (the first queued command, if any).
        case authenticated(MySQLHandshakeV10, then: [Outgoing])
        /// Complete a command, then write the next one.
        case complete(MySQLResultPromise, Result<MySQLQueryResult, MySQLError>, then: [Outgoing])
        /// Fail these commands (the connection stays usable).
        case failTasks([MySQLResultPromise], MySQLError, then: [Outgoing])
        /// Fail the connect (if not authenticated yet) and every command, and close the channel.
        case closeWithError(MySQLError, [MySQLResultPromise])
        /// COM_QUIT written: close the channel.
        case quitAndClose(Outgoing, [MySQLResultPromise])
    }

    struct ResultSetReader {
        enum Stage { case header, columns(remaining: Int), columnsEOF, rows }
        var binary: Bool
        var stage: Stage = .header
        var columns: [MySQLColumn] = []
        var rows: [MySQLRow] = []
        var columnCount = 0
        /// The SQL of the executed statement (its key in the cache), whose column definitions
        /// are refreshed when the server sends them.
        var statementSQL: String?
        /// The statement's cached column definitions, used when the server skips them
        /// (`MARIADB_CLIENT_CACHE_METADATA`).
        var cachedColumns: [MySQLColumn] = []
        /// Whether the server sent the column definitions of the current result set.
        var receivedColumns = false
    }

    struct PrepareReader {
        var sql: String
        var binds: [MySQLValue]
        var ok: MySQLPrepareOK?
        var parametersRemaining = 0
        var awaitingParametersEOF = false
        var columnsRemaining = 0
        var awaitingColumnsEOF = false
        var columns: [MySQLColumn] = []
    }

    enum Phase {
        case ping
        case resultSet(ResultSetReader)
        case preparing(PrepareReader)
    }

    enum State {
        case authenticating(MySQLAuthenticationStateMachine)
        case ready
        case running(MySQLTask, Phase)
        case closed
    }

    private(set) var state: State
    private var queue = CircularBuffer<MySQLTask>()
    /// Commands written after the running one (pipelined), in the order they went out; the
    /// running command is the state's.
    private var pipelined = CircularBuffer<(task: MySQLTask, phase: Phase)>()
    /// The most commands on the wire at once (1: no pipelining).
    let pipelineDepth: Int
    private var cache: [String: MySQLPreparedStatement] = [:]
    private var cacheOrder: [String] = []
    /// Whether `MARIADB_CLIENT_CACHE_METADATA` was negotiated: the column count of a binary
    /// result set then says whether the column definitions follow.
    private(set) var cachesMetadata = false
    let maxPacketSize: Int
    let statementCacheCapacity: Int

    init(
        authentication: MySQLAuthenticationStateMachine, maxPacketSize: Int, statementCacheCapacity: Int = 128, pipelineDepth: Int = 1
    ) {
        self.state = .authenticating(authentication)
        self.maxPacketSize = maxPacketSize
        self.statementCacheCapacity = max(1, statementCacheCapacity)
        self.pipelineDepth = max(1, pipelineDepth)
    }

    /// The number of commands written whose replies have not been read yet.
    var commandsOnTheWire: Int {
        if case .running = state { return 1 + pipelined.count }
        return 0
    }

    /// The number of prepared statements cached.
    var cachedStatementCount: Int { cache.count }

    // MARK: - events

    mutating func packetReceived(_ packet: MySQLPacket, greeting isFirst: Bool) -> Action {
        switch state {
        case .authenticating(var auth):
            let action = isFirst ? auth.greetingReceived(packet) : auth.authPacketReceived(packet)
            state = .authenticating(auth)
            return authAction(action)
        case .ready:
            return closeWithError(MySQLError(.protocolError, message: "unexpected packet while idle"))
        case .running(let task, let phase):
            return running(task, phase, packet)
        case .closed:
            return .wait
        }
    }

    mutating func tlsEstablished() -> Action {
        guard case .authenticating(var auth) = state else {
            return closeWithError(MySQLError(.protocolError, message: "unexpected TLS handshake"))
        }
        let action = auth.tlsEstablished()
        state = .authenticating(auth)
        return authAction(action)
    }

    mutating func enqueue(_ task: MySQLTask) -> Action {
        switch state {
        case .closed:
            return .failTasks([task.promise], MySQLError(.connectionClosed, message: "the connection is closed"), then: [])
        case .ready:
            return startTask(task)
        case .running(_, let phase):
            if queue.isEmpty, let action = pipeline(task, behind: phase) { return action }
            queue.append(task)
            return .wait
        case .authenticating:
            queue.append(task)
            return .wait
        }
    }

    mutating func errorHappened(_ error: MySQLError) -> Action {
        closeWithError(error)
    }

    mutating func channelInactive() -> Action {
        closeWithError(MySQLError(.connectionClosed, message: "the connection closed"))
    }

    mutating func quit() -> Action {
        switch state {
        case .closed:
            return .wait
        default:
            let promises = drainPromises()
            state = .closed
            return .quitAndClose(Outgoing(message: .quit, sequenceID: 0), promises)
        }
    }

    // MARK: - commands

    private mutating func authAction(_ action: MySQLAuthenticationStateMachine.Action) -> Action {
        switch action {
        case .send(let message, let sequenceID):
            return .write([Outgoing(message: message, sequenceID: sequenceID)])
        case .sendSSLRequestAndStartTLS(let message, let sequenceID):
            return .startTLS(Outgoing(message: message, sequenceID: sequenceID))
        case .wait:
            return .wait
        case .fail(let error):
            return closeWithError(error)
        case .authenticated(let greeting):
            if case .authenticating(let auth) = state {
                cachesMetadata = auth.mariaDBCapabilities.contains(.cacheMetadata)
            }
            state = .ready
            let next = startNext()
            return .authenticated(greeting, then: next.writes)
        }
    }

    /// Starts the next queued command, and pipelines the queued commands that may follow it;
    /// commands refused before sending are returned to fail.
    private mutating func startNext() -> (writes: [Outgoing], failed: [(MySQLResultPromise, MySQLError)]) {
        var failed: [(MySQLResultPromise, MySQLError)] = []
        var writes: [Outgoing] = []
        while let task = queue.first {
            let action: Action
            switch state {
            case .ready:
                action = startTask(queue.removeFirst())
            case .running(_, let phase):
                guard let pipelinedAction = pipeline(task, behind: phase) else { return (writes, failed) }
                queue.removeFirst()
                action = pipelinedAction
            default:
                return (writes, failed)
            }
            switch action {
            case .write(let more): writes += more
            case .failTasks(let promises, let error, _): failed += promises.map { ($0, error) }
            default: break
            }
        }
        return (writes, failed)
    }

    /// Writes `task` behind the commands on the wire when it may be pipelined: an execute of a
    /// cached statement, with room in the pipeline, and no prepare on the wire (whose
    /// statement's execute must go out right after it). `nil`: it has to wait.
    private mutating func pipeline(_ task: MySQLTask, behind running: Phase) -> Action? {
        guard 1 + pipelined.count < pipelineDepth, case .execute(let sql, let binds) = task.command,
            let statement = cache[sql]
        else { return nil }
        if case .preparing = running { return nil }
        guard MySQLClientMessage.executePayloadSize(binds: binds) <= maxPacketSize else {
            return .failTasks([task.promise], Self.tooLarge(maxPacketSize), then: [])
        }
        if let error = Self.parameterMismatch(statement, binds) {
            return .failTasks([task.promise], error, then: [])
        }
        let (phase, command) = Self.executing(sql, statement, binds)
        pipelined.append((task, phase))
        return .write([command])
    }

    private mutating func startTask(_ task: MySQLTask) -> Action {
        switch task.command {
        case .ping:
            state = .running(task, .ping)
            return .write([Outgoing(message: .ping, sequenceID: 0)])
        case .query(let sql):
            guard 1 + sql.utf8.count <= maxPacketSize else {
                return .failTasks([task.promise], Self.tooLarge(maxPacketSize), then: [])
            }
            state = .running(task, .resultSet(ResultSetReader(binary: false)))
            return .write([Outgoing(message: .query(sql), sequenceID: 0)])
        case .execute(let sql, let binds):
            guard MySQLClientMessage.executePayloadSize(binds: binds) <= maxPacketSize, 1 + sql.utf8.count <= maxPacketSize else {
                return .failTasks([task.promise], Self.tooLarge(maxPacketSize), then: [])
            }
            if let statement = cache[sql] {
                if let error = Self.parameterMismatch(statement, binds) {
                    return .failTasks([task.promise], error, then: [])
                }
                return execute(task, sql: sql, statement: statement, binds: binds, before: [])
            }
            state = .running(task, .preparing(PrepareReader(sql: sql, binds: binds)))
            return .write([Outgoing(message: .prepare(sql), sequenceID: 0)])
        }
    }

    private mutating func execute(
        _ task: MySQLTask, sql: String, statement: MySQLPreparedStatement, binds: [MySQLValue], before: [Outgoing]
    ) -> Action {
        let (phase, command) = Self.executing(sql, statement, binds)
        state = .running(task, phase)
        // The common case (a cached statement, nothing before it) allocates one array, not two.
        return .write(before.isEmpty ? [command] : before + [command])
    }

    /// An execute of a cached statement: the reader of its reply and the command to write.
    private static func executing(
        _ sql: String, _ statement: MySQLPreparedStatement, _ binds: [MySQLValue]
    ) -> (phase: Phase, command: Outgoing) {
        var reader = ResultSetReader(binary: true)
        reader.statementSQL = sql
        reader.cachedColumns = statement.columns
        return (.resultSet(reader), Outgoing(message: .execute(statementID: statement.id, binds: binds), sequenceID: 0))
    }

    static func parameterMismatch(_ statement: MySQLPreparedStatement, _ binds: [MySQLValue]) -> MySQLError? {
        guard statement.parameterCount != binds.count else { return nil }
        return MySQLError(
            .invalidArgument, message: "the statement has \(statement.parameterCount) parameters but \(binds.count) values were bound")
    }

    static func tooLarge(_ limit: Int) -> MySQLError {
        MySQLError(.packetTooLarge, message: "the command exceeds the maximum packet size of \(limit) bytes; nothing was sent")
    }

    private mutating func finish(_ task: MySQLTask, _ result: Result<MySQLQueryResult, MySQLError>, before: [Outgoing] = []) -> Action {
        // The next reply is that of the oldest pipelined command, if any.
        if let next = pipelined.popFirst() {
            state = .running(next.task, next.phase)
        } else {
            state = .ready
        }
        let next = startNext()
        if !next.failed.isEmpty {
            // Rare: queued commands refused before sending. Fail them with the next write.
            for (promise, error) in next.failed { promise.fail(error) }
        }
        return .complete(task.promise, result, then: before.isEmpty ? next.writes : before + next.writes)
    }

    private mutating func running(_ task: MySQLTask, _ phase: Phase, _ packet: MySQLPacket) -> Action {
        do {
            switch phase {
            case .ping:
                if packet.isError { return finish(task, .failure(try Self.serverError(packet, "the ping"))) }
                let ok = try MySQLOKPacket.decode(packet.payload)
                return finish(task, .success(MySQLQueryResult(affectedRows: ok.affectedRows)))
            case .resultSet(var reader):
                // The reader leaves the state while it grows (no copy of its arrays on write);
                // the task stays, so an error still fails it.
                state = .running(task, .ping)
                return try readResultSet(task, &reader, packet)
            case .preparing(var reader):
                state = .running(task, .ping)
                return try readPrepare(task, &reader, packet)
            }
        } catch let error as MySQLError {
            return closeWithError(error)
        } catch {
            return closeWithError(MySQLError(.protocolError, message: "unreadable packet", underlying: error))
        }
    }

    private mutating func readResultSet(_ task: MySQLTask, _ reader: inout ResultSetReader, _ packet: MySQLPacket) throws -> Action {
        switch reader.stage {
        case .header:
            if packet.isError { return finish(task, .failure(try Self.serverError(packet, "the statement"))) }
            if packet.header == 0x00 {
                let ok = try MySQLOKPacket.decode(packet.payload)
                if ok.status.contains(.moreResultsExist) {
                    state = .running(task, .resultSet(reader))
                    return .wait
                }
                return finish(
                    task,
                    .success(
                        MySQLQueryResult(
                            columns: reader.columns, rows: reader.rows, affectedRows: ok.affectedRows, lastInsertID: ok.lastInsertID,
                            warnings: ok.warnings)))
            }
            if packet.header == 0xFB {
                throw MySQLError(.protocolError, message: "the server asked for LOCAL INFILE, which this client refuses")
            }
            var payload = packet.payload
            guard let count = payload.readLengthEncodedInteger(), count > 0, count < 4096 else {
                throw MySQLError(.protocolError, message: "malformed result set header")
            }
            reader.columnCount = Int(count)
            if reader.binary && cachesMetadata {
                // MARIADB_CLIENT_CACHE_METADATA: 0 = the definitions are skipped (unchanged).
                guard let follows = payload.readInteger(as: UInt8.self), follows <= 1 else {
                    throw MySQLError(.protocolError, message: "malformed result set header")
                }
                if follows == 0 {
                    // The cache's definitions, which a reply before this one may have refreshed.
                    if let sql = reader.statementSQL, let cached = cache[sql] { reader.cachedColumns = cached.columns }
                    guard reader.cachedColumns.count == reader.columnCount else {
                        throw MySQLError(
                            .protocolError, message: "the server skipped column definitions this connection has not cached")
                    }
                    reader.columns = reader.cachedColumns
                    reader.receivedColumns = false
                    reader.stage = .columnsEOF
                    break
                }
            }
            reader.columns = []
            reader.columns.reserveCapacity(Int(count))
            reader.receivedColumns = true
            reader.stage = .columns(remaining: Int(count))
        case .columns(let remaining):
            reader.columns.append(try MySQLColumn.decode(packet.payload))
            reader.stage = remaining == 1 ? .columnsEOF : .columns(remaining: remaining - 1)
        case .columnsEOF:
            guard packet.isEOF else { throw MySQLError(.protocolError, message: "expected EOF after the column definitions") }
            if reader.receivedColumns, let sql = reader.statementSQL, cache[sql] != nil {
                // The server sends them again after they changed (or on the first execute).
                cache[sql]!.columns = reader.columns
                reader.cachedColumns = reader.columns
            }
            reader.stage = .rows
        case .rows:
            if packet.isError { return finish(task, .failure(try Self.serverError(packet, "the statement"))) }
            if packet.isEOF {
                let eof = try MySQLEOFPacket.decode(packet.payload)
                if eof.status.contains(.moreResultsExist) {
                    reader.stage = .header
                    state = .running(task, .resultSet(reader))
                    return .wait
                }
                return finish(task, .success(MySQLQueryResult(columns: reader.columns, rows: reader.rows, warnings: eof.warnings)))
            }
            let row =
                reader.binary
                ? try MySQLRowDecoder.decodeBinary(packet.payload, columns: reader.columns)
                : try MySQLRowDecoder.decodeText(packet.payload, columns: reader.columns)
            reader.rows.append(row)
        }
        state = .running(task, .resultSet(reader))
        return .wait
    }

    private mutating func readPrepare(_ task: MySQLTask, _ reader: inout PrepareReader, _ packet: MySQLPacket) throws -> Action {
        if reader.ok == nil {
            if packet.isError { return finish(task, .failure(try Self.serverError(packet, "the statement"))) }
            let ok = try MySQLPrepareOK.decode(packet.payload)
            reader.ok = ok
            reader.parametersRemaining = Int(ok.parameterCount)
            reader.awaitingParametersEOF = ok.parameterCount > 0
            reader.columnsRemaining = Int(ok.columnCount)
            reader.awaitingColumnsEOF = ok.columnCount > 0
        } else if reader.parametersRemaining > 0 {
            reader.parametersRemaining -= 1
        } else if reader.awaitingParametersEOF {
            guard packet.isEOF else { throw MySQLError(.protocolError, message: "expected EOF after the parameters") }
            reader.awaitingParametersEOF = false
        } else if reader.columnsRemaining > 0 {
            reader.columns.append(try MySQLColumn.decode(packet.payload))
            reader.columnsRemaining -= 1
        } else if reader.awaitingColumnsEOF {
            guard packet.isEOF else { throw MySQLError(.protocolError, message: "expected EOF after the columns") }
            reader.awaitingColumnsEOF = false
        } else {
            throw MySQLError(.protocolError, message: "unexpected packet after a prepare")
        }
        guard let ok = reader.ok, reader.parametersRemaining == 0, !reader.awaitingParametersEOF, reader.columnsRemaining == 0,
            !reader.awaitingColumnsEOF
        else {
            state = .running(task, .preparing(reader))
            return .wait
        }
        let statement = MySQLPreparedStatement(id: ok.statementID, parameterCount: Int(ok.parameterCount), columns: reader.columns)
        var before: [Outgoing] = []
        if cache.count >= statementCacheCapacity, let oldest = cacheOrder.first {
            cacheOrder.removeFirst()
            if let evicted = cache.removeValue(forKey: oldest) {
                before.append(Outgoing(message: .closeStatement(evicted.id), sequenceID: 0))
            }
        }
        cache[reader.sql] = statement
        cacheOrder.append(reader.sql)
        if let error = Self.parameterMismatch(statement, reader.binds) {
            return finish(task, .failure(error), before: before)
        }
        return execute(task, sql: reader.sql, statement: statement, binds: reader.binds, before: before)
    }

    static func serverError(_ packet: MySQLPacket, _ what: String) throws -> MySQLError {
        MySQLError.server(try MySQLErrorPacket.decode(packet.payload), during: what)
    }

    private mutating func drainPromises() -> [MySQLResultPromise] {
        var promises: [MySQLResultPromise] = []
        if case .running(let task, _) = state { promises.append(task.promise) }
        while let entry = pipelined.popFirst() { promises.append(entry.task.promise) }
        while let task = queue.popFirst() { promises.append(task.promise) }
        return promises
    }

    private mutating func closeWithError(_ error: MySQLError) -> Action {
        if case .closed = state { return .wait }
        let promises = drainPromises()
        state = .closed
        return .closeWithError(error, promises)
    }
}
