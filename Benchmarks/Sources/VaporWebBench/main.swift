import Logging
import NIOPosix
import RestySession
import WebBenchSupport
import Vapor
import VaporRestySession

// web-bench's routes on Vapor instead of Hummingbird, for `wrk` (Benchmarks/web.sh with
// WEB_BENCH_APP=vapor):
//
//   vapor-web-bench [--storage URL] [--port 8090] [--threads N]
//
//   GET /plain     no session middleware
//   GET /async     no session middleware, an async handler
//   GET /lazy      the middleware, but the handler never uses its session (nothing is opened)
//   GET /session   the middleware; the handler opens the request's session and reads its subject
//   GET /login     creates a session for "bench" and answers with its Set-Cookie
//
// Never run in CI.

let setup = WebBenchSetup.fromCommandLine(program: "vapor-web-bench")
let (logger, store, manager) = try setup.makeManager(label: "vapor-web-bench")

// one event loop by default, like one nginx worker (the server is pinned to one core)
let group = MultiThreadedEventLoopGroup(numberOfThreads: setup.threads)
let environment = Environment(name: "production", arguments: ["vapor-web-bench", "serve"])
let app = try await Application.make(environment, .shared(group), logger: logger)
app.logger.logLevel = .warning
app.http.server.configuration.hostname = "127.0.0.1"
app.http.server.configuration.port = setup.port
app.http.server.configuration.serverName = "vapor-web-bench"

app.get("plain") { _ in "anonymous" }
// the same route as an async closure (Vapor runs it in a task): what /session's handler costs
// Vapor before any session work
app.get("async") { _ async in "anonymous" }
let sessions = app.grouped(RestySessionVaporMiddleware(manager: manager))
sessions.get("lazy") { _ in "anonymous" }
sessions.get("session") { request async throws -> String in
    try await request.restySession.subject() ?? "anonymous"
}
sessions.get("login") { request async throws -> String in
    try await request.restySession.modify { session in
        session.subject = "bench"
        try await session.save()
    }
    return "bench"
}

let serviceTask = Task { try await store.run() }
do {
    try await app.execute()
} catch {
    serviceTask.cancel()
    try await app.asyncShutdown()
    throw error
}
serviceTask.cancel()
try await app.asyncShutdown()
