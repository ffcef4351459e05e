import Foundation
import Hummingbird
import HummingbirdRestySession
import Logging
import NIOPosix
import RestySession
import WebBenchSupport

// A minimal Hummingbird app for `wrk`: the same route with and without the session middleware.
//
//   web-bench [--storage URL] [--port 8090]
//
//   GET /plain     no session middleware
//   GET /lazy      the middleware, but the handler never uses its session (nothing is opened)
//   GET /session   the middleware; the handler opens the request's session (a store read and a
//                  decryption) and reads its subject; refresh runs after it (a touch when due)
//   GET /login     creates a session for "bench" and answers with its Set-Cookie
//
// Benchmarks/run.sh web drives it; never run in CI.

struct BenchContext: RestySessionRequestContext {
    var coreContext: CoreRequestContextStorage
    var session = RequestSession()
    init(source: Source) { self.coreContext = .init(source: source) }
}

let setup = WebBenchSetup.fromCommandLine(program: "web-bench")
let (logger, store, manager) = try setup.makeManager(label: "web-bench")

let router = Router(context: BenchContext.self)
router.get("/plain") { _, _ in "anonymous" }
let sessions = router.group().add(middleware: RestySessionMiddleware(manager: manager))
sessions.get("/lazy") { _, _ in "anonymous" }
sessions.get("/session") { _, context in
    try await context.session.subject() ?? "anonymous"
}
sessions.get("/login") { _, context in
    try await context.session.modify { session in
        session.subject = "bench"
        try await session.save()
    }
    return "bench"
}

let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: setup.port), serverName: "web-bench"),
    services: [store],
    // one event loop by default, like one nginx worker (the server is pinned to one core)
    eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup(numberOfThreads: setup.threads)),
    logger: logger
)
try await app.runService()
