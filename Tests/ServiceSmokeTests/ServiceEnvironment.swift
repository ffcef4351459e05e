import Foundation
import Testing

/// The addresses of the test servers, from the variables `scripts/services.sh start` exports.
///
/// A missing variable fails the test (never skips it): run the tests with `scripts/test.sh`, or
/// `source $SERVICES_ROOT/env` after `scripts/services.sh start`.
enum ServiceEnvironment {
    static func string(_ name: String) throws -> String {
        try #require(
            ProcessInfo.processInfo.environment[name],
            "\(name) is not set: start the servers with scripts/services.sh start and source $SERVICES_ROOT/env"
        )
    }

    static func port(_ name: String) throws -> Int {
        let raw = try string(name)
        return try #require(Int(raw), "\(name)=\(raw) is not a port number")
    }

    /// A comma-separated list of `host:port` pairs, such as `REDIS_CLUSTER_NODES`.
    static func hostPorts(_ name: String) throws -> [(host: String, port: Int)] {
        let raw = try string(name)
        let pairs = raw.split(separator: ",").map { item -> (host: String, port: Int)? in
            guard let colon = item.lastIndex(of: ":"), let port = Int(item[item.index(after: colon)...]) else {
                return nil
            }
            return (String(item[..<colon]), port)
        }
        let parsed = pairs.compactMap { $0 }
        try #require(parsed.count == pairs.count && !parsed.isEmpty, "\(name)=\(raw) is not a list of host:port")
        return parsed
    }
}
