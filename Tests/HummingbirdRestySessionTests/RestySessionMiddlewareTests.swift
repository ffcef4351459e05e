import AdapterTestSupport
import Foundation
import HTTPTypes
import NIOCore
import Hummingbird
@testable import HummingbirdRestySession
import HummingbirdTesting
import RestySession
import SessionStorage
import Synchronization
import Testing

struct TestContext: RestySessionRequestContext {
    var coreContext: CoreRequestContextStorage
    var session = RequestSession()
    init(source: Source) { self.coreContext = .init(source: source) }
}

/// Counts the store's calls, to show that the session is opened lazily.
final class CountingStore: SessionStore {
    let base: any SessionStore
    let calls = Mutex<Int>(0)
    init(_ base: any SessionStore) { self.base = base }
    var count: Int { calls.withLock { $0 } }
    func set(_ request: SessionSetRequest) async throws {
        calls.withLock { $0 += 1 }
        try await base.set(request)
    }
    func get(name: String, key: String, currentTime: Int) async throws -> String? {
        calls.withLock { $0 += 1 }
        return try await base.get(name: name, key: key, currentTime: currentTime)
    }
    func delete(name: String, key: String, currentTime: Int, metadata: SessionMetadata?) async throws {
        calls.withLock { $0 += 1 }
        try await base.delete(name: name, key: key, currentTime: currentTime, metadata: metadata)
    }
    func readMetadata(name: String, audience: String, subject: String, currentTime: Int) async throws -> [String: Int] {
        calls.withLock { $0 += 1 }
        return try await base.readMetadata(name: name, audience: audience, subject: subject, currentTime: currentTime)
    }
}

func makeRouter(manager: SessionManager) -> Router<TestContext> {
    let router = Router(context: TestContext.self)
    router.add(middleware: RestySessionMiddleware(manager: manager))
    router.get("/plain") { _, _ in "plain" }
    router.get("/peek") { _, context in
        try await context.session.subject() ?? "anonymous"
    }
    router.post("/login/{name}") { _, context in
        let name = try context.parameters.require("name")
        try await context.session.modify { session in
            session.subject = name
            session["greeting"] = .string("hello \(name)")
        }
        return "signed in"
    }
    router.get("/me") { _, context in
        let session = try await context.session.load()
        return "\(session.subject ?? "anonymous") \(session["greeting"]?.stringValue ?? "-")"
    }
    router.post("/count") { _, context in
        let count = (try await context.session.get("count")?.intValue ?? 0) + 1
        try await context.session.set("count", .number(Double(count)))
        return "\(count)"
    }
    router.get("/sessions") { _, context in
        let list = try await context.session.sessionsOfSubject()
        return "\(list.sessions.count)"
    }
    router.post("/revoke-others") { _, context in
        "\(try await context.session.revokeOtherSessions())"
    }
    router.post("/logout") { _, context in
        try await context.session.logout()
        return "bye"
    }
    router.get("/fail") { _, context -> String in
        try await context.session.set("x", "y")
        throw HTTPError(.badRequest)
    }
    return router
}

func makeManager(store: any SessionStore, time: TestTime) throws -> SessionManager {
    var configuration = SessionManager.Configuration(secret: "hummingbird adapter test secret")
    configuration.storeMetadata = true
    configuration.idlingTimeout = .seconds(3600)
    configuration.rollingTimeout = .seconds(3600)
    configuration.touchThreshold = .seconds(60)
    return try SessionManager(configuration: configuration, storage: store, clock: time.clock, logger: quiet)
}

@Suite(.serialized) struct RestySessionMiddlewareTests {
    @Test(arguments: Backend.allCases)
    func lazySaveTouchRenewAndLogout(backend: Backend) async throws {
        try await backend.withStore { base in
            let store = CountingStore(base)
            let time = TestTime()
            let app = Application(router: makeRouter(manager: try makeManager(store: store, time: time)))
            try await app.test(.router) { client in
                // A route that never uses its session: no store call, no cookie.
                try await client.execute(uri: "/plain", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.setCookie] == nil)
                }
                // Opening without a cookie reads nothing from the store; an unchanged new
                // session is not saved.
                try await client.execute(uri: "/peek", method: .get) { response in
                    #expect(String(buffer: response.body) == "anonymous")
                    #expect(response.headers[.setCookie] == nil)
                }
                #expect(store.count == 0)

                let login = try await client.execute(uri: "/login/alice", method: .post) { response in
                    #expect(response.status == .ok)
                    let cookies = response.headers[values: .setCookie]
                    #expect(cookies.count == 1)
                    return try #require(cookies.first)
                }
                #expect(login.hasPrefix("session="))
                #expect(login.contains("HttpOnly"))
                let cookie = cookiePair(login)
                let storedAfterLogin = store.count
                #expect(storedAfterLogin >= 1)

                // Read back; nothing changed and no touch due: no Set-Cookie.
                try await client.execute(uri: "/me", method: .get, headers: [.cookie: cookie]) { response in
                    #expect(String(buffer: response.body) == "alice hello alice")
                    #expect(response.headers[.setCookie] == nil)
                }
                // With a cookie, a route that ignores the session still costs nothing.
                let before = store.count
                try await client.execute(uri: "/plain", method: .get, headers: [.cookie: cookie]) { response in
                    #expect(response.headers[.setCookie] == nil)
                }
                #expect(store.count == before)

                // Past the touch threshold: the cookie is re-sent (touched), no store write.
                time.advance(120)
                let writesBeforeTouch = store.count
                let touched = try await client.execute(uri: "/me", method: .get, headers: [.cookie: cookie]) { response in
                    #expect(String(buffer: response.body) == "alice hello alice")
                    return try #require(response.headers[.setCookie])
                }
                #expect(store.count == writesBeforeTouch + 1)  // the one read, no write
                #expect(cookiePair(touched) != cookie)

                // A change is saved, under a new id.
                let counted = try await client.execute(uri: "/count", method: .post, headers: [.cookie: cookiePair(touched)]) { response in
                    #expect(String(buffer: response.body) == "1")
                    return try #require(response.headers[.setCookie])
                }
                let countedAgain = try await client.execute(uri: "/count", method: .post, headers: [.cookie: cookiePair(counted)]) { response in
                    #expect(String(buffer: response.body) == "2")
                    return try #require(response.headers[.setCookie])
                }
                #expect(cookiePair(countedAgain) != cookiePair(counted))

                // The previous cookie stays readable for staleTTL (10 s) only.
                time.advance(11)
                try await client.execute(uri: "/me", method: .get, headers: [.cookie: cookiePair(counted)]) { response in
                    if backend == .memory {  // Redis expires it by its own clock, 10 real seconds later
                        #expect(String(buffer: response.body) == "anonymous -")
                    }
                }

                // Past 3/4 of the rolling timeout: renewed (saved) although unchanged.
                time.advance(2_800)
                let renewed = try await client.execute(uri: "/me", method: .get, headers: [.cookie: cookiePair(countedAgain)]) { response in
                    #expect(String(buffer: response.body) == "alice hello alice")
                    return try #require(response.headers[.setCookie])
                }
                #expect(!isExpiring(renewed))

                // A handler that throws sends no cookie and saves nothing.
                try await client.execute(uri: "/fail", method: .get, headers: [.cookie: cookiePair(renewed)]) { response in
                    #expect(response.status == .badRequest)
                    #expect(response.headers[.setCookie] == nil)
                }

                // Logging out expires the cookie; the old cookie no longer opens.
                try await client.execute(uri: "/logout", method: .post, headers: [.cookie: cookiePair(renewed)]) { response in
                    let expired = try #require(response.headers[.setCookie])
                    #expect(isExpiring(expired))
                }
                try await client.execute(uri: "/me", method: .get, headers: [.cookie: cookiePair(renewed)]) { response in
                    #expect(String(buffer: response.body) == "anonymous -")
                }
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func sessionsAcrossBrowsersAndRevocation(backend: Backend) async throws {
        try await backend.withStore { store in
            let time = TestTime()
            let app = Application(router: makeRouter(manager: try makeManager(store: store, time: time)))
            let user = "user-\(UUID().uuidString.prefix(6))"
            try await app.test(.router) { client in
                var cookies: [String] = []
                for _ in 0..<3 {
                    cookies.append(try await client.execute(uri: "/login/\(user)", method: .post) { response in
                        cookiePair(try #require(response.headers[.setCookie]))
                    })
                }
                try await client.execute(uri: "/sessions", method: .get, headers: [.cookie: cookies[0]]) { response in
                    #expect(String(buffer: response.body) == "3")
                }
                try await client.execute(uri: "/revoke-others", method: .post, headers: [.cookie: cookies[0]]) { response in
                    #expect(String(buffer: response.body) == "2")
                }
                try await client.execute(uri: "/me", method: .get, headers: [.cookie: cookies[1]]) { response in
                    #expect(String(buffer: response.body) == "anonymous -")
                }
                try await client.execute(uri: "/me", method: .get, headers: [.cookie: cookies[0]]) { response in
                    #expect(String(buffer: response.body) == "\(user) hello \(user)")
                }
                try await client.execute(uri: "/sessions", method: .get, headers: [.cookie: cookies[0]]) { response in
                    #expect(String(buffer: response.body) == "1")
                }
            }
        }
    }

    @Test func withoutTheMiddlewareTheSessionIsAnError() async throws {
        let router = Router(context: TestContext.self)
        router.get("/peek") { _, context -> String in
            do {
                _ = try await context.session.load()
                return "opened"
            } catch let error as SessionError {
                return "\(error.code)"
            }
        }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/peek", method: .get) { response in
                #expect(String(buffer: response.body) == "invalidState")
            }
        }
    }
}

/// A context that knows the client's address, as Hummingbird's live server gives it.
struct AddressContext: RestySessionRequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    var session = RequestSession()
    let remoteAddress: SocketAddress?
    init(source: Source) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

@Suite struct RestySessionMiddlewareAddressTests {
    /// With `bind: .ip` the cookie is bound to the client's address: the middleware must pass
    /// the address of a `RemoteAddressRequestContext` to the session core (and none otherwise).
    @Test func theClientAddressReachesTheSessionCore() async throws {
        let store = MemorySessionStore(configuration: .init(zone: "hb-address-\(UInt64.random(in: 0...UInt64.max))"))
        var configuration = SessionManager.Configuration(secret: "hummingbird address test secret")
        configuration.bind = [.ip]
        let manager = try SessionManager(configuration: configuration, storage: store, logger: quiet)
        #expect(RestySessionMiddleware<AddressContext>(manager: manager).contextHasRemoteAddress)
        #expect(!RestySessionMiddleware<TestContext>(manager: manager).contextHasRemoteAddress)

        let router = Router(context: AddressContext.self)
        router.add(middleware: RestySessionMiddleware(manager: manager))
        router.post("/login") { _, context in
            try await context.session.setSubject("carol")
            return "ok"
        }
        router.get("/me") { _, context in
            try await context.session.subject() ?? "anonymous"
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let cookie = try await client.execute(uri: "/login", method: .post) { response in
                let setCookie = try #require(response.headers[values: .setCookie].first)
                return String(setCookie.prefix { $0 != ";" })
            }
            // the same client address opens it through the middleware
            try await client.execute(uri: "/me", method: .get, headers: [.cookie: cookie]) { response in
                #expect(String(buffer: response.body) == "carol")
            }
            // the session core sees the binding: from 127.0.0.1 it opens, from elsewhere it does not
            let here = try await manager.open(SessionRequest(cookieHeader: cookie, remoteAddress: "127.0.0.1"))
            #expect(here.subject == "carol")
            let elsewhere = try await manager.open(SessionRequest(cookieHeader: cookie, remoteAddress: "10.1.2.3"))
            #expect(elsewhere.state != .open)
        }
    }
}
