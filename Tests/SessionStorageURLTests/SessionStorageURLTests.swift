import Foundation
import Logging
import MemcachedSessionStorage
import MySQLSessionStorage
import PostgresSessionStorage
import RedisClusterSessionStorage
import RedisSessionStorage
import SessionStorage
import SessionStorageURL
import Testing

private let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
private let secret = "hunter2-Very-Secret"

/// Expects `body` to throw a `SessionStorageURLError` with `code`, whose descriptions never
/// hold the secret.
@discardableResult
private func expectURLError(
    _ code: SessionStorageURLError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> SessionStorageURLError? {
    do {
        try body()
        Issue.record("no error thrown, expected \(code)", sourceLocation: sourceLocation)
        return nil
    } catch let error as SessionStorageURLError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(!"\(error)".contains(secret), sourceLocation: sourceLocation)
        #expect(!String(reflecting: error).contains(secret), sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

@Suite struct SessionStorageURLParsingTests {
    @Test func partsAreSplitAndDecoded() throws {
        let url = try SessionStorageURL("Redis://app%40corp:p%3Ass%2Fw@db.example:6380/2?prefix=my%20app&suffix=x+y")
        #expect(url.scheme == "redis")
        #expect(url.user == "app@corp")
        #expect(url.password == "p:ss/w")
        #expect(url.hosts == [.init(name: "db.example", port: 6380)])
        #expect(url.path == "2")
        #expect(url.query == ["prefix": "my app", "suffix": "x y"])
        #expect(!url.description.contains("p:ss/w"))
        #expect(url.redacted.hasPrefix("redis://app%40corp:***@db.example:6380/2?"))
    }

    @Test func severalHostsAndIPv6() throws {
        let url = try SessionStorageURL("redis-sentinel://[::1]:26379,10.0.0.2,sentinel.local:26380/mymaster")
        #expect(url.hosts == [.init(name: "::1", port: 26379), .init(name: "10.0.0.2"), .init(name: "sentinel.local", port: 26380)])
        #expect(url.path == "mymaster")
        #expect(url.hosts[0].description == "[::1]:26379")
    }

    @Test func passwordWithAtSignAndEmptyAuthority() throws {
        let url = try SessionStorageURL("mysql://u:a@b@h/db")
        #expect(url.user == "u")
        #expect(url.password == "a@b")
        #expect(url.hosts == [.init(name: "h")])
        let memory = try SessionStorageURL("memory://")
        #expect(memory.hosts.isEmpty)
        #expect(memory.path.isEmpty)
    }

    @Test func malformedURLs() {
        expectURLError(.malformedURL) { _ = try SessionStorageURL("127.0.0.1:6379") }
        expectURLError(.malformedURL) { _ = try SessionStorageURL("9redis://h") }
        expectURLError(.malformedURL) { _ = try SessionStorageURL("redis://h/0#frag") }
        expectURLError(.malformedURL) { _ = try SessionStorageURL("redis://u:\(secret)%zz@h") }
        expectURLError(.malformedURL) { _ = try SessionStorageURL("redis://[::1:6379") }
        expectURLError(.malformedURL) { _ = try SessionStorageURL("memcached://a,,b") }
        expectURLError(.invalidParameter) { _ = try SessionStorageURL("redis://h:70000") }
        expectURLError(.invalidParameter) { _ = try SessionStorageURL("redis://h:port") }
        let twice = expectURLError(.invalidParameter) { _ = try SessionStorageURL("redis://h?prefix=a&prefix=b") }
        #expect(twice?.parameter == "prefix")
    }
}

@Suite struct SessionStorageFactoryTests {
    let factory = SessionStorageFactory.standard

    @Test func knownSchemes() {
        #expect(factory.schemes == ["mariadb", "memcached", "memory", "mysql", "postgres", "postgresql", "redis", "redis-cluster", "redis-sentinel", "rediss"])
    }

    @Test func memoryOptions() throws {
        let configured = try factory.makeStore(url: "memory://url-test-zone?prefix=p&suffix=s&capacity=4m&remember_rotation=keep_stale", logger: quiet)
        let store = try #require(configured.store as? MemorySessionStore)
        #expect(store.configuration.prefix == "p")
        #expect(store.configuration.suffix == "s")
        #expect(store.configuration.zone == "url-test-zone")
        #expect(store.zone.capacity == 4 << 20)
        #expect(store.configuration.rememberRotation == .keepStale)
        let defaults = try #require(try factory.makeStore(url: "memory://", logger: quiet).store as? MemorySessionStore)
        #expect(defaults.configuration.zone == "sessions")
        #expect(defaults.configuration.prefix == nil)
    }

    @Test func redisOptions() throws {
        let configured = try factory.makeStore(
            url: "redis://app:\(secret)@cache.internal:6390/3?prefix=sess&tls=true&tls_verify=1&tls_ca_file=/ca.pem"
                + "&tls_server_name=cache&connect_timeout=500ms&read_timeout=2&send_timeout=3s&keepalive_timeout=1m"
                + "&pool=web&pool_size=8&backlog=100&requests_per_connection=4&max_value_size=1m",
            logger: quiet)
        let configuration = try #require(configured.store as? RedisSessionStore).configuration
        #expect(configuration.host == "cache.internal")
        #expect(configuration.port == 6390)
        #expect(configuration.database == 3)
        #expect(configuration.username == "app")
        #expect(configuration.password == secret)
        #expect(configuration.prefix == "sess")
        #expect(configuration.ssl)
        #expect(configuration.sslVerify)
        #expect(configuration.sslCAFile == "/ca.pem")
        #expect(configuration.serverName == "cache")
        #expect(configuration.connectTimeout == .milliseconds(500))
        #expect(configuration.readTimeout == .seconds(2))
        #expect(configuration.sendTimeout == .seconds(3))
        #expect(configuration.keepaliveTimeout == .seconds(60))
        #expect(configuration.pool == "web")
        #expect(configuration.poolSize == 8)
        #expect(configuration.backlog == 100)
        #expect(configuration.requestsPerConnection == 4)
        #expect(configuration.maximumValueSize == 1 << 20)
        #expect(!configured.description.contains(secret))
        #expect(configured.redactedURL.contains("app:***@"))

        let tlsScheme = try #require(try factory.makeStore(url: "rediss://h", logger: quiet).store as? RedisSessionStore)
        #expect(tlsScheme.configuration.ssl)
        #expect(tlsScheme.configuration.port == 6379)
        #expect(tlsScheme.configuration.database == 0)
    }

    @Test func sentinelOptions() throws {
        let configured = try factory.makeStore(
            url: "redis-sentinel://:\(secret)@s1:26379,s2/mymaster?database=4&sentinel_username=watch&sentinel_password=\(secret)",
            logger: quiet)
        let configuration = try #require(configured.store as? RedisSessionStore).configuration
        let sentinel = try #require(configuration.sentinel)
        #expect(sentinel.nodes == [.init(host: "s1", port: 26379), .init(host: "s2", port: 26379)])
        #expect(sentinel.masterName == "mymaster")
        #expect(sentinel.username == "watch")
        #expect(sentinel.password == secret)
        #expect(configuration.password == secret)
        #expect(configuration.username == nil)
        #expect(configuration.database == 4)
        #expect(!configured.redactedURL.contains(secret))
        expectURLError(.missingComponent) { _ = try factory.makeStore(url: "redis-sentinel://s1,s2", logger: quiet) }
        expectURLError(.missingComponent) { _ = try factory.makeStore(url: "redis-sentinel:///m", logger: quiet) }
    }

    @Test func clusterOptions() throws {
        let configured = try factory.makeStore(
            url: "redis-cluster://app:\(secret)@10.0.0.1:7000,10.0.0.2?name=c1&max_redirections=3&max_connection_attempts=2"
                + "&max_connection_timeout=2s&pool_size=4&tls=1&prefix=p",
            logger: quiet)
        let configuration = try #require(configured.store as? RedisClusterSessionStore).configuration
        #expect(configuration.nodes == [.init(ip: "10.0.0.1", port: 7000), .init(ip: "10.0.0.2", port: 6379)])
        #expect(configuration.username == "app")
        #expect(configuration.password == secret)
        #expect(configuration.name == "c1")
        #expect(configuration.maxRedirections == 3)
        #expect(configuration.maxConnectionAttempts == 2)
        #expect(configuration.maxConnectionTimeout == .seconds(2))
        #expect(configuration.poolSize == 4)
        #expect(configuration.ssl)
        #expect(configuration.prefix == "p")
        #expect(!configured.redactedURL.contains(secret))
        expectURLError(.missingComponent) { _ = try factory.makeStore(url: "redis-cluster://", logger: quiet) }
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "redis-cluster://n1/0", logger: quiet) }
        expectURLError(.unknownParameter) { _ = try factory.makeStore(url: "redis-cluster://n1?database=1", logger: quiet) }
    }

    @Test func memcachedOptions() throws {
        let one = try #require(try factory.makeStore(url: "memcached://mc:11300?prefix=p&pool_size=2&pipeline_depth=8&tls=on", logger: quiet).store as? MemcachedSessionStore)
        #expect(one.configuration.host == "mc")
        #expect(one.configuration.port == 11300)
        #expect(one.configuration.poolSize == 2)
        #expect(one.configuration.pipelineDepth == 8)
        #expect(one.configuration.ssl)
        #expect(one.configuration.prefix == "p")
        let ring = try #require(try factory.makeStore(url: "memcached://a:1,b", logger: quiet).store as? MemcachedSessionStore)
        #expect(ring.configuration.servers.map(\.description) == ["a:1", "b:11211"])
        let socket = try #require(try factory.makeStore(url: "memcached://?socket=/run/mc.sock", logger: quiet).store as? MemcachedSessionStore)
        #expect(socket.configuration.socket == "/run/mc.sock")
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "memcached://u:\(secret)@h", logger: quiet) }
    }

    @Test func mysqlOptions() throws {
        let configured = try factory.makeStore(
            url: "mysql://sess:\(secret)@db:3307/app?table=s&table_meta=sm&schema=utf8mb4&tls=true&tls_verify=false&pool_size=5&charset=utf8mb4&shared_connections=2&pipeline_depth=4",
            logger: quiet)
        let configuration = try #require(configured.store as? MySQLSessionStore).configuration
        #expect(configuration.username == "sess")
        #expect(configuration.password == secret)
        #expect(configuration.host == "db")
        #expect(configuration.port == 3307)
        #expect(configuration.database == "app")
        #expect(configuration.tableName == "s")
        #expect(configuration.tableNameMeta == "sm")
        #expect(configuration.schema == .utf8mb4)
        #expect(configuration.ssl)
        #expect(configuration.sslVerify == false)
        #expect(configuration.poolSize == 5)
        #expect(configuration.sharedConnections == 2)
        #expect(configuration.pipelineDepth == 4)
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "mysql://u:\(secret)@db/app?pipeline_depth=0", logger: quiet) }
        expectURLError(.missingComponent) { _ = try factory.makeStore(url: "mysql://db/app", logger: quiet) }
        // The backend's own refusal (a table name that is not an identifier) is storeFailed.
        expectURLError(.storeFailed) { _ = try factory.makeStore(url: "mysql://u:\(secret)@db/app?table=a%60b", logger: quiet) }
    }

    @Test func postgresOptions() throws {
        let configured = try factory.makeStore(
            url: "postgres://sess:\(secret)@db:5433/app?tls=require&tls_verify=false&table=s&table_meta=sm&application=web&pool_size=7",
            logger: quiet)
        let configuration = try #require(configured.store as? PostgresSessionStore).configuration
        #expect(configuration.username == "sess")
        #expect(configuration.password == secret)
        #expect(configuration.host == "db")
        #expect(configuration.port == 5433)
        #expect(configuration.database == "app")
        #expect(configuration.tls == .require(verify: false))
        #expect(configuration.tableName == "s")
        #expect(configuration.tableNameMeta == "sm")
        #expect(configuration.application == "web")
        #expect(configuration.poolSize == 7)
        #expect(!configured.redactedURL.contains(secret))
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "postgres://u@db?tls=maybe", logger: quiet) }
    }

    @Test func unknownSchemesAndParametersNeverShowThePassword() {
        let scheme = expectURLError(.unsupportedScheme) { _ = try factory.makeStore(url: "ftp://u:\(secret)@h", logger: quiet) }
        #expect(scheme?.parameter == "ftp")
        #expect(scheme.map { String(reflecting: $0).contains("u:***@h") } == true)
        let parameter = expectURLError(.unknownParameter) {
            _ = try factory.makeStore(url: "redis://u:\(secret)@h/0?prefix=a&colour=blue", logger: quiet)
        }
        #expect(parameter?.parameter == "colour")
        // A secret pasted where a parameter name goes is not echoed either.
        let pasted = expectURLError(.unknownParameter) { _ = try factory.makeStore(url: "redis://h?\(secret)!", logger: quiet) }
        #expect(pasted?.parameter == "(unprintable name)")
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "redis://h?tls=maybe", logger: quiet) }
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "redis://h?pool_size=0", logger: quiet) }
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "redis://h?connect_timeout=soon", logger: quiet) }
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "redis://h/db0", logger: quiet) }
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "redis://h/1?database=2", logger: quiet) }
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "redis://a,b", logger: quiet) }
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "memory://zone:12", logger: quiet) }
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "memory://z?prefix=", logger: quiet) }
        expectURLError(.invalidParameter) { _ = try factory.makeStore(url: "memory://z?remember_rotation=never", logger: quiet) }
    }

    @Test func aSchemeCanBeAdded() throws {
        var factory = SessionStorageFactory.standard
        factory.register(scheme: "Custom") { url, parameters, logger in
            let zone = try parameters.nonEmptyString("zone") ?? "custom"
            return ConfiguredSessionStore(
                store: MemorySessionStore(configuration: .init(prefix: url.hosts.first?.name, zone: zone), logger: logger),
                redactedURL: url.redacted)
        }
        let store = try #require(try factory.makeStore(url: "custom://pfx?zone=z1", logger: quiet).store as? MemorySessionStore)
        #expect(store.configuration.prefix == "pfx")
        #expect(store.configuration.zone == "z1")
        expectURLError(.unknownParameter) { _ = try factory.makeStore(url: "custom://pfx?size=1", logger: quiet) }
    }
}

// MARK: against real servers

private func environment(_ name: String) throws -> String {
    try #require(ProcessInfo.processInfo.environment[name], "\(name) is not set: start servers with scripts/services.sh")
}

private func roundTrip(_ url: String) async throws {
    let configured = try SessionStorageFactory.standard.makeStore(url: url, logger: quiet)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await configured.run() }
        defer { group.cancelAll() }
        try await configured.prepare()
        let now = Int(Date().timeIntervalSince1970)
        let key = "k" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let subject = "user-" + UUID().uuidString.prefix(8)
        let metadata = try SessionMetadata(audience: "url-test", subject: subject)
        try await configured.set(name: "session", key: key, value: "v-\(key)", ttl: 60, currentTime: now, metadata: metadata)
        #expect(try await configured.get(name: "session", key: key, currentTime: now) == "v-\(key)")
        #expect(try await configured.readMetadata(name: "session", audience: "url-test", subject: subject, currentTime: now) == [key: now + 60])
        try await configured.delete(name: "session", key: key, currentTime: now, metadata: metadata)
        #expect(try await configured.get(name: "session", key: key, currentTime: now) == nil)
        #expect(try await configured.readMetadata(name: "session", audience: "url-test", subject: subject, currentTime: now).isEmpty)
    }
}

@Suite(.serialized) struct SessionStorageURLServerTests {
    @Test func memory() async throws {
        try await roundTrip("memory://url-roundtrip?prefix=rt&sweep_interval=1s")
    }

    @Test func redisPlain() async throws {
        try await roundTrip("redis://127.0.0.1:\(try environment("REDIS_PORT"))/1?prefix=url-test&connect_timeout=5s")
    }

    @Test func redisACLUserAndPasswordFromTheURL() async throws {
        let user = try environment("REDIS_ACL_USER")
        let password = try environment("REDIS_ACL_PASSWORD").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        try await roundTrip("redis://\(user):\(password)@127.0.0.1:\(try environment("REDIS_ACL_PORT"))?prefix=url-test")
    }

    @Test func redisWrongPasswordFailsWithoutShowingIt() async throws {
        let user = try environment("REDIS_ACL_USER")
        let configured = try SessionStorageFactory.standard.makeStore(
            url: "redis://\(user):\(secret)@127.0.0.1:\(try environment("REDIS_ACL_PORT"))?connect_timeout=3s", logger: quiet)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await configured.run() }
            defer { group.cancelAll() }
            do {
                _ = try await configured.get(name: "session", key: "abc", currentTime: 1)
                Issue.record("a wrong password was accepted")
            } catch let error as SessionStoreError {
                #expect(error.code == .authenticationFailed)
                #expect(!"\(error)".contains(secret))
            }
        }
    }

    @Test func redisTLSWithVerification() async throws {
        let ca = try environment("TLS_CA_FILE").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        try await roundTrip("rediss://127.0.0.1:\(try environment("REDIS_TLS_PORT"))?tls_verify=true&tls_ca_file=\(ca)&prefix=url-test")
    }

    @Test func redisSentinel() async throws {
        let nodes = try environment("REDIS_SENTINEL_NODES")
        let master = try environment("REDIS_SENTINEL_MASTER")
        try await roundTrip("redis-sentinel://\(nodes)/\(master)?prefix=url-test")
    }

    @Test func redisCluster() async throws {
        let nodes = try environment("REDIS_CLUSTER_NODES")
        let password = try environment("REDIS_CLUSTER_PASSWORD").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        try await roundTrip("redis-cluster://:\(password)@\(nodes)?prefix=url-test")
    }

    @Test func memcached() async throws {
        try await roundTrip("memcached://127.0.0.1:\(try environment("MEMCACHED_PORT"))?prefix=url-test")
    }

    @Test func postgresWithMigration() async throws {
        let user = try environment("PG_USER")
        let password = try environment("PG_PASSWORD").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let suffix = UUID().uuidString.prefix(8).lowercased()
        try await roundTrip(
            "postgres://\(user):\(password)@127.0.0.1:\(try environment("PG_PORT"))/\(try environment("PG_DATABASE"))"
                + "?tls=prefer&migrate=true&table=url_s_\(suffix)&table_meta=url_m_\(suffix)")
    }

    @Test func mysqlWithMigration() async throws {
        let user = try environment("MYSQL_USER")
        let password = try environment("MYSQL_PASSWORD").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let suffix = UUID().uuidString.prefix(8).lowercased()
        try await roundTrip(
            "mysql://\(user):\(password)@127.0.0.1:\(try environment("MYSQL_PORT"))/\(try environment("MYSQL_DATABASE"))"
                + "?migrate=true&table=url_s_\(suffix)&table_meta=url_m_\(suffix)")
    }
}
