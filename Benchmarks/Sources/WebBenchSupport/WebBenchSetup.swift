import Foundation
import Logging
import RestySession
import SessionStorageURL

/// What web-bench and vapor-web-bench share: their options and the session manager on the
/// store of `--storage`.
public struct WebBenchSetup: Sendable {
    /// The storage URL (`--storage`, default `memory://bench`).
    public var storage = "memory://bench"
    /// The port (`--port`, default 8090).
    public var port = 8090
    /// Event loop threads (`--threads`, default 1: like one nginx worker).
    public var threads = 1

    /// Parses the command line; exits with the usage on an unknown argument.
    public static func fromCommandLine(program: String) -> WebBenchSetup {
        var setup = WebBenchSetup()
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--storage": setup.storage = arguments.next() ?? setup.storage
            case "--port": setup.port = arguments.next().flatMap(Int.init) ?? setup.port
            case "--threads": setup.threads = arguments.next().flatMap(Int.init) ?? setup.threads
            default:
                FileHandle.standardError.write(Data("usage: \(program) [--storage URL] [--port PORT] [--threads N]\n".utf8))
                exit(2)
            }
        }
        return setup
    }

    /// A logger at `warning`, the store of ``storage`` and a session manager on it (no index).
    public func makeManager(label: String) throws -> (logger: Logger, store: ConfiguredSessionStore, manager: SessionManager) {
        var logger = Logger(label: label)
        logger.logLevel = .warning
        let store = try SessionStorageFactory.standard.makeStore(url: storage, logger: logger)
        var configuration = SessionManager.Configuration(secret: "web-bench secret, not for production")
        configuration.storeMetadata = false
        let manager = try SessionManager(configuration: configuration, storage: store, logger: logger)
        return (logger, store, manager)
    }
}
