import _MemcachedWire
import Foundation
import MemcachedSessionStorage
import NIOCore
import SessionStorage
import SessionStorageConformance
import Testing

/// Interop with lua-resty-session 4.1.5's memcached backend, from the recorded vectors.
@Suite("Memcached store interop with lua-resty-session", .serialized)
struct MemcachedInteropTests {
    static let files = ["memcached.json"]

    struct DumpItem {
        var key: String
        var value: String?
    }

    static func dump(_ vector: StorageVector) throws -> [DumpItem] {
        let serverDump = try #require(vector.json["server_dump"] as? [String: Any])
        let items = try #require(serverDump["items"] as? [[String: Any]])
        return items.compactMap { item in
            guard let key = item["key"] as? String else { return nil }
            return DumpItem(key: key, value: item["value"] as? String)
        }
    }

    static func configuration(_ vector: StorageVector) throws -> MemcachedSessionStore.Configuration {
        try Env.configuration(.tcp, prefix: vector.config["prefix"] as? String, suffix: vector.config["suffix"] as? String)
    }

    @Test(arguments: files)
    func readsWhatTheRealLibraryWrote(_ file: String) async throws {
        let vector = try StorageVector(file)
        let items = try Self.dump(vector)
        try await withStore(try Self.configuration(vector)) { store in
            // what lua-resty-session wrote, under the escaped keys it used
            for item in items {
                if let value = item.value {
                    try await store.client.set(item.key, value: ByteBuffer(string: value), expiration: .seconds(120))
                } else {
                    try await store.client.delete(item.key)
                }
            }
            // the reads of the vector, through our store
            for call in vector.calls where call.method != "set" {
                let args = call.args
                switch call.method {
                case "get":
                    let value = try await store.get(name: args[0].string!, key: args[1].string!, currentTime: args[2].integer!)
                    #expect(value == call.returns.first?.string)
                case "read_metadata":
                    let result = try await store.readMetadata(
                        name: args[0].string!, audience: args[1].string!, subject: args[2].string!, currentTime: args[3].integer!)
                    var expected: [String: Int] = [:]
                    if case .map(let map)? = call.returns.first {
                        for (key, value) in map { expected[key] = value.integer }
                    }
                    #expect(result == expected)
                default:
                    break
                }
            }
            for item in items { try await store.client.delete(item.key) }
        }
    }

    @Test(arguments: files)
    func writesWhatTheRealLibraryWrote(_ file: String) async throws {
        let vector = try StorageVector(file)
        let items = try Self.dump(vector)
        try await withStore(try Self.configuration(vector)) { store in
            for item in items { try await store.client.delete(item.key) }
            try await vector.replay(on: store)
            #expect(items.filter { $0.value != nil }.count == 5)
            #expect(items.filter { $0.value == nil }.count == 5)
            for item in items {
                // every escaped key holds byte for byte what lua-resty-session stored there, and
                // the unescaped names hold nothing, as with the original
                let stored = try await store.client.get(item.key)
                #expect(stored?.string == item.value, "\(item.key) differs from what lua-resty-session wrote")
            }
            for item in items { try await store.client.delete(item.key) }
        }
    }
}
