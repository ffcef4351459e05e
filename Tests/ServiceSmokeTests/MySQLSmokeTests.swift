import NIOCore
import Testing

/// The MariaDB server `scripts/services.sh` starts greets on TCP and on its unix socket.
@Suite("MariaDB server is up", .timeLimit(.minutes(1)))
struct MySQLSmokeTests {
    /// The server speaks first: one packet (3-byte little-endian length, sequence id) holding the
    /// protocol version and a NUL-terminated server version.
    private func greeting(_ endpoint: RawEndpoint) async throws -> (protocolVersion: UInt8, serverVersion: String) {
        var packet = try await rawExchange(endpoint, request: []) { buffer in
            guard buffer.readableBytes >= 4 else { return false }
            let bytes = buffer.readableBytesView
            let length = Int(bytes[bytes.startIndex]) | Int(bytes[bytes.startIndex + 1]) << 8
                | Int(bytes[bytes.startIndex + 2]) << 16
            return buffer.readableBytes >= 4 + length
        }
        try #require(packet.readableBytes > 5, "the server closed the connection without a greeting")
        packet.moveReaderIndex(forwardBy: 4)
        let protocolVersion = packet.readInteger(as: UInt8.self)
        let end = try #require(packet.readableBytesView.firstIndex(of: 0), "no NUL after the server version")
        let serverVersion = packet.readString(length: end - packet.readerIndex)
        return (try #require(protocolVersion), try #require(serverVersion))
    }

    @Test func tcpPortGreets() async throws {
        let endpoint = RawEndpoint.tcp(try ServiceEnvironment.string("MYSQL_HOST"), try ServiceEnvironment.port("MYSQL_PORT"))
        let hello = try await greeting(endpoint)
        #expect(hello.protocolVersion == 10)
        #expect(hello.serverVersion.contains("MariaDB"), "server version \(hello.serverVersion)")
    }

    @Test func unixSocketGreets() async throws {
        let hello = try await greeting(.unix(try ServiceEnvironment.string("MYSQL_SOCKET")))
        #expect(hello.protocolVersion == 10)
        #expect(hello.serverVersion.contains("MariaDB"), "server version \(hello.serverVersion)")
    }
}
