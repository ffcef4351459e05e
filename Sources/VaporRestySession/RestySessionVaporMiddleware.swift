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
public struct RestySessionVaporMiddleware: Middleware {
    /// The session core the sessions come from.
    public let manager: SessionManager

    /// Creates the middleware.
    public init(manager: SessionManager) {
        self.manager = manager
    }

    // A `Middleware` of futures rather than an `AsyncMiddleware`: Vapor runs an async
    // middleware in a task of its own on every request, which measured 44 % of a plain
    // route's throughput when the handler never used its session (Benchmarks/web.sh with
    // vapor-web-bench). Here a request whose session needs no store call to finish (not used,
    // only read, or touched) is finished on the event loop; a task runs only to save or renew.
    public func respond(to request: Request, chainingTo next: any Responder) -> EventLoopFuture<Response> {
        let session = RequestSession(manager: manager, request: Self.sessionRequest(request))
        request.storage[RequestSessionKey.self] = session
        return next.respond(to: request).flatMap { response in
            do {
                if let cookies = try session.finishWithoutStore() {
                    Self.add(cookies, to: response)
                    return request.eventLoop.makeSucceededFuture(response)
                }
            } catch {
                return request.eventLoop.makeFailedFuture(error)
            }
            return request.eventLoop.makeFutureWithTask {
                Self.add(try await session.finish(), to: response)
                return response
            }
        }
    }

    private static func add(_ cookies: [String], to response: Response) {
        for cookie in cookies {
            response.headers.add(name: .setCookie, value: cookie)
        }
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
