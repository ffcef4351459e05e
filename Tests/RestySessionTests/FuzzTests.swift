import SessionStorage
import Testing

@testable import RestySession
import SessionStorageConformance

@Suite("Fuzzed cookies")
struct FuzzTests {
    /// 100 000 cookies made from valid ones (cookie storage, deflated, chunked, a store, a
    /// remember cookie alone) by random bytes, bit flips, truncations and header-field flips:
    /// none traps, none opens, every one reports a reason.
    @Test func hundredThousandFuzzedCookiesNeverOpen() async throws {
        let clock = ManualClock(testStart)
        let store = TestStore()
        let cookieManager = try makeManager(clock: clock) { $0.remember = true; $0.rememberSafety = .none }
        let storeManager = try makeManager(store: store, clock: clock)
        let big = String(repeating: "0123456789abcdefghijklmnopqrstuvwxyz", count: 150)
        var chunkRandom = SplitMix64(seed: 3)
        let noise = String((0..<5000).map { _ in Character(Unicode.Scalar(UInt8(chunkRandom.next() % 26 + 65))) })

        var bases: [(manager: SessionManager, jar: [String: String], name: String)] = []
        bases.append((cookieManager, try await saveNew(cookieManager, ["user": "mallory"]).1.filter { $0.key == "session" }, "session"))
        bases.append((cookieManager, try await saveNew(cookieManager, ["text": .string(big)]).1.filter { $0.key == "session" }, "session"))
        bases.append((cookieManager, try await saveNew(cookieManager, ["noise": .string(noise)]).1.filter { $0.key.hasPrefix("session") }, "session"))
        bases.append((cookieManager, try await saveNew(cookieManager, ["user": "mallory"]).1.filter { $0.key == "remember" }, "remember"))
        bases.append((storeManager, try await saveNew(storeManager, ["user": "mallory"]).1, "session"))
        for base in bases {
            #expect(try await base.manager.open(SessionRequest(jar: base.jar)).state == .open)
        }
        #expect(bases[2].jar.count > 1)

        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var rng = SplitMix64(seed: 0xF022)
        var reasons: [SessionOpenFailure: Int] = [:]
        let total = 100_000
        for iteration in 0..<total {
            let base = bases[iteration % bases.count]
            var jar = base.jar
            let original = Array(jar[base.name]!.utf8)
            var value: [UInt8]
            switch (iteration / bases.count) % 5 {
            case 0:  // random base64url text of a plausible length
                value = randomBytes(Int(rng.next() % 400), &rng).map { alphabet[Int($0 & 63)] }
            case 1:  // random bytes
                value = randomBytes(Int(rng.next() % 300), &rng)
            case 2:  // bit flips in the text
                value = original
                var bits: Set<Int> = []
                let flips = Int(rng.next() % 3) + 1
                while bits.count < flips { bits.insert(Int(rng.next() % UInt64(value.count * 8))) }
                for bit in bits { value[bit / 8] ^= 1 << (bit % 8) }
            case 3:  // truncation
                value = Array(original.prefix(Int(rng.next() % UInt64(original.count))))
            default:  // a flipped bit in the decoded header or payload, re-encoded canonically
                var bytes = StrictBase64URL.decode(original.prefix(110))!
                // A first chunk's payload part need not be whole base64 quanta: then flip the header.
                var payload = StrictBase64URL.decode(original.dropFirst(110)) ?? []
                let rest = payload.isEmpty ? String(decoding: original.dropFirst(110), as: UTF8.self) : nil
                if payload.isEmpty || rng.next() % 2 == 0 {
                    let bit = Int(rng.next() % UInt64(bytes.count * 8))
                    bytes[bit / 8] ^= 1 << (bit % 8)
                } else {
                    let bit = Int(rng.next() % UInt64(payload.count * 8))
                    payload[bit / 8] ^= 1 << (bit % 8)
                }
                value = Array((Base64URL.encode(bytes) + (rest ?? Base64URL.encode(payload))).utf8)
            }
            jar[base.name] = String(decoding: value, as: UTF8.self)
            let session = try await base.manager.open(SessionRequest(jar: jar))
            guard session.state != .open, let reason = session.openFailure else {
                Issue.record("fuzzed cookie \(iteration) opened: base \(iteration % bases.count) mode \((iteration / bases.count) % 5)\n\(String(decoding: original, as: UTF8.self))\n\(String(decoding: value, as: UTF8.self))")
                continue
            }
            #expect(session.setCookieHeaders.isEmpty)
            #expect(session.data.isEmpty)
            reasons[reason, default: 0] += 1
        }
        #expect(reasons.values.reduce(0, +) == total)
        // The mutations reach every layer: parsing, the MAC, and the payload checks.
        #expect(reasons[.invalidHeader, default: 0] > 1000)
        #expect(reasons[.invalidMAC, default: 0] > 1000)
        #expect(reasons[.invalidPayload, default: 0] > 100)
        #expect(reasons[.decryptionFailed, default: 0] > 100)
    }

    /// `count` random bytes, eight per draw.
    private func randomBytes(_ count: Int, _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = rng.next()
            for _ in 0..<min(8, count - index) {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return bytes
    }
}
