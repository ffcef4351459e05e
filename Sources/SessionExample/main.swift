import Foundation
import Logging
import SessionStorage

// session-example: what the storage layer does, on the in-process memory store.
// Run it with `swift run session-example`.

let store = MemorySessionStore(configuration: .init(prefix: "sessions", zone: "example"))
let now = Int(Date().timeIntervalSince1970)
let alice = try SessionMetadata(audience: "my-app", subject: "alice@example.com")

func newSessionID() -> String {
    var generator = SystemRandomNumberGenerator()
    return Base64URL.encode((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
}

func show(_ title: String, at time: Int) async throws {
    let sessions = try await store.readMetadata(
        name: "session", audience: "my-app", subject: "alice@example.com", currentTime: time)
    print("\(title): \(sessions.count) active session(s)")
    for (id, expiry) in sessions.sorted(by: { $0.value < $1.value }) {
        print("  \(id.prefix(8))…  expires in \(expiry - time) s")
    }
}

// Alice signs in on a laptop and on a phone.
let laptop = newSessionID()
let phone = newSessionID()
try await store.set(name: "session", key: laptop, value: #"["laptop data"]"#, ttl: 3600, currentTime: now, metadata: alice)
try await store.set(name: "session", key: phone, value: #"["phone data"]"#, ttl: 1800, currentTime: now, metadata: alice)
try await show("after signing in twice", at: now)

// The laptop's session is renewed: a new id, the old one readable for 10 more seconds only.
let renewed = newSessionID()
try await store.set(
    name: "session", key: renewed, value: #"["laptop data"]"#, ttl: 3600, currentTime: now + 60,
    oldKey: laptop, staleTTL: 10, metadata: alice)
print("old laptop id readable right after renewal: \(try await store.get(name: "session", key: laptop, currentTime: now + 60) != nil)")
print("old laptop id readable 11 s later:           \(try await store.get(name: "session", key: laptop, currentTime: now + 71) != nil)")
try await show("after renewing the laptop's session", at: now + 60)

// Alice signs the phone out from the laptop.
try await store.delete(name: "session", key: phone, currentTime: now + 120, metadata: alice)
try await show("after revoking the phone", at: now + 120)
print("phone session readable after revocation: \(try await store.get(name: "session", key: phone, currentTime: now + 120) != nil)")
