@testable import SessionStorage
import SessionStorageConformance
import Testing

/// The shard's open-addressing table against a dictionary model, with hash fragments chosen to
/// collide and to cluster (probe runs that wrap around the table's end), through growth and
/// backward-shift removal.
@Suite("Memory zone table")
struct MemoryZoneTableTests {
    /// Fragment schemes: all equal (one probe run), few distinct values, values near the top
    /// of the slot range (runs wrapping to slot 0), and spread values.
    static let schemeNames = ["one fragment", "four fragments", "wrapping", "spread"]

    static func fragment(scheme: Int, node: Int, random: inout SplitMix64) -> UInt32 {
        switch scheme {
        case 0: 7
        case 1: UInt32(node % 4) &* 0x1000_0001
        case 2: UInt32.max &- UInt32(node % 3)
        default: UInt32(truncatingIfNeeded: random.next())
        }
    }

    @Test(arguments: 0..<4)
    func tableAgreesWithADictionary(scheme: Int) {
        let name = Self.schemeNames[scheme]
        for seed in 1...20 as ClosedRange<UInt64> {
            var random = SplitMix64(seed: seed)
            var table = ZoneTable()
            // node slot → its fragment: what the zone keeps in each node
            var model: [Int: UInt32] = [:]
            var nextNode = 0
            for _ in 0..<600 {
                if model.isEmpty || random.below(3) != 0 {
                    let node = nextNode
                    nextNode += 1
                    let fragment = Self.fragment(scheme: scheme, node: node, random: &random)
                    table.insert(fragment: fragment, node: node)
                    model[node] = fragment
                } else {
                    let node = model.keys.sorted()[random.below(model.count)]
                    table.remove(fragment: model[node]!, node: node)
                    model[node] = nil
                }
                #expect(table.count == model.count, "\(name), seed \(seed)")
            }
            // every node in the model is found through its own fragment, and only it
            for (node, fragment) in model {
                #expect(table.find(fragment: fragment) { $0 == node } == node, "\(name), seed \(seed): node \(node)")
            }
            // removed nodes are gone
            for node in 0..<nextNode where model[node] == nil && scheme != 3 {
                let fragment = Self.fragment(scheme: scheme, node: node, random: &random)
                #expect(table.find(fragment: fragment) { $0 == node } == nil, "\(name), seed \(seed)")
            }
            // removing everything leaves an empty table that still works
            for (node, fragment) in model { table.remove(fragment: fragment, node: node) }
            #expect(table.count == 0)
            table.insert(fragment: 3, node: 0)
            #expect(table.find(fragment: 3) { $0 == 0 } == 0)
        }
    }

    @Test func removingAnAbsentNodeChangesNothing() {
        var table = ZoneTable()
        table.remove(fragment: 1, node: 0)
        table.insert(fragment: 1, node: 0)
        table.remove(fragment: 1, node: 5)
        #expect(table.count == 1)
        #expect(table.find(fragment: 1) { $0 == 0 } == 0)
    }

    /// The zone through its public API against a dictionary model: sets, overwrites, deletes,
    /// expiries and sweeps of keys that share prefixes and suffixes, in one shard and in many.
    @Test(arguments: [1 << 20, 64 << 20])
    func zoneAgreesWithADictionary(capacity: Int) throws {
        let zone = MemoryZone(name: "model-\(capacity)", capacity: capacity)
        var model: [String: (value: String, expiresAt: Int)] = [:]
        var random = SplitMix64(seed: UInt64(capacity))
        let keys = (0..<300).map { index in
            switch index % 3 {
            case 0: "session:\(index)"
            case 1: "session:" + String(repeating: "k", count: 40) + "\(index)"
            default: "prefix:session:\(index):suffix"
            }
        }
        var now = 1
        for step in 0..<5000 {
            let key = keys[random.below(keys.count)]
            switch random.below(10) {
            case 0..<5:
                let value = "v\(step)" + String(repeating: "x", count: random.below(40))
                let expiresAt = now + 1 + random.below(20)
                try zone.set(key, value: value, expiresAt: expiresAt, now: now)
                model[key] = (value, expiresAt)
            case 5..<7:
                let existed = zone.delete(key)
                // an expired entry may still be there (reclaimed lazily) or already gone
                if let entry = model[key] {
                    if entry.expiresAt > now { #expect(existed, "step \(step), key \(key)") }
                } else {
                    #expect(!existed, "step \(step), key \(key)")
                }
                model[key] = nil
            case 7:
                now += 1
            case 8:
                zone.sweep(now: now)
                model = model.filter { $0.value.expiresAt > now }
            default:
                break
            }
            let expected = model[key].flatMap { $0.expiresAt > now ? $0.value : nil }
            #expect(zone.get(key, now: now) == expected, "step \(step), key \(key)")
        }
        for key in keys {
            #expect(zone.get(key, now: now) == model[key].flatMap { $0.expiresAt > now ? $0.value : nil })
        }
        zone.sweep(now: now)
        #expect(zone.count == model.filter { $0.value.expiresAt > now }.count)
    }
}
