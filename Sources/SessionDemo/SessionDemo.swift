import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdRestySession
import Logging
import RestySession
import SessionStorage
import SessionStorageURL

/// The demo's request context: Hummingbird's basics plus the request's session.
struct DemoContext: RestySessionRequestContext {
    var coreContext: CoreRequestContextStorage
    var session = RequestSession()
    init(source: Source) { self.coreContext = .init(source: source) }
}

struct SignInForm: Decodable {
    var name: String
}

struct RevokeForm: Decodable {
    var key: String
}

/// The demo web app: sign in under any name, see this session's timeouts, list and revoke
/// your sessions across browsers. It uses only the public API of the package.
@main
struct SessionDemo {
    static func main() async {
        let options: DemoOptions
        do {
            options = try DemoOptions(arguments: Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            exit(2)
        }
        var logger = Logger(label: "session-demo")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        do {
            try await run(options: options, logger: logger)
        } catch {
            // Errors of this package never hold a password or a session id.
            logger.critical("session-demo stopped", metadata: ["error": "\(error)"])
            exit(1)
        }
    }

    static func run(options: DemoOptions, logger: Logger) async throws {
        let store = try SessionStorageFactory.standard.makeStore(url: options.storage, logger: logger)
        var configuration = SessionManager.Configuration()
        if let secret = options.secret {
            configuration.secret = secret
        } else {
            configuration.environment = .development
        }
        configuration.audience = "session-demo"
        configuration.storeMetadata = true
        configuration.idlingTimeout = .seconds(options.idlingTimeout)
        configuration.rollingTimeout = .seconds(options.rollingTimeout)
        configuration.absoluteTimeout = .seconds(options.absoluteTimeout)
        configuration.touchThreshold = .seconds(min(60, max(1, options.idlingTimeout / 10)))
        let manager = try SessionManager(configuration: configuration, storage: store, logger: logger)

        let router = makeRouter(manager: manager, storage: store.redactedURL)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "session-demo"),
            services: [store],
            onServerRunning: { channel in
                do {
                    try await store.prepare()
                } catch {
                    logger.error("the storage could not be prepared", metadata: ["error": "\(error)"])
                }
                let port = channel.localAddress?.port ?? options.port
                logger.info("session-demo listening on http://\(options.host):\(port) with \(store.redactedURL)")
            },
            logger: logger
        )
        try await app.runService()
    }

    static func makeRouter(manager: SessionManager, storage: String) -> Router<DemoContext> {
        let router = Router(context: DemoContext.self)
        router.add(middleware: RestySessionMiddleware(manager: manager))
        let audience = manager.configuration.audience

        router.get("/") { _, context -> Response in
            if try await context.session.subject() != nil { return .redirect(to: "/me", type: .normal) }
            return html(DemoPages.signIn(storage: storage, message: nil))
        }
        router.get("/healthz") { _, _ in "ok" }

        router.post("/signin") { request, context -> Response in
            let form = try await URLEncodedFormDecoder().decode(SignInForm.self, from: request, context: context)
            let name = form.name.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !name.isEmpty, name.count <= 64 else {
                return html(DemoPages.signIn(storage: storage, message: "Give a name of 1 to 64 characters."), status: .badRequest)
            }
            try await context.session.modify { session in
                session.subject = name
                session["signedInAt"] = .number(Double(Int(Date().timeIntervalSince1970)))
                try await session.save()
            }
            return .redirect(to: "/me", type: .normal)
        }

        router.get("/me") { request, context -> Response in
            let session = try await context.session.load()
            guard session.exists, session.subject != nil else {
                return html(DemoPages.signIn(storage: storage, message: "You are signed out."))
            }
            let sessions = try await session.sessionsOfSubject()
            let message = messages(request.uri.queryParameters.get("m"), count: request.uri.queryParameters.get("n"))
            return html(DemoPages.me(session: session, sessions: sessions, now: Int(Date().timeIntervalSince1970), storage: storage, message: message))
        }

        router.post("/sessions/revoke") { request, context -> Response in
            let form = try await URLEncodedFormDecoder().decode(RevokeForm.self, from: request, context: context)
            let session = try await context.session.load()
            guard session.exists, let subject = session.subject else { return .redirect(to: "/", type: .normal) }
            // Only a session of the signed-in user can be revoked: the key must be in their index.
            let mine = try await session.sessionsOfSubject()
            guard mine.sessions[form.key] != nil, form.key != session.storageKey else {
                return .redirect(to: "/me?m=notyours", type: .normal)
            }
            try await manager.revoke(key: form.key, audience: audience, subject: subject)
            return .redirect(to: "/me?m=one", type: .normal)
        }

        router.post("/sessions/revoke-others") { _, context -> Response in
            guard try await context.session.exists() else { return .redirect(to: "/", type: .normal) }
            let count = try await context.session.revokeOtherSessions()
            return .redirect(to: "/me?m=others&n=\(count)", type: .normal)
        }

        router.post("/sessions/revoke-all") { _, context -> Response in
            let session = try await context.session.load()
            guard session.exists, let subject = session.subject else { return .redirect(to: "/", type: .normal) }
            try await manager.revokeAll(audience: audience, subject: subject, except: session.storageKey.map { [$0] } ?? [])
            try await context.session.destroy()
            return .redirect(to: "/", type: .normal)
        }

        router.post("/signout") { _, context -> Response in
            try await context.session.logout()
            return .redirect(to: "/", type: .normal)
        }
        return router
    }

    static func messages(_ code: String?, count: String?) -> String? {
        switch code {
        case "one": "Signed out one session."
        case "others": "Signed out \(Int(count ?? "") ?? 0) other session(s)."
        case "notyours": "That session is not one of your other sessions."
        default: nil
        }
    }

    static func html(_ page: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: page))
        )
    }
}
