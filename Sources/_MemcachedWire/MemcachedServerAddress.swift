/// Where a memcached server listens.
public enum MemcachedServerAddress: Sendable, Hashable, CustomStringConvertible {
    /// A TCP host and port.
    case tcp(host: String, port: Int)
    /// A unix-domain socket path.
    case unixSocket(path: String)

    /// `host:port` or the socket path; also the name of the server on the hash ring.
    public var description: String {
        switch self {
        case .tcp(let host, let port): "\(host):\(port)"
        case .unixSocket(let path): path
        }
    }
}
