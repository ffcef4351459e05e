import Foundation
import SessionStorage

/// The storage vectors of `shared/vectors/storage/`: what the real lua-resty-session 4.1.5
/// wrote into real servers for known calls. Every backend's interop test replays them.
public struct StorageVector: @unchecked Sendable {
    // @unchecked: `json` is an immutable tree of Foundation JSON values, never mutated after init.

    /// A Lua value of the harness's typed encoding.
    public enum Value: Sendable, Hashable {
        case string(String)
        case number(Double)
        case boolean(Bool)
        case null
        case none
        case array([Value])
        case map([String: Value])

        init(_ any: Any?) {
            guard let object = any as? [String: Any], let type = object["type"] as? String else {
                self = .none
                return
            }
            switch type {
            case "string": self = .string(object["value"] as? String ?? "")
            case "number": self = .number((object["value"] as? NSNumber)?.doubleValue ?? 0)
            case "boolean": self = .boolean(object["value"] as? Bool ?? false)
            case "null": self = .null
            case "table":
                if let array = object["array"] as? [Any] {
                    self = .array(array.map { Value($0) })
                } else if let map = object["map"] as? [String: Any] {
                    self = .map(map.mapValues { Value($0) })
                } else {
                    self = .map([:])
                }
            default: self = .none
            }
        }

        /// The string, if this is one.
        public var string: String? {
            if case .string(let value) = self { return value }
            return nil
        }

        /// The integer, if this is a number or a numeric string.
        public var integer: Int? {
            switch self {
            case .number(let value): return Int(value)
            case .string(let value): return Int(value) ?? Double(value).map { Int($0) }
            default: return nil
            }
        }
    }

    /// One call of the harness.
    public struct Call: Sendable {
        /// `set`, `get`, `delete`, `read_metadata`.
        public var method: String
        /// The arguments, typed.
        public var args: [Value]
        /// What the real library returned.
        public var returns: [Value]
    }

    /// The file's name.
    public let file: String
    /// The whole JSON document.
    public let json: [String: Any]
    /// The `ngx.time()` used as `current_time`.
    public let currentTime: Int
    /// The configuration table passed to `.new()`.
    public let config: [String: Any]
    /// The calls, in order.
    public let calls: [Call]

    /// Loads `shared/vectors/storage/<file>`.
    public init(_ file: String, filePath: String = #filePath) throws {
        let url = try SharedFixtures.url("vectors/storage/\(file)", filePath: filePath)
        let data = try Data(contentsOf: url)
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let harness = json["harness"] as? [String: Any]
        else { throw ConformanceFailure("\(file) is not a storage vector") }
        self.file = file
        self.json = json
        self.currentTime = (harness["current_time"] as? NSNumber)?.intValue ?? 0
        self.config = harness["config"] as? [String: Any] ?? [:]
        self.calls = (harness["calls"] as? [[String: Any]] ?? []).map { call in
            Call(
                method: call["method"] as? String ?? "",
                args: (call["args"] as? [Any] ?? []).map { Value($0) },
                returns: (call["returns"] as? [Any] ?? []).map { Value($0) }
            )
        }
    }

    /// The harness's `server_dump` (or another top-level / harness key).
    public func harnessValue(_ key: String) -> Any? {
        (json["harness"] as? [String: Any])?[key] ?? json[key]
    }

    static func metadata(_ value: Value?) throws -> SessionMetadata? {
        guard case .map(let map)? = value, case .array(let audiences)? = map["audiences"],
            case .array(let subjects)? = map["subjects"]
        else { return nil }
        return try SessionMetadata(audiences: audiences.compactMap(\.string), subjects: subjects.compactMap(\.string))
    }

    /// Replays every call on `store` and checks that `get` and `read_metadata` return what the
    /// real library returned (values byte-exact; index keys and expiries equal, whatever form
    /// the original gave them: numbers, score strings or timestamps).
    ///
    /// - Parameter getHonoursCurrentTime: the store compares expiry with `currentTime` on `get`
    ///   (memory, SQL), where the original's Redis, memcached and shm backends ignore it: a `get`
    ///   of the vector at a time past every TTL must then return nothing.
    public func replay(
        on store: any SessionStore,
        getHonoursCurrentTime: Bool = false,
        parseExpiry: (String) -> Int? = { Int($0) }
    ) async throws {
        for (index, call) in calls.enumerated() {
            let args = call.args
            let label = "\(file) call \(index + 1) (\(call.method))"
            switch call.method {
            case "set":
                let oldKey = args.count > 5 ? args[5].string : nil
                let stale = args.count > 6 ? args[6].integer : nil
                let metadata = try Self.metadata(args.count > 7 ? args[7] : nil)
                try await store.set(
                    name: args[0].string!, key: args[1].string!, value: args[2].string!, ttl: args[3].integer!,
                    currentTime: args[4].integer!, oldKey: oldKey, staleTTL: stale ?? 10, metadata: metadata)
            case "get":
                let time = args[2].integer!
                let value = try await store.get(name: args[0].string!, key: args[1].string!, currentTime: time)
                if getHonoursCurrentTime && time > currentTime + 3000 {
                    try check(value == nil, "\(label): a record past its expiry was returned")
                } else {
                    try check(value == call.returns.first?.string, "\(label): got \(value.debugDescription)")
                }
            case "delete":
                let metadata = try Self.metadata(args.count > 2 ? args[2] : nil)
                try await store.delete(
                    name: args[0].string!, key: args[1].string!, currentTime: currentTime, metadata: metadata)
            case "read_metadata":
                let result = try await store.readMetadata(
                    name: args[0].string!, audience: args[1].string!, subject: args[2].string!,
                    currentTime: args[3].integer!)
                var expected: [String: Int] = [:]
                if case .map(let map)? = call.returns.first {
                    for (key, value) in map {
                        guard let expiry = value.string.flatMap(parseExpiry) ?? value.integer else {
                            throw ConformanceFailure("\(label): unreadable expiry in the vector")
                        }
                        expected[key] = expiry
                    }
                }
                try check(result == expected, "\(label): got \(result), expected \(expected)")
            default:
                throw ConformanceFailure("\(label): unknown method")
            }
        }
    }
}

/// Finds the files of the project's `shared/` folder: beside the repository (`../shared`, as in
/// CI), or at `/work/shared`.
public enum SharedFixtures {
    /// The URL of `relativePath` inside `shared/`.
    public static func url(_ relativePath: String, filePath: String = #filePath) throws -> URL {
        var directory = URL(fileURLWithPath: filePath).deletingLastPathComponent()
        var candidates: [URL] = []
        if let override = ProcessInfo.processInfo.environment["SESSION_SHARED_DIR"] {
            candidates.append(URL(fileURLWithPath: override))
        }
        for _ in 0..<6 {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
                candidates.append(directory.deletingLastPathComponent().appendingPathComponent("shared"))
                break
            }
            directory = directory.deletingLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: "/work/shared"))
        for candidate in candidates {
            let file = candidate.appendingPathComponent(relativePath)
            if FileManager.default.fileExists(atPath: file.path) { return file }
        }
        throw ConformanceFailure("shared/\(relativePath) not found beside the repository or at /work/shared")
    }
}
