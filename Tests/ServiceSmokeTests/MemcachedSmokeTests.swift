import NIOCore
import Testing

/// Each memcached server `scripts/services.sh` starts answers `version`.
@Suite("memcached servers are up", .timeLimit(.minutes(1)))
struct MemcachedSmokeTests {
    private func version(_ endpoint: RawEndpoint) async throws -> String {
        var reply = try await rawExchange(endpoint, request: Array("version\r\n".utf8), until: hasCompleteLine)
        return reply.readString(length: reply.readableBytes) ?? ""
    }

    @Test func tcpPortAnswersVersion() async throws {
        let endpoint = RawEndpoint.tcp(try ServiceEnvironment.string("MEMCACHED_HOST"), try ServiceEnvironment.port("MEMCACHED_PORT"))
        #expect(try await version(endpoint).hasPrefix("VERSION 1.6"))
    }

    @Test func tlsPortAnswersVersionWithTheTestCA() async throws {
        let endpoint = RawEndpoint.tcp(
            try ServiceEnvironment.string("MEMCACHED_HOST"),
            try ServiceEnvironment.port("MEMCACHED_TLS_PORT"),
            tlsCAFile: try ServiceEnvironment.string("TLS_CA_FILE")
        )
        #expect(try await version(endpoint).hasPrefix("VERSION 1.6"))
    }

    @Test func unixSocketAnswersVersion() async throws {
        let endpoint = RawEndpoint.unix(try ServiceEnvironment.string("MEMCACHED_SOCKET"))
        #expect(try await version(endpoint).hasPrefix("VERSION 1.6"))
    }

    /// The servers run with `-I 4m`: a 1 MiB value (over the default limit with its overhead) fits.
    @Test func tcpPortStoresAOneMebibyteValue() async throws {
        let endpoint = RawEndpoint.tcp(try ServiceEnvironment.string("MEMCACHED_HOST"), try ServiceEnvironment.port("MEMCACHED_PORT"))
        let size = 1 << 20
        let key = "smoke-large-\(UInt64.random(in: 0...UInt64.max))"
        let request = Array("ms \(key) \(size) T30\r\n".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: size)
            + Array("\r\nmd \(key) q\r\nmn\r\n".utf8)
        var reply = try await rawExchange(endpoint, request: request) { buffer in
            buffer.readableBytesView.firstRange(of: Array("MN\r\n".utf8)) != nil
        }
        #expect(reply.readString(length: reply.readableBytes) == "HD\r\nMN\r\n")
    }
}
