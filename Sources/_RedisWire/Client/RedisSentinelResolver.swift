import Logging
import NIOCore
import NIOSSL

/// Asks Redis Sentinels where the master of a group is.
enum RedisSentinelResolver {
    /// Asks each sentinel in turn `SENTINEL GET-MASTER-ADDR-BY-NAME`; the first answer wins.
    ///
    /// - Throws: ``RedisClientError`` `sentinel` when no sentinel knows the master (with the
    ///   last sentinel's error as `underlying`).
    static func masterAddress(
        _ sentinel: RedisSentinelConfiguration,
        connection: RedisConnection.Configuration,
        eventLoop: any EventLoop,
        tlsContext: NIOSSLContext?,
        logger: Logger
    ) async throws -> RedisAddress {
        var lastError: (any Error)?
        for address in sentinel.sentinels {
            let configuration = sentinel.connectionConfiguration(to: address, timeoutsOf: connection)
            do {
                let connection = try await RedisConnection.connect(
                    configuration: configuration, eventLoop: eventLoop, tlsContext: tlsContext, logger: logger
                )
                defer { connection.close() }
                let reply = try await connection.send(.sentinelGetMasterAddress(name: sentinel.masterName))
                guard let parts = reply.array, parts.count == 2, let host = parts[0].string, let port = parts[1].int else {
                    lastError = RedisClientError(.sentinel, message: "the sentinel \(address) does not know the master")
                    continue
                }
                logger.debug("sentinel named the master", metadata: [RedisLoggingKeys.address: "\(host):\(port)"])
                return .tcp(host: host, port: port)
            } catch {
                logger.debug("sentinel failed", metadata: [RedisLoggingKeys.address: "\(address)"])
                lastError = error
            }
        }
        throw RedisClientError(.sentinel, message: "no sentinel named the master", underlying: lastError)
    }
}
