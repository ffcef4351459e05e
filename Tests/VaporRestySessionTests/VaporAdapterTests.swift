import AdapterTestSupport
import Foundation
import RestySession
import SessionStorage
import Testing
import Vapor
import VaporRestySession
import VaporTesting

private func makeManager(store: any SessionStore, time: TestTime) throws -> SessionManager {
    var configuration = SessionManager.Configuration(secret: "vapor adapter test secret")
    configuration.storeMetadata = true
    configuration.idlingTimeout = .seconds(3600)
    configuration.rollingTimeout = .seconds(3600)
    configuration.touchThreshold = .seconds(60)
    return try SessionManager(configuration: configuration, storage: store, clock: time.clock, logger: quiet)
}

private func setCookies(_ response: TestingHTTPResponse) -> [String] {
    response.headers[.setCookie]
}

@Suite(.serialized) struct VaporMiddlewareTests {
    @Test(arguments: Backend.allCases)
    func lazySaveTouchSessionsAndLogout(backend: Backend) async throws {
        try await backend.withStore { store in
            let time = TestTime()
            let manager = try makeManager(store: store, time: time)
            try await withApp(configure: { $0.logger.logLevel = .warning }) { app in
                let sessions = app.grouped(RestySessionVaporMiddleware(manager: manager))
                sessions.get("plain") { _ in "plain" }
                sessions.post("login", ":name") { request async throws -> String in
                    let name = try request.parameters.require("name")
                    try await request.restySession.modify { session in
                        session.subject = name
                        session["greeting"] = .string("hello \(name)")
                    }
                    return "signed in"
                }
                sessions.get("me") { request async throws -> String in
                    let session = try await request.restySession.load()
                    return "\(session.subject ?? "anonymous") \(session["greeting"]?.stringValue ?? "-")"
                }
                sessions.get("sessions") { request async throws -> String in
                    "\(try await request.restySession.sessionsOfSubject().sessions.count)"
                }
                sessions.post("revoke-others") { request async throws -> String in
                    "\(try await request.restySession.revokeOtherSessions())"
                }
                sessions.post("logout") { request async throws -> String in
                    try await request.restySession.logout()
                    return "bye"
                }
                app.get("unguarded") { request async throws -> String in
                    do {
                        _ = try await request.restySession.load()
                        return "opened"
                    } catch let error as SessionError {
                        return "\(error.code)"
                    }
                }

                let tester = try app.testing()
                try await tester.test(.GET, "plain") { response in
                    #expect(response.body.string == "plain")
                    #expect(setCookies(response).isEmpty)
                }
                try await tester.test(.GET, "me") { response in
                    #expect(response.body.string == "anonymous -")
                    #expect(setCookies(response).isEmpty)
                }
                try await tester.test(.GET, "unguarded") { response in
                    #expect(response.body.string == "invalidState")
                }
                let user = "user-\(UUID().uuidString.prefix(6))"
                var cookies: [String] = []
                for _ in 0..<2 {
                    try await tester.test(.POST, "login/\(user)") { response in
                        #expect(response.status == .ok)
                        let set = setCookies(response)
                        #expect(set.count == 1)
                        cookies.append(cookiePair(try #require(set.first)))
                    }
                }
                #expect(cookies[0].hasPrefix("session="))
                try await tester.test(.GET, "me", headers: ["Cookie": cookies[0]]) { response in
                    #expect(response.body.string == "\(user) hello \(user)")
                    #expect(setCookies(response).isEmpty)
                }
                try await tester.test(.GET, "sessions", headers: ["Cookie": cookies[0]]) { response in
                    #expect(response.body.string == "2")
                }
                // Past the touch threshold the cookie is re-sent.
                time.advance(120)
                try await tester.test(.GET, "me", headers: ["Cookie": cookies[0]]) { response in
                    #expect(response.body.string == "\(user) hello \(user)")
                    #expect(setCookies(response).count == 1)
                }
                try await tester.test(.POST, "revoke-others", headers: ["Cookie": cookies[0]]) { response in
                    #expect(response.body.string == "1")
                }
                try await tester.test(.GET, "me", headers: ["Cookie": cookies[1]]) { response in
                    #expect(response.body.string == "anonymous -")
                }
                try await tester.test(.POST, "logout", headers: ["Cookie": cookies[0]]) { response in
                    let expired = try #require(setCookies(response).first)
                    #expect(isExpiring(expired))
                }
                try await tester.test(.GET, "me", headers: ["Cookie": cookies[0]]) { response in
                    #expect(response.body.string == "anonymous -")
                }
            }
        }
    }
}

@Suite(.serialized) struct VaporSessionDriverTests {
    @Test(arguments: Backend.allCases)
    func vaporSessionsOnTheStore(backend: Backend) async throws {
        try await backend.withStore { store in
            let time = TestTime()
            let driver = SessionStoreSessionDriver(store: store, ttl: .seconds(600), now: { time.now })
            try await withApp(configure: { $0.logger.logLevel = .warning }) { app in
                app.sessions.use { _ in driver }
                let sessions = app.grouped(app.sessions.middleware)
                sessions.post("set", ":name") { request -> String in
                    request.session.data["name"] = try request.parameters.require("name")
                    return "set"
                }
                sessions.get("get") { request -> String in
                    request.session.data["name"] ?? "none"
                }
                sessions.post("destroy") { request -> String in
                    request.session.destroy()
                    return "destroyed"
                }
                let tester = try app.testing()
                var cookie = ""
                try await tester.test(.POST, "set/alice") { response in
                    let set = try #require(setCookies(response).first)
                    cookie = cookiePair(set)
                }
                #expect(cookie.hasPrefix("vapor-session="))
                let id = String(cookie.dropFirst("vapor-session=".count))
                // The record is in our store, as JSON.
                let stored = try #require(try await store.get(name: "vapor", key: id, currentTime: time.now))
                #expect(stored == #"{"name":"alice"}"#)
                try await tester.test(.GET, "get", headers: ["Cookie": cookie]) { response in
                    #expect(response.body.string == "alice")
                }
                // A forged id never reaches the store and reads as no session.
                try await tester.test(.GET, "get", headers: ["Cookie": "vapor-session=a:b;c"]) { response in
                    #expect(response.body.string == "none")
                }
                try await tester.test(.POST, "destroy", headers: ["Cookie": cookie]) { response in
                    #expect(response.body.string == "destroyed")
                }
                #expect(try await store.get(name: "vapor", key: id, currentTime: time.now) == nil)
                try await tester.test(.GET, "get", headers: ["Cookie": cookie]) { response in
                    #expect(response.body.string == "none")
                }
            }
        }
    }

    @Test func theTTLIsHonouredByTheStore() async throws {
        try await Backend.memory.withStore { store in
            let time = TestTime()
            let driver = SessionStoreSessionDriver(store: store, ttl: .seconds(30), now: { time.now })
            try await withApp(configure: { $0.logger.logLevel = .warning }) { app in
                let request = Request(application: app, on: app.eventLoopGroup.next())
                let id = try await driver.createSession(["k": "v"], for: request)
                time.advance(29)
                #expect(try await driver.readSession(id, for: request) == SessionData(initialData: ["k": "v"]))
                // An update slides the expiry.
                _ = try await driver.updateSession(id, to: ["k": "w"], for: request)
                time.advance(29)
                #expect(try await driver.readSession(id, for: request) == SessionData(initialData: ["k": "w"]))
                time.advance(2)
                #expect(try await driver.readSession(id, for: request) == nil)
            }
        }
        try await Backend.redis.withStore { store in
            let driver = SessionStoreSessionDriver(store: store, ttl: .seconds(1))
            try await withApp(configure: { $0.logger.logLevel = .warning }) { app in
                let request = Request(application: app, on: app.eventLoopGroup.next())
                let id = try await driver.createSession(["k": "v"], for: request)
                #expect(try await driver.readSession(id, for: request) == SessionData(initialData: ["k": "v"]))
                try await Task.sleep(for: .milliseconds(2_200))
                #expect(try await driver.readSession(id, for: request) == nil)
            }
        }
    }
}
