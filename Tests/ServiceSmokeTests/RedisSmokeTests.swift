import Testing

/// Each Redis server `scripts/services.sh` starts answers on every address it exports.
@Suite("Redis servers are up", .timeLimit(.minutes(1)))
struct RedisSmokeTests {
    @Test func plainPortAnswersPing() async throws {
        let endpoint = RawEndpoint.tcp(try ServiceEnvironment.string("REDIS_HOST"), try ServiceEnvironment.port("REDIS_PORT"))
        #expect(try await redisCommands(endpoint, [["PING"]]) == [.simple("PONG")])
    }

    @Test func tlsPortAnswersPingWithTheTestCA() async throws {
        let endpoint = RawEndpoint.tcp(
            try ServiceEnvironment.string("REDIS_HOST"),
            try ServiceEnvironment.port("REDIS_TLS_PORT"),
            tlsCAFile: try ServiceEnvironment.string("TLS_CA_FILE")
        )
        #expect(try await redisCommands(endpoint, [["PING"]]) == [.simple("PONG")])
    }

    @Test func tlsPortRejectsAClientTrustingAnotherCA() async throws {
        let endpoint = RawEndpoint.tcp(
            try ServiceEnvironment.string("REDIS_HOST"),
            try ServiceEnvironment.port("REDIS_TLS_PORT"),
            tlsCAFile: try ServiceEnvironment.string("TLS_UNKNOWN_CA_FILE")
        )
        await #expect(throws: (any Error).self) {
            try await redisCommands(endpoint, [["PING"]])
        }
    }

    @Test func unixSocketAnswersPing() async throws {
        let endpoint = RawEndpoint.unix(try ServiceEnvironment.string("REDIS_SOCKET"))
        #expect(try await redisCommands(endpoint, [["PING"]]) == [.simple("PONG")])
    }

    @Test func aclServerWantsAuthAndAcceptsTheACLUser() async throws {
        let endpoint = RawEndpoint.tcp(try ServiceEnvironment.string("REDIS_HOST"), try ServiceEnvironment.port("REDIS_ACL_PORT"))
        let user = try ServiceEnvironment.string("REDIS_ACL_USER")
        let password = try ServiceEnvironment.string("REDIS_ACL_PASSWORD")
        let defaultPassword = try ServiceEnvironment.string("REDIS_ACL_DEFAULT_PASSWORD")

        let replies = try await redisCommands(
            endpoint,
            [["PING"], ["AUTH", user, password], ["PING"], ["ACL", "WHOAMI"], ["AUTH", defaultPassword], ["ACL", "WHOAMI"]]
        )
        try #require(replies.count == 6)
        guard case .error(let message) = replies[0] else {
            Issue.record("PING before AUTH answered \(replies[0]), expected a NOAUTH error")
            return
        }
        #expect(message.hasPrefix("NOAUTH"))
        #expect(replies[1] == .simple("OK"))
        #expect(replies[2] == .simple("PONG"))
        #expect(replies[3] == .bulk(user))
        #expect(replies[4] == .simple("OK"))
        #expect(replies[5] == .bulk("default"))
    }

    @Test func everyClusterNodeReportsStateOK() async throws {
        let nodes = try ServiceEnvironment.hostPorts("REDIS_CLUSTER_NODES")
        let password = try ServiceEnvironment.string("REDIS_CLUSTER_PASSWORD")
        #expect(nodes.count == 6)
        var masters = 0
        for node in nodes {
            let replies = try await redisCommands(
                .tcp(node.host, node.port),
                [["PING"], ["AUTH", password], ["CLUSTER", "INFO"], ["ROLE"]]
            )
            // password-protected: nothing answers before AUTH
            guard case .error(let noauth) = replies[0], noauth.hasPrefix("NOAUTH") else {
                Issue.record("PING before AUTH on \(node.port) answered \(replies[0]), expected NOAUTH")
                continue
            }
            #expect(replies[1] == .simple("OK"))
            guard case .bulk(let info?) = replies[2] else {
                Issue.record("CLUSTER INFO on \(node.port) answered \(replies[2])")
                continue
            }
            #expect(info.contains("cluster_state:ok"), "node \(node.port): \(info)")
            #expect(info.contains("cluster_known_nodes:6"), "node \(node.port): \(info)")
            if case .array(let role?) = replies[3], role.first == .bulk("master") { masters += 1 }
        }
        #expect(masters == 3)
    }

    @Test func everySentinelKnowsTheMaster() async throws {
        let sentinels = try ServiceEnvironment.hostPorts("REDIS_SENTINEL_NODES")
        let masterName = try ServiceEnvironment.string("REDIS_SENTINEL_MASTER")
        #expect(sentinels.count == 3)
        var addresses: [RESPValue] = []
        for sentinel in sentinels {
            let replies = try await redisCommands(
                .tcp(sentinel.host, sentinel.port),
                [["SENTINEL", "get-master-addr-by-name", masterName]]
            )
            guard case .array(let address?) = replies[0], address.count == 2,
                case .bulk(let host?) = address[0], case .bulk(let port?) = address[1]
            else {
                Issue.record("sentinel \(sentinel.port) answered \(replies[0]) for \(masterName)")
                continue
            }
            #expect(host == "127.0.0.1")
            #expect(Int(port) != nil)
            addresses.append(replies[0])
        }
        #expect(Set(addresses.map { "\($0)" }).count == 1, "the sentinels disagree: \(addresses)")
    }
}
