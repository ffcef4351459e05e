import Logging
import NIOCore
import NIOSSL

/// A Sentinel `+switch-master` event: the group `masterName` now has its master at `newMaster`.
struct RedisMasterSwitch: Sendable, Hashable {
    /// The name of the master group.
    var masterName: String
    /// The address of the demoted master.
    var oldMaster: RedisAddress
    /// The address of the promoted master.
    var newMaster: RedisAddress

    /// Parses a pub/sub message (`message`, `+switch-master`, payload; a RESP3 push or a RESP2
    /// array) about the group `masterName`; `nil` for another channel, another group or a
    /// malformed payload.
    static func parse(message: RESPValue, masterName: String) -> RedisMasterSwitch? {
        guard let elements = message.array, elements.count == 3,
            elements[0].string?.lowercased() == "message",
            elements[1].string == RedisSentinelWatcher.channel,
            let payload = elements[2].string
        else { return nil }
        return parse(payload: payload, masterName: masterName)
    }

    /// Parses `<master-name> <old-ip> <old-port> <new-ip> <new-port>`; `nil` for another group
    /// or a malformed payload.
    static func parse(payload: String, masterName: String) -> RedisMasterSwitch? {
        let parts = payload.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 5, parts[0] == masterName,
            let oldPort = Int(parts[2]), (1...65535).contains(oldPort),
            let newPort = Int(parts[4]), (1...65535).contains(newPort)
        else { return nil }
        return RedisMasterSwitch(
            masterName: masterName,
            oldMaster: .tcp(host: String(parts[1]), port: oldPort),
            newMaster: .tcp(host: String(parts[3]), port: newPort)
        )
    }
}

/// Follows a Sentinel group's failovers: subscribes to `+switch-master` on one sentinel at a
/// time and reports every switch of the configured master.
enum RedisSentinelWatcher {
    /// The Sentinel channel announcing a new master.
    static let channel = "+switch-master"

    /// Watches until the task is cancelled. Connects to each sentinel in turn (with the
    /// sentinels' credentials and TLS); on a lost or failed connection, waits `backoff` and
    /// tries the next one. `onSwitch` runs for each switch of `sentinel.masterName`, one at a time.
    static func watch(
        _ sentinel: RedisSentinelConfiguration,
        connection: RedisConnection.Configuration,
        eventLoopGroup: any EventLoopGroup,
        tlsContext: @Sendable () throws -> NIOSSLContext?,
        backoff: Duration = .milliseconds(500),
        logger: Logger,
        onSwitch: @Sendable (RedisMasterSwitch) async -> Void
    ) async {
        guard !sentinel.sentinels.isEmpty else { return }
        var index = 0
        while !Task.isCancelled {
            let address = sentinel.sentinels[index % sentinel.sentinels.count]
            index &+= 1
            do {
                try await watchOne(
                    address: address, sentinel, connection: connection, eventLoop: eventLoopGroup.any(),
                    tlsContext: tlsContext(), logger: logger, onSwitch: onSwitch
                )
            } catch {
                logger.debug(
                    "sentinel watcher connection failed",
                    metadata: [RedisLoggingKeys.address: "\(address)", "error": "\(error)"]
                )
            }
            if Task.isCancelled { break }
            // A lost sentinel: the next one after a pause (cancellation ends the pause).
            try? await Task.sleep(for: backoff)
        }
        logger.debug("sentinel watcher stopped")
    }

    /// Subscribes on one sentinel and handles its messages until the connection closes or the
    /// task is cancelled.
    private static func watchOne(
        address: RedisAddress,
        _ sentinel: RedisSentinelConfiguration,
        connection: RedisConnection.Configuration,
        eventLoop: any EventLoop,
        tlsContext: NIOSSLContext?,
        logger: Logger,
        onSwitch: @Sendable (RedisMasterSwitch) async -> Void
    ) async throws {
        let configuration = sentinel.connectionConfiguration(to: address, timeoutsOf: connection)
        let (messages, continuation) = AsyncStream.makeStream(of: RESPValue.self, bufferingPolicy: .bufferingNewest(64))
        let subscriber = try await RedisConnection.connect(
            configuration: configuration, eventLoop: eventLoop, tlsContext: tlsContext, logger: logger,
            onPush: { continuation.yield($0) }
        )
        subscriber.onClose { _ in continuation.finish() }
        do {
            try await subscribed(
                subscriber, address: address, messages: messages, masterName: sentinel.masterName,
                logger: logger, onSwitch: onSwitch
            )
        } catch {
            await subscriber.closeAndWait()
            throw error
        }
        await subscriber.closeAndWait()
    }

    /// Subscribes to ``channel`` on `subscriber` and hands each switch of `masterName` to
    /// `onSwitch` until the connection closes; cancellation closes it.
    private static func subscribed(
        _ subscriber: RedisConnection,
        address: RedisAddress,
        messages: AsyncStream<RESPValue>,
        masterName: String,
        logger: Logger,
        onSwitch: @Sendable (RedisMasterSwitch) async -> Void
    ) async throws {
        try await withTaskCancellationHandler {
            let reply = try await subscriber.send(RedisCommand("SUBSCRIBE", [.init(channel)]))
            guard reply.array?.first?.string?.lowercased() == "subscribe" else {
                throw RedisClientError(.sentinel, message: "the sentinel \(address) refused to subscribe to \(channel)")
            }
            logger.debug("sentinel watcher subscribed", metadata: [RedisLoggingKeys.address: "\(address)"])
            for await message in messages {
                guard let change = RedisMasterSwitch.parse(message: message, masterName: masterName) else {
                    continue
                }
                await onSwitch(change)
            }
        } onCancel: {
            subscriber.close()
        }
    }
}
