import Foundation
import RedisClusterSessionStorage
import SessionStorage
import Testing
import _RedisWire

/// The test cluster is password-protected (`requirepass` + `masterauth` on every node) and knows
/// the ACL user of the standalone server: both ways in work, and every wrong way is a typed
/// `authenticationFailed` that names no secret, without waiting out the connection budget.
@Suite("Redis Cluster authentication")
struct ClusterAuthTests {
    @Test func anACLUserCanUseTheCluster() async throws {
        let prefix = uniquePrefix("acl")
        var configuration = try clusterConfiguration(prefix: prefix)
        configuration.username = try env("REDIS_ACL_USER")
        configuration.password = try env("REDIS_ACL_PASSWORD")
        try await withClusterStore(configuration) { store in
            let now = Int(Date().timeIntervalSince1970)
            let metadata = try SessionMetadata(audience: "app", subject: "alice")
            var keys: [String] = []
            // enough keys to reach every master
            for index in 0..<24 {
                let key = sessionKey()
                keys.append(key)
                try await store.set(name: "session", key: key, value: "v\(index)", ttl: 60, currentTime: now, metadata: metadata)
            }
            for (index, key) in keys.enumerated() {
                #expect(try await store.get(name: "session", key: key, currentTime: now) == "v\(index)")
            }
            #expect(try await store.readMetadata(name: "session", audience: "app", subject: "alice", currentTime: now).count == keys.count)
            let whoami = try await store.client.send(RedisCommand("ACL", ["WHOAMI"]))
            #expect(whoami.string == (try env("REDIS_ACL_USER")))
        }
    }

    @Test func aWrongPasswordIsATypedErrorWithoutTheSecret() async throws {
        var configuration = try clusterConfiguration(prefix: uniquePrefix("badpw"))
        let secret = "not-the-password-\(UUID().uuidString.prefix(6))"
        configuration.password = secret
        try await expectAuthenticationFailure(configuration, secret: secret)
    }

    @Test func aWrongACLUserPasswordIsATypedError() async throws {
        var configuration = try clusterConfiguration(prefix: uniquePrefix("badacl"))
        configuration.username = try env("REDIS_ACL_USER")
        let secret = "wrong-\(UUID().uuidString.prefix(6))"
        configuration.password = secret
        try await expectAuthenticationFailure(configuration, secret: secret)
    }

    @Test func noPasswordIsATypedError() async throws {
        var configuration = try clusterConfiguration(prefix: uniquePrefix("nopw"))
        configuration.password = nil
        try await expectAuthenticationFailure(configuration, secret: nil)
    }

    private func expectAuthenticationFailure(
        _ configuration: RedisClusterSessionStore.Configuration,
        secret: String?
    ) async throws {
        try await withClusterStore(configuration) { store in
            let now = Int(Date().timeIntervalSince1970)
            let started = ContinuousClock.now
            do {
                try await store.set(name: "session", key: sessionKey(), value: "v", ttl: 60, currentTime: now)
                Issue.record("a set succeeded without valid credentials")
            } catch let error as SessionStoreError {
                #expect(error.code == .authenticationFailed, "got \(error)")
                if let secret {
                    #expect(!error.description.contains(secret))
                    #expect(!String(reflecting: error).contains(secret))
                }
            }
            // credentials do not get better with retries: no waiting out maxConnectionTimeout (8 s)
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }
}
