import AdapterTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import HummingbirdRestySession
import HummingbirdTesting
import SessionStorage
import Testing

struct Cart: Codable, Sendable, Equatable {
    var items: [String]
}

@Suite(.serialized) struct SessionStorePersistDriverTests {
    @Test(arguments: Backend.allCases)
    func createSetGetRemove(backend: Backend) async throws {
        try await backend.withStore { store in
            let time = TestTime()
            let driver = SessionStorePersistDriver(store: store, now: { time.now })
            try await driver.create(key: "cart:1;x", value: Cart(items: ["tea"]), expires: .seconds(60))
            #expect(try await driver.get(key: "cart:1;x", as: Cart.self) == Cart(items: ["tea"]))
            await #expect(throws: PersistError.duplicate) {
                try await driver.create(key: "cart:1;x", value: Cart(items: []), expires: nil)
            }
            await #expect(throws: PersistError.invalidConversion) {
                _ = try await driver.get(key: "cart:1;x", as: Int.self)
            }
            // Plain values (JSON fragments) round-trip too.
            try await driver.set(key: "counter", value: 41, expires: .seconds(30))
            #expect(try await driver.get(key: "counter", as: Int.self) == 41)
            try await driver.remove(key: "cart:1;x")
            #expect(try await driver.get(key: "cart:1;x", as: Cart.self) == nil)
            #expect(try await driver.get(key: "never-set", as: Cart.self) == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func setWithoutExpiryKeepsTheTTL(backend: Backend) async throws {
        try await backend.withStore { store in
            let time = TestTime()
            let driver = SessionStorePersistDriver(store: store, now: { time.now })
            try await driver.set(key: "k", value: Cart(items: ["a"]), expires: .seconds(100))
            time.advance(40)
            try await driver.set(key: "k", value: Cart(items: ["a", "b"]), expires: nil)
            let (value, ttl) = try #require(try await driver.getWithTTL(key: "k", as: Cart.self))
            #expect(value == Cart(items: ["a", "b"]))
            #expect(ttl == .seconds(60))
            // Past the original expiry it is gone, although the last set gave no expiry.
            time.advance(61)
            #expect(try await driver.get(key: "k", as: Cart.self) == nil)
            // Without any expiry: kept, and reported with no TTL.
            try await driver.set(key: "forever", value: Cart(items: []), expires: nil)
            time.advance(86_400 * 30)
            let forever = try #require(try await driver.getWithTTL(key: "forever", as: Cart.self))
            #expect(forever.ttl == nil)
        }
    }

    /// The server itself drops the record at its TTL (real time, real Redis).
    @Test func redisExpiresTheRecord() async throws {
        try await Backend.redis.withStore { store in
            let driver = SessionStorePersistDriver(store: store)
            try await driver.set(key: "short", value: "soon gone", expires: .seconds(1))
            #expect(try await driver.get(key: "short", as: String.self) == "soon gone")
            try await Task.sleep(for: .milliseconds(2_200))
            // Read the raw record: the store has nothing left, whatever the envelope says.
            #expect(try await store.get(name: "persist", key: "short", currentTime: Int(Date().timeIntervalSince1970) - 10) == nil)
            #expect(try await driver.get(key: "short", as: String.self) == nil)
        }
    }

    struct AuthSession: Codable, Sendable {
        var user: String
        var visits: Int
    }

    /// hummingbird-auth's own SessionMiddleware keeping its sessions in our store.
    @Test(arguments: Backend.allCases)
    func hummingbirdAuthSessionMiddleware(backend: Backend) async throws {
        try await backend.withStore { store in
            let driver = SessionStorePersistDriver(store: store, name: "hbauth")
            let router = Router(context: BasicSessionRequestContext<AuthSession, String>.self)
            router.addMiddleware {
                SessionMiddleware(storage: driver, defaultSessionExpiration: .seconds(120))
            }
            router.post("/login") { _, context -> String in
                context.sessions.createSession(AuthSession(user: "alice", visits: 0))
                return "ok"
            }
            router.get("/visit") { _, context -> String in
                guard var session = context.sessions.session else { return "none" }
                session.visits += 1
                _ = context.sessions.updateSession(session)
                return "\(session.user) \(session.visits)"
            }
            router.post("/logout") { _, context -> String in
                context.sessions.clearSession()
                return "bye"
            }
            try await Application(router: router).test(.router) { client in
                let setCookie = try await client.execute(uri: "/login", method: .post) { response in
                    try #require(response.headers[.setCookie])
                }
                let cookie = cookiePair(setCookie)
                #expect(cookie.hasPrefix("SESSION_ID="))
                try await client.execute(uri: "/visit", method: .get, headers: [.cookie: cookie]) { response in
                    #expect(String(buffer: response.body) == "alice 1")
                }
                try await client.execute(uri: "/visit", method: .get, headers: [.cookie: cookie]) { response in
                    #expect(String(buffer: response.body) == "alice 2")
                }
                // The session is in our store, with the middleware's expiration.
                let id = String(cookie.dropFirst("SESSION_ID=".count))
                let ttl = try #require(try await driver.getWithTTL(key: "hbs.\(id)", as: AuthSession.self)?.ttl)
                #expect(ttl <= .seconds(120) && ttl >= .seconds(100))
                try await client.execute(uri: "/logout", method: .post, headers: [.cookie: cookie]) { _ in }
                try await client.execute(uri: "/visit", method: .get, headers: [.cookie: cookie]) { response in
                    #expect(String(buffer: response.body) == "none")
                }
            }
        }
    }
}
