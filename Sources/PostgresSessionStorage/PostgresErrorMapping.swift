import _ConnectionPoolModule
import NIOCore
import NIOSSL
import PostgresNIO
import SessionStorage

/// Maps postgres-nio's and the pool's errors onto ``SessionStoreError`` codes, keeping the
/// original as `underlying` and the server's message as `serverMessage`. Messages are written
/// here and never contain a value, a key or the password.
enum PostgresErrorMapping {
    /// Where the error happened: while connecting, or while a statement ran.
    enum Phase {
        case connect
        case query
    }

    static func error(
        _ code: SessionStoreError.Code,
        _ message: String,
        serverMessage: String? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) -> SessionStoreError {
        SessionStoreError(
            code,
            message: message,
            backend: PostgresSessionStore.backendName,
            serverMessage: serverMessage,
            underlying: underlying,
            file: file,
            line: line
        )
    }

    /// Maps an error of a statement that ended while the connection was `closed`: an error that
    /// is not the server's answer then means the connection went away (`connectionClosed`).
    static func map(_ error: any Error, phase: Phase, closed: Bool) -> SessionStoreError {
        let mapped = map(error, phase: phase)
        guard closed, mapped.serverMessage == nil, [.protocolError, .serverError].contains(mapped.code) else { return mapped }
        return self.error(.connectionClosed, "the connection closed while a statement was in flight", underlying: error)
    }

    static func map(_ error: any Error, phase: Phase) -> SessionStoreError {
        switch error {
        case let error as SessionStoreError:
            return error
        case let error as PSQLError:
            return map(error, phase: phase)
        case let error as PostgresError:
            // The prepared-statement API's errors.
            switch error {
            case .server(let message):
                return server(
                    state: message.fields[.sqlState] ?? "", message: message.fields[.message], phase: phase, underlying: error)
            case .connectionClosed:
                return self.error(.connectionClosed, "the connection closed while a statement was in flight", underlying: error)
            case .protocol:
                return self.error(.protocolError, "unexpected data from the server", underlying: error)
            }
        case let error as ConnectionPoolError:
            return poolError(error, lastConnectError: nil)
        case let error as PostgresDecodingError:
            return self.error(.protocolError, "a column could not be decoded", underlying: error)
        case is CancellationError:
            return self.error(.timeout, "the operation was cancelled", underlying: error)
        default:
            if isTLS(error) {
                return self.error(.tls, "the TLS handshake failed", underlying: error)
            }
            if case .connectTimeout = error as? ChannelError {
                return self.error(.timeout, "connecting took longer than the connect timeout", underlying: error)
            }
            switch phase {
            case .connect:
                return self.error(.connectionFailed, "could not connect to PostgreSQL", underlying: error)
            case .query where error is IOError || error is ChannelError:
                // The prepared-statement API passes the connection's I/O error on as it is.
                return self.error(.connectionClosed, "the connection failed while a statement was in flight", underlying: error)
            case .query:
                return self.error(.serverError, "the statement failed", underlying: error)
            }
        }
    }

    /// Decodes a row's columns, mapping a decoding failure to `protocolError`.
    static func decode<each Column: PostgresDecodable>(_ row: PostgresRow, as type: (repeat each Column).Type) throws -> (repeat each Column) {
        do {
            return try row.decode(type)
        } catch {
            throw map(error, phase: .query)
        }
    }

    /// Decodes a row's one column, mapping a decoding failure to `protocolError`.
    static func decode<Column: PostgresDecodable>(_ row: PostgresRow, as type: Column.Type) throws -> Column {
        do {
            return try row.decode(type)
        } catch {
            throw map(error, phase: .query)
        }
    }

    /// An integer result column (sent as text, see ``SQLStatements``).
    static func integer(_ text: String) throws -> Int {
        guard let value = Int(text) else {
            throw error(.protocolError, "an integer column could not be decoded")
        }
        return value
    }

    static func poolError(_ error: ConnectionPoolError, lastConnectError: (any Error)?) -> SessionStoreError {
        switch error {
        case .poolShutdown:
            return self.error(.shutdown, "the store's connection pool is shut down (is run() running?)", underlying: error)
        case .connectionCreationCircuitBreakerTripped:
            if let lastConnectError {
                var mapped = map(lastConnectError, phase: .connect)
                mapped.message += " (connection attempts keep failing)"
                return mapped
            }
            return self.error(.connectionFailed, "connection attempts keep failing", underlying: error)
        default:
            return self.error(.timeout, "the request for a connection was cancelled", underlying: error)
        }
    }

    private static func map(_ error: PSQLError, phase: Phase) -> SessionStoreError {
        let serverMessage = error.serverInfo?[.message]
        switch error.code {
        case .server:
            return server(state: error.serverInfo?[.sqlState] ?? "", message: serverMessage, phase: phase, underlying: error)
        case .sslUnsupported:
            return self.error(.tls, "TLS is required but the server does not offer it", underlying: error)
        case .failedToAddSSLHandler, .receivedUnencryptedDataAfterSSLRequest:
            return self.error(.tls, "the TLS handshake failed", underlying: error)
        case .unsupportedAuthMechanism, .authMechanismRequiresPassword, .saslError:
            return self.error(.authenticationFailed, "authentication failed (\(error.code))", underlying: error)
        case .messageDecodingFailure, .unexpectedBackendMessage, .invalidCommandTag:
            return self.error(.protocolError, "unexpected data from the server (\(error.code))", underlying: error)
        case .queryCancelled:
            return self.error(.timeout, "the statement was cancelled", underlying: error)
        case .tooManyParameters:
            return self.error(.invalidArgument, "too many parameters", underlying: error)
        case .poolClosed:
            return self.error(.shutdown, "the store's connection pool is shut down", underlying: error)
        case .connectionError:
            if let underlying = error.underlying {
                if isTLS(underlying) {
                    return self.error(.tls, "the TLS handshake failed", underlying: error)
                }
                if case .connectTimeout = underlying as? ChannelError {
                    return self.error(.timeout, "connecting took longer than the connect timeout", underlying: error)
                }
            }
            let code: SessionStoreError.Code = phase == .connect ? .connectionFailed : .connectionClosed
            return self.error(code, "the connection to PostgreSQL failed", underlying: error)
        default:
            // serverClosedConnection, clientClosedConnection, uncleanShutdown, …
            if let underlying = error.underlying, isTLS(underlying) {
                return self.error(.tls, "the TLS handshake failed", underlying: error)
            }
            if phase == .connect {
                return self.error(.connectionFailed, "the server closed the connection while connecting (\(error.code))", underlying: error)
            }
            return self.error(.connectionClosed, "the connection closed while a statement was in flight (\(error.code))", underlying: error)
        }
    }

    /// A server's error answer (SQLSTATE `state`).
    private static func server(state: String, message serverMessage: String?, phase: Phase, underlying error: any Error) -> SessionStoreError {
        switch state {
        case "28P01", "28000":
            return self.error(.authenticationFailed, "the server refused the credentials (SQLSTATE \(state))", serverMessage: serverMessage, underlying: error)
        case "57014":
            return self.error(.timeout, "the server cancelled the statement (SQLSTATE 57014)", serverMessage: serverMessage, underlying: error)
        case "57P01", "57P02", "57P03":
            let code: SessionStoreError.Code = phase == .connect ? .connectionFailed : .connectionClosed
            return self.error(code, "the server is shutting down or starting up (SQLSTATE \(state))", serverMessage: serverMessage, underlying: error)
        case "22021":
            return self.error(.invalidArgument, "the server rejected a character (SQLSTATE 22021)", serverMessage: serverMessage, underlying: error)
        default:
            if phase == .connect || state.hasPrefix("08") {
                return self.error(.connectionFailed, "the server refused the connection (SQLSTATE \(state))", serverMessage: serverMessage, underlying: error)
            }
            return self.error(.serverError, "the server answered with an error (SQLSTATE \(state))", serverMessage: serverMessage, underlying: error)
        }
    }

    private static func isTLS(_ error: any Error) -> Bool {
        error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError
    }
}
