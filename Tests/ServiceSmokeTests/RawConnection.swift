import NIOCore
import NIOPosix
import NIOSSL

/// Where a raw connection goes: a TCP port (optionally with TLS) or a unix domain socket.
struct RawEndpoint: Sendable {
    enum Address: Sendable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    var address: Address
    /// TLS with this CA file as the only trust root; the certificate must be valid for `serverHostname`.
    var tlsCAFile: String?
    var serverHostname = "localhost"

    static func tcp(_ host: String, _ port: Int, tlsCAFile: String? = nil) -> RawEndpoint {
        RawEndpoint(address: .tcp(host: host, port: port), tlsCAFile: tlsCAFile)
    }

    static func unix(_ path: String) -> RawEndpoint {
        RawEndpoint(address: .unix(path: path))
    }
}

struct RawConnectionTimeout: Error {}

/// Opens one connection, writes `request`, collects bytes until `isComplete` says the answer is
/// all there (or the server closes), closes the connection and returns what arrived.
func rawExchange(
    _ endpoint: RawEndpoint,
    request: [UInt8],
    timeout: Duration = .seconds(10),
    until isComplete: @escaping @Sendable (ByteBuffer) -> Bool
) async throws -> ByteBuffer {
    let sslContext = try endpoint.tlsCAFile.map { caFile in
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file(caFile)
        configuration.certificateVerification = .fullVerification
        return try NIOSSLContext(configuration: configuration)
    }
    let hostname = endpoint.serverHostname
    let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
        channel.eventLoop.makeCompletedFuture {
            if let sslContext {
                let tls = try NIOSSLClientHandler(context: sslContext, serverHostname: hostname)
                try channel.pipeline.syncOperations.addHandler(tls)
            }
            return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
        }
    }
    return try await withThrowingTaskGroup(of: ByteBuffer.self) { group in
        group.addTask {
            let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(5))
            let channel =
                switch endpoint.address {
                case .tcp(let host, let port):
                    try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
                case .unix(let path):
                    try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initializer)
                }
            return try await channel.executeThenClose { inbound, outbound in
                if !request.isEmpty {
                    try await outbound.write(ByteBuffer(bytes: request))
                }
                var received = ByteBuffer()
                for try await chunk in inbound {
                    received.writeImmutableBuffer(chunk)
                    if isComplete(received) { break }
                }
                return received
            }
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw RawConnectionTimeout()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// True once `buffer` holds a `\r\n`-terminated line.
@Sendable func hasCompleteLine(_ buffer: ByteBuffer) -> Bool {
    buffer.readableBytesView.firstRange(of: [UInt8(ascii: "\r"), UInt8(ascii: "\n")]) != nil
}
