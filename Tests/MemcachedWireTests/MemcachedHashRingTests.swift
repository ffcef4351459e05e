import Testing

@testable import _MemcachedWire

@Suite("MemcachedHashRing")
struct MemcachedHashRingTests {
    let keys = (0..<30_000).map { "sessions%3Asession%3Akey-\($0)" }

    @Test func threeServersShareKeysWithinTwentyPercentOfEven() {
        let ring = MemcachedHashRing(servers: ["127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"])
        var counts = [0, 0, 0]
        for key in keys { counts[ring.server(for: key)] += 1 }
        let even = Double(keys.count) / 3
        for count in counts {
            #expect(abs(Double(count) - even) / even <= 0.2, "counts \(counts)")
        }
    }

    @Test func aFourthServerMovesAtMostThirtyFivePercent() {
        let three = MemcachedHashRing(servers: ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"])
        let four = MemcachedHashRing(servers: ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", "10.0.0.4:11211"])
        var moved = 0
        for key in keys {
            let before = three.server(for: key)
            let after = four.server(for: key)
            if before != after {
                moved += 1
                // a key only ever moves to the new server
                #expect(after == 3)
            }
        }
        let share = Double(moved) / Double(keys.count)
        #expect(share <= 0.35, "moved \(share)")
        #expect(share >= 0.15, "moved \(share)")
    }

    @Test func isDeterministicAndSingleServerIsTrivial() {
        let a = MemcachedHashRing(servers: ["a", "b"])
        let b = MemcachedHashRing(servers: ["a", "b"])
        for key in keys.prefix(100) { #expect(a.server(for: key) == b.server(for: key)) }
        let one = MemcachedHashRing(servers: ["a"])
        #expect(one.server(for: "x") == 0)
    }
}
