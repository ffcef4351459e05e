import HTTPTypes
import Hummingbird
import RestySession

/// A request context that carries the request's session.
///
///     struct AppContext: RestySessionRequestContext {
///         var coreContext: CoreRequestContextStorage
///         var session = RequestSession()
///         init(source: Source) { self.coreContext = .init(source: source) }
///     }
public protocol RestySessionRequestContext: RequestContext {
    /// The request's session; ``RestySessionMiddleware`` sets it before the handler runs.
    var session: RequestSession { get set }
}

/// A Hummingbird router middleware giving each request its session from the session core
/// (lua-resty-session's cookie format, encryption and timeouts) on any storage of this project.
///
/// The session is opened lazily, on the handler's first use of `context.session`; after the
/// handler it is saved only when it changed, touched or renewed when that is due, and the
/// `Set-Cookie` headers are added to the response (``RequestSession/finish()``). A handler
/// that throws sends no session cookie.
///
///     let manager = try SessionManager(configuration: .init(secret: secret), storage: store)
///     let router = Router(context: AppContext.self)
///     router.add(middleware: RestySessionMiddleware(manager: manager))
///     router.post("/login") { request, context in
///         try await context.session.setSubject("alice")
///         return "hello"
///     }
public struct RestySessionMiddleware<Context: RestySessionRequestContext>: RouterMiddleware {
    /// The session core the sessions come from.
    public let manager: SessionManager

    /// Whether `Context` carries the client's address (`RemoteAddressRequestContext`): decided
    /// once here rather than by a dynamic cast of every request's context.
    let contextHasRemoteAddress: Bool

    /// Creates the middleware.
    public init(manager: SessionManager) {
        self.manager = manager
        self.contextHasRemoteAddress = Context.self is any RemoteAddressRequestContext.Type
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let session = RequestSession(manager: manager, request: Self.sessionRequest(request, context: context, withAddress: contextHasRemoteAddress))
        context.session = session
        var response = try await next(request, context)
        for cookie in try await session.finish() {
            response.headers.append(HTTPField(name: .setCookie, value: cookie))
        }
        return response
    }

    /// The request facts the session core reads: cookies, client address, scheme, user agent.
    static func sessionRequest(_ request: Request, context: Context, withAddress: Bool) -> SessionRequest {
        var address: String?
        if withAddress, let remote = (context as? any RemoteAddressRequestContext)?.remoteAddress {
            address = remote.ipAddress
        }
        return SessionRequest(
            cookieHeaders: request.headers[values: .cookie],
            remoteAddress: address,
            scheme: request.head.scheme ?? "http",
            userAgent: request.headers[.userAgent]
        )
    }
}
