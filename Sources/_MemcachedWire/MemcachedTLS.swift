import NIOSSL

/// Whether and how connections use TLS (memcached has no STARTTLS: a TLS port speaks TLS
/// from the first byte, so there is no "prefer").
public struct MemcachedTLS: Sendable {
    enum Base: Sendable {
        case disable
        case require(TLSConfiguration)
    }

    let base: Base
    /// The name sent in SNI and checked against the certificate; when `nil`, the host of a
    /// TCP address is used (an IP address is checked against the certificate's IP entries).
    public var serverName: String?

    /// Plain connections.
    public static let disable = MemcachedTLS(base: .disable, serverName: nil)

    /// TLS with a configuration of swift-nio-ssl.
    public static func require(_ configuration: TLSConfiguration, serverName: String? = nil) -> MemcachedTLS {
        MemcachedTLS(base: .require(configuration), serverName: serverName)
    }

    /// TLS as lua-resty-session configures it: `ssl`, `ssl_verify`, `server_name`, plus the
    /// CA file to trust (the system's roots when `nil`).
    public static func require(verify: Bool = true, caFile: String? = nil, serverName: String? = nil) -> MemcachedTLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = verify ? .fullVerification : .none
        if let caFile { configuration.trustRoots = .file(caFile) }
        return .require(configuration, serverName: serverName)
    }

    /// Whether TLS is on.
    public var isEnabled: Bool {
        if case .require = base { return true }
        return false
    }

    /// The context shared by every connection (loading a CA file once).
    func makeContext() throws -> NIOSSLContext? {
        guard case .require(let configuration) = base else { return nil }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw MemcachedClientError(.tls, message: "could not create the TLS context", underlying: error)
        }
    }
}
