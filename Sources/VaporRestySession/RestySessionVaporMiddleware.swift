import RestySession
import Vapor

/// A Vapor middleware giving each request its session from the session core
/// (lua-resty-session's cookie format, encryption and timeouts) on any storage of this project.
///
/// The session (``Vapor/Request/restySession``) is opened lazily on first use; after the
/// handler it is saved only when it changed, touched or renewed when that is due, and the
/// `Set-Cookie` headers are added to the response (``RestySession/RequestSession/finish()``).
/// A handler that throws sends no session cookie.
///
///     let manager = try SessionManager(configuration: .init(secret: secret), storage: store)
///     app.middleware.use(RestySessionVaporMiddleware(manager: manager))
///     app.post("login") { request in
///         try await request.restySession.setSubject("alice")
///         return "hello"
///     }
public struct RestySessionVaporMiddleware: AsyncMiddleware {
    /// The session core the sessions come from.
    public let manager: SessionManager

    /// Creates the middleware.
    public init(manager: SessionManager) {
        self.manager = manager
    }

    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let session = RequestSession(manager: manager, request: Self.sessionRequest(request))
        request.storage[RequestSessionKey.self] = session
        let response = try await next.respond(to: request)
        for cookie in try await session.finish() {
            response.headers.add(name: .setCookie, value: cookie)
        }
        return response
    }

    /// The request facts the session core reads: cookies, client address, scheme, user agent.
    static func sessionRequest(_ request: Request) -> SessionRequest {
        SessionRequest(
            cookieHeaders: request.headers[.cookie],
            remoteAddress: request.remoteAddress?.ipAddress,
            scheme: request.url.scheme ?? "http",
            userAgent: request.headers.first(name: .userAgent)
        )
    }
}

struct RequestSessionKey: StorageKey {
    typealias Value = RequestSession
}

extension Request {
    /// The request's session from the session core, set by ``RestySessionVaporMiddleware``.
    /// Without the middleware every operation on it throws `SessionError` `invalidState`.
    public var restySession: RequestSession {
        storage[RequestSessionKey.self] ?? RequestSession()
    }
}
