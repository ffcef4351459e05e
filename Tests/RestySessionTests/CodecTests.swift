import Foundation
import Crypto
import SessionStorage
import Testing

@testable import RestySession
import SessionStorageConformance

@Suite("Codecs: deflate, JSON, base64url, PBKDF2, header")
struct CodecTests {
    // MARK: inflate / deflate

    @Test(arguments: ZlibVectors.all)
    func inflatesZlibOutput(_ vector: ZlibVectors.Vector) throws {
        let inflated = try RawInflate.inflate([UInt8](hex: vector.deflatedHex), limit: 1 << 20)
        #expect(inflated.count == vector.inflatedCount)
        #expect(SessionCrypto.sha256(inflated).hex == vector.inflatedSHA256)
        // The output limit is enforced.
        #expect(throws: RawInflate.Failure.outputLimitExceeded) {
            try RawInflate.inflate([UInt8](hex: vector.deflatedHex), limit: vector.inflatedCount - 1)
        }
    }

    @Test func deflateRoundTrips() throws {
        var rng = SplitMix64(seed: 42)
        var inputs: [[UInt8]] = [[], [0], Array("a".utf8), [UInt8](repeating: 7, count: 100_000)]
        inputs.append((0..<70_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        // Matches at distances up to the 32 KiB window, and runs longer than 258.
        let block = (0..<1000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        inputs.append(block + [UInt8](repeating: 1, count: 31_000) + block + [UInt8](repeating: 2, count: 600) + block)
        for _ in 0..<200 {
            var input: [UInt8] = []
            let length = Int(rng.next() % 5000)
            while input.count < length {
                if rng.next() % 2 == 0, input.count > 10 {
                    let start = Int(rng.next() % UInt64(input.count))
                    let count = min(Int(rng.next() % 300), input.count - start)
                    input += input[start..<(start + count)]
                } else {
                    input += (0..<Int(rng.next() % 20)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 8 + 97) }
                }
            }
            inputs.append(input)
        }
        for input in inputs {
            let deflated = RawDeflate.deflate(input)
            #expect(try RawInflate.inflate(deflated, limit: input.count) == input)
        }
        // Repetitive JSON shrinks a lot.
        let json = Array(String(repeating: #"{"user":"alice","role":"admin"},"#, count: 100).utf8)
        #expect(RawDeflate.deflate(json).count < json.count / 10)
        #expect(RawDeflate.deflate(json, ifSmallerThan: json.count) == RawDeflate.deflate(json))
        // incompressible input: the limited form gives up, the full form still round-trips
        var noise = SplitMix64(seed: 5)
        let random = (0..<1500).map { _ in UInt8.random(in: 0...255, using: &noise) }
        #expect(RawDeflate.deflate(random, ifSmallerThan: random.count) == nil)
        #expect(try RawInflate.inflate(RawDeflate.deflate(random), limit: random.count) == random)
        // a long unmatched run followed by repetition still compresses (the skip-ahead resets)
        let mixed = random + Array(repeating: 0x41, count: 3000)
        let deflatedMixed = try #require(RawDeflate.deflate(mixed, ifSmallerThan: mixed.count))
        #expect(deflatedMixed.count < random.count + 300)
        #expect(try RawInflate.inflate(deflatedMixed, limit: mixed.count) == mixed)
    }

    @Test func inflateRejectsMalformedStreamsWithoutTrapping() throws {
        // 20 000 mutated and random streams: each inflates or throws, and respects the limit.
        var rng = SplitMix64(seed: 7)
        let valid = ZlibVectors.all.map { [UInt8](hex: $0.deflatedHex) }
        var failures = 0
        for iteration in 0..<20_000 {
            var input: [UInt8]
            switch iteration % 3 {
            case 0:
                input = valid[iteration % valid.count]
                for _ in 0...(rng.next() % 4) {
                    let bit = Int(rng.next() % UInt64(input.count * 8))
                    input[bit / 8] ^= 1 << (bit % 8)
                }
            case 1:
                input = Array(valid[iteration % valid.count].prefix(Int(rng.next() % 120)))
            default:
                input = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            do {
                let output = try RawInflate.inflate(input, limit: 10_000)
                #expect(output.count <= 10_000)
            } catch {
                failures += 1
            }
        }
        #expect(failures > 10_000)
        #expect(throws: RawInflate.Failure.self) { try RawInflate.inflate([0x07], limit: 100) }  // block type 3
        #expect(throws: RawInflate.Failure.storedLengthMismatch) { try RawInflate.inflate([0x01, 0x01, 0x00, 0x00, 0x00], limit: 100) }
    }

    // MARK: JSON

    @Test func jsonEncodesAsLuaCjsonDoes() {
        let value: SessionValue = [
            "s": "a/b \"q\" \\ \n\t\u{01}\u{7F} é 😀",
            "n": [0, -3, 1.5, 1e300, 123_456_789_012],
            "b": [true, false, nil],
            "o": [:],
        ]
        let json = String(decoding: SessionJSON.encode(value), as: UTF8.self)
        #expect(json == #"{"b":[true,false,null],"n":[0,-3,1.5,1e+300,123456789012],"o":{},"s":"a\/b \"q\" \\ \n\t\u0001\u007f é 😀"}"#)
        #expect(SessionJSON.decode(Array(json.utf8)) == value)
        #expect(String(decoding: SessionJSON.encode(.number(.infinity)), as: UTF8.self) == "null")
    }

    @Test func jsonDecodesEscapesAndRejectsMalformedInput() {
        #expect(SessionJSON.decode(Array(#"["\u00e9\ud83d\ude00", 1E2, -0.5e-1, "\/"]"#.utf8)) == ["é😀", 100, -0.05, "/"])
        for bad in [
            "", "[", "[1,]", "{\"a\"}", "{\"a\":}", "01", "1.", "-", "tru", "\"\\x\"", "\"\u{01}\"", "\"\\ud800\"",
            "\"\\udc00\"", "[1] x", "{1:2}", "nan", "1e", "[\"a\"", "\"\\u12\"",
        ] {
            #expect(SessionJSON.decode(Array(bad.utf8)) == nil, "\(bad)")
        }
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(SessionJSON.decode(Array(deep.utf8)) == nil)
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(SessionJSON.decode(Array(fine.utf8)) != nil)
    }

    @Test func jsonStringsMustBeValidUTF8AtEveryOffset() {
        // ASCII takes a fast path; a non-ASCII byte anywhere (in the 8-byte words or the tail)
        // must send the string through validation, with and without escapes before it.
        for length in 0..<20 {
            for position in 0..<max(length, 1) {
                for escaped in [false, true] {
                    let prefix: [UInt8] = escaped ? Array(#"\n"#.utf8) : []
                    var ascii = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    var json = Array(#"[""#.utf8) + prefix + ascii + Array(#""]"#.utf8)
                    let plain = String(repeating: "a", count: length)
                    #expect(SessionJSON.decode(json) == [.string((escaped ? "\n" : "") + plain)])
                    guard length > 0 else { continue }
                    for bad in [[0xFF], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0x80]] as [[UInt8]] {
                        ascii = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                        ascii.replaceSubrange(position..<position + 1, with: bad)
                        json = Array(#"[""#.utf8) + prefix + ascii + Array(#""]"#.utf8)
                        #expect(SessionJSON.decode(json) == nil, "length \(length) at \(position): \(bad)")
                    }
                    ascii = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    ascii.replaceSubrange(position..<position + 1, with: Array("é".utf8))
                    json = Array(#"[""#.utf8) + prefix + ascii + Array(#""]"#.utf8)
                    #expect(SessionJSON.decode(json) == [.string(String(decoding: prefix.isEmpty ? ascii : Array("\n".utf8) + ascii, as: UTF8.self))])
                }
            }
        }
    }

    @Test func jsonStringsRoundTripWithEscapesAtEveryOffset() {
        // the word-at-a-time scans must stop at an escape wherever it sits in the 8-byte word
        var rng = SplitMix64(seed: 17)
        let pieces = ["a", "b", "é", "😀", "\"", "\\", "/", "\n", "\u{01}", "\u{7F}", "\u{1F}", "~", " "]
        for _ in 0..<2000 {
            let text = (0..<Int.random(in: 0...40, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            var encoded: [UInt8] = []
            SessionJSON.encodeString(text, into: &encoded)
            // reference: escape byte by byte
            var expected: [UInt8] = [0x22]
            for byte in text.utf8 {
                switch byte {
                case 0x22: expected += [0x5C, 0x22]
                case 0x5C: expected += [0x5C, 0x5C]
                case 0x2F: expected += [0x5C, 0x2F]
                case 0x0A: expected += [0x5C, UInt8(ascii: "n")]
                case 0x00..<0x20, 0x7F: expected += Array(String(format: "\\u%04x", byte).utf8)
                default: expected.append(byte)
                }
            }
            expected.append(0x22)
            #expect(encoded == expected, "\(text)")
            #expect(SessionJSON.decode(encoded) == .string(text))
            // unescaped controls inside a string are refused wherever they are
            if let control = text.utf8.firstIndex(where: { $0 < 0x20 }) {
                var raw = [UInt8(0x22)] + Array(text.utf8) + [0x22]
                raw[text.utf8.distance(from: text.utf8.startIndex, to: control) + 1] = 0x01
                #expect(SessionJSON.decode(raw) == nil)
            }
        }
    }

    @Test func jsonIntegersMatchTheGeneralNumberPath() {
        // integers of up to 15 digits are read without strtod: the same Double as Double(text),
        // sign of zero included; longer ones and fractions take the general path
        var rng = SplitMix64(seed: 51)
        var texts = ["0", "-0", "7", "-7", "10", "999999999999999", "-999999999999999", "1000000000000000",
                     "123456789012345678901234567890", "1.5", "-0.0", "1e3", "12E-2", "9007199254740993"]
        for digits in 1...18 {
            for _ in 0..<20 {
                var text = String(1 + rng.next() % 9)
                for _ in 1..<digits { text += String(rng.next() % 10) }
                texts.append(text)
                texts.append("-" + text)
            }
        }
        for text in texts {
            guard case .number(let number)? = SessionJSON.decode(Array(text.utf8)),
                  case .array(let elements)? = SessionJSON.decode(Array("[\(text),\(text)]".utf8)),
                  elements.count == 2, case .number(let inArray) = elements[0]
            else {
                Issue.record("\(text) did not decode")
                continue
            }
            let expected = Double(text)!
            #expect(number == expected && number.sign == expected.sign, "\(text)")
            #expect(inArray == expected && inArray.sign == expected.sign, "\(text)")
        }
        for malformed in ["01", "-", "--1", "1.", ".5", "1e", "+1", "0x10", "1 2"] {
            #expect(SessionJSON.decode(Array(malformed.utf8)) == nil, "\(malformed)")
        }
        // objects of any size still decode whole
        for count in [0, 1, 2, 4, 5, 17] {
            let text = "{" + (0..<count).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + "}"
            guard case .object(let members)? = SessionJSON.decode(Array(text.utf8)) else {
                Issue.record("\(text) did not decode")
                continue
            }
            #expect(members.count == count)
            for index in 0..<count { #expect(members["k\(index)"] == .number(Double(index))) }
        }
    }

    @Test func entriesEncodeAsTheirJSONTree() {
        // the entries' direct encoder writes what the JSON encoder writes for the same tree
        var rng = SplitMix64(seed: 61)
        func text() -> String {
            let characters = Array("ab/\\\"é\u{7F}\n z0".unicodeScalars)
            return String(String.UnicodeScalarView((0..<Int(rng.next() % 12)).map { _ in characters[Int(rng.next() % UInt64(characters.count))] }))
        }
        for count in 0..<6 {
            for _ in 0..<20 {
                let entries = (0..<count).map { _ in
                    Session.AudienceData(
                        values: Dictionary(uniqueKeysWithValues: (0..<Int(rng.next() % 5)).map { ("k\($0)" + text(), SessionValue.string(text())) }),
                        audience: text(),
                        subject: rng.next() % 2 == 0 ? nil : text()
                    )
                }
                let tree = SessionValue.array(entries.map { entry in
                    .array([.object(entry.values), .string(entry.audience)] + (entry.subject.map { [.string($0)] } ?? []))
                })
                let encoded = Session.encodeEntries(entries)
                #expect(encoded == SessionJSON.encode(tree))
                if count > 0 { #expect(Session.decodeEntries(encoded) == entries) }
            }
        }
    }

    @Test func jsonScansMatchByteWiseScans() {
        // the vector/word scans stop at the first 8-byte word (counted from `from`) that holds a
        // stop byte, or at the last whole word: compared with byte-wise scans on random text
        // with rare stop bytes at every position, every length 0…80 and every start 0…17
        var rng = SplitMix64(seed: 31)
        let parserStops: Set<UInt8> = Set([0x22, 0x5C]).union(0..<0x20)
        let encoderStops: Set<UInt8> = parserStops.union([0x2F, 0x7F])
        func expected(_ bytes: [UInt8], from start: Int, stops: Set<UInt8>) -> Int {
            var index = start
            while index + 8 <= bytes.count {
                if bytes[index..<(index + 8)].contains(where: stops.contains) { return index }
                index += 8
            }
            return index
        }
        for length in 0...80 {
            for _ in 0..<20 {
                var bytes = (0..<length).map { _ in UInt8(0x20 + rng.next() % 0x5F) }  // printable, may hold " \\ /
                bytes = bytes.map { [0x22, 0x5C, 0x2F].contains($0) ? UInt8(ascii: "a") : $0 }
                if length > 0, rng.next() % 2 == 0 {
                    let stop: [UInt8] = [0x22, 0x5C, 0x2F, 0x7F, 0x00, 0x1F, 0x0A]
                    bytes[Int(rng.next() % UInt64(length))] = stop[Int(rng.next() % UInt64(stop.count))]
                }
                if length > 0, rng.next() % 4 == 0 { bytes[Int(rng.next() % UInt64(length))] = 0x80 | UInt8(truncatingIfNeeded: rng.next()) }
                bytes.withUnsafeBufferPointer { buffer in
                    for start in 0...min(17, length) {
                        #expect(SessionJSON.skipPlainBytes(buffer, from: start) == expected(bytes, from: start, stops: parserStops))
                        // the bytes stepped over are OR-ed into `seen`: a high bit iff one is not ASCII
                        var seen: UInt64 = 0
                        let end = SessionJSON.skipPlainBytes(buffer, from: start, seen: &seen)
                        #expect((seen & SessionJSON.highs != 0) == bytes[start..<end].contains { $0 >= 0x80 })
                        #expect(SessionJSON.skipUnescapedBytes(buffer, from: start) == expected(bytes, from: start, stops: encoderStops))
                    }
                    #expect(SessionJSON.isASCII(buffer) == bytes.allSatisfy { $0 < 0x80 })
                }
            }
        }
    }

    // MARK: base64url

    @Test func strictBase64RejectsNonCanonicalText() {
        #expect(StrictBase64URL.decode(Array("AQID".utf8)) == [1, 2, 3])
        #expect(StrictBase64URL.decode(Array("AQI".utf8)) == [1, 2])
        #expect(StrictBase64URL.decode(Array("AQJ".utf8)) == nil)  // low bits set
        #expect(StrictBase64URL.decode(Array("AQ".utf8)) == [1])
        #expect(StrictBase64URL.decode(Array("AR".utf8)) == nil)
        #expect(StrictBase64URL.decode(Array("A".utf8)) == nil)
        #expect(StrictBase64URL.decode(Array("AQ==".utf8)) == nil)
        #expect(StrictBase64URL.decode(Array("+/8".utf8)) == nil)
        #expect(StrictBase64URL.decode(Array("-_8".utf8)) == [0xFB, 0xFF])
    }

    @Test func strictBase64MatchesTheStandardDecoderOnEveryLength() {
        // every length 0…200 with random bytes: decoding our encoding gives the bytes back, and
        // any change of the last character's unused bits is rejected
        var rng = SplitMix64(seed: 11)
        for length in 0...200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let text = Array(Base64URL.encode(bytes).utf8)
            #expect(StrictBase64URL.decode(text) == bytes, "length \(length)")
            #expect(StrictBase64URL.decode(text[...]) == bytes, "slice, length \(length)")
            if length % 3 != 0, var last = text.last {
                // flip the lowest bit of the last character's 6-bit value: only unused bits change
                let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
                last = alphabet[alphabet.firstIndex(of: last)! ^ 1]
                #expect(StrictBase64URL.decode(text.dropLast() + [last]) == nil, "length \(length)")
            }
            if length > 0 {
                var corrupted = text
                corrupted[Int.random(in: 0..<text.count, using: &rng)] = UInt8(ascii: "=")
                #expect(StrictBase64URL.decode(corrupted) == nil)
            }
        }
    }

    /// The bytes of base64url text, the plain way (bits in a buffer, one character at a time):
    /// what the table-driven decoder must agree with.
    private static func referenceDecode(_ text: [UInt8]) -> [UInt8]? {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        guard text.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for char in text {
            guard let value = alphabet.firstIndex(of: char) else { return nil }
            buffer = buffer << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        // the unused low bits of the last character must be zero
        guard buffer & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }

    @Test func base64EncoderMatchesTheGeneralEncoder() {
        // every length 0…300 (the 6-byte, 3-byte and tail paths, and their boundaries), random
        // bytes: the same text as SessionStorage's one-group-at-a-time encoder, and the in-place
        // encoder writes exactly its characters (guard bytes around it stay untouched)
        var rng = SplitMix64(seed: 21)
        for length in 0...300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let expected = Base64URL.encode(bytes)
            #expect(StrictBase64URL.encode(bytes) == expected, "length \(length)")
            #expect(StrictBase64URL.encodedCount(length) == expected.utf8.count)
            var buffer = [UInt8](repeating: 0xEE, count: expected.utf8.count + 16)
            buffer.withUnsafeMutableBufferPointer { out in
                bytes.withUnsafeBytes { StrictBase64URL.encode($0, into: out.baseAddress! + 8) }
            }
            #expect(Array(buffer[8..<(8 + expected.utf8.count)]) == Array(expected.utf8), "length \(length)")
            #expect(buffer.prefix(8).allSatisfy { $0 == 0xEE } && buffer.suffix(8).allSatisfy { $0 == 0xEE }, "length \(length)")
        }
        // all 0x00 and all 0xFF (the table's ends)
        for byte: UInt8 in [0x00, 0xFF] {
            for length in [1, 2, 3, 5, 6, 7, 8, 9, 14, 1024] {
                let bytes = [UInt8](repeating: byte, count: length)
                #expect(StrictBase64URL.encode(bytes) == Base64URL.encode(bytes))
            }
        }
    }

    @Test func base64DecoderMatchesTheReferenceDecoder() {
        var rng = SplitMix64(seed: 22)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        for length in 0...300 {
            // valid text of every length, decoded in place into an exact buffer between guard bytes
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let text = Array(Base64URL.encode(bytes).utf8)
            #expect(StrictBase64URL.decode(text) == bytes, "length \(length)")
            var buffer = [UInt8](repeating: 0xEE, count: length + 16)
            let valid = buffer.withUnsafeMutableBytes { out in
                text.withUnsafeBufferPointer {
                    StrictBase64URL.decode(buffer: $0, into: UnsafeMutableRawBufferPointer(rebasing: out[8..<(8 + length)]))
                }
            }
            #expect(valid && Array(buffer[8..<(8 + length)]) == bytes, "length \(length)")
            #expect(buffer.prefix(8).allSatisfy { $0 == 0xEE } && buffer.suffix(8).allSatisfy { $0 == 0xEE }, "length \(length)")
            // random text, any character (mostly the alphabet): same answer as the reference
            let characterCount = StrictBase64URL.encodedCount(length) + Int(rng.next() % 2)
            for _ in 0..<4 {
                let random = (0..<characterCount).map { _ in
                    rng.next() % 8 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : alphabet[Int(rng.next() % 64)]
                }
                #expect(StrictBase64URL.decode(random) == Self.referenceDecode(random), "length \(characterCount)")
            }
            // one byte outside the alphabet at each position is rejected
            if !text.isEmpty {
                for position in text.indices {
                    var corrupted = text
                    corrupted[position] = [UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "/"), 0x00, 0x80, 0xFF][position % 6]
                    #expect(StrictBase64URL.decode(corrupted) == nil, "length \(length), position \(position)")
                }
            }
        }
    }

    @Test func cookieValueEncodesInPlace() {
        var rng = SplitMix64(seed: 23)
        for length in [0, 1, 2, 3, 100, 1024, 1057, 2999] {
            let header = (0..<SessionCookieHeader.size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let payload = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let attributes = length % 2 == 0 ? "; Path=/; SameSite=Lax; HttpOnly" : ""
            let (value, range) = header.withUnsafeBytes { header in
                payload.withUnsafeBytes { Session.cookieValue("session", header: header, payload: $0, attributes) }
            }
            let encodedPayload = Base64URL.encode(payload)
            #expect(value == "session=" + Base64URL.encode(header) + encodedPayload + attributes)
            #expect(String(value[range]) == encodedPayload)
            let (headerOnly, empty) = header.withUnsafeBytes { Session.cookieValue("id", header: $0, payload: nil, attributes) }
            #expect(headerOnly == "id=" + Base64URL.encode(header) + attributes)
            #expect(headerOnly[empty].isEmpty)
            for info in [nil, "", "aW5mbw"] {
                let (stored, ciphertext) = payload.withUnsafeBytes { Session.storedValue(ciphertext: $0, info: info) }
                #expect(stored == Session.storedValue(ciphertext: Substring(encodedPayload), info: info))
                #expect(String(stored[ciphertext]) == encodedPayload)
            }
        }
    }

    // MARK: Cookie header

    @Test func cookieLookupFollowsThePairRules() {
        // the one-pass lookup agrees with the pair splitter on random headers built from
        // names, `=`, `;`, spaces and tabs
        var rng = SplitMix64(seed: 21)
        let pieces = ["session", "session2", "a", "b", "=", "=", ";", ";", " ", "\t", "x=y", "v"]
        for _ in 0..<3000 {
            let header = (0..<Int.random(in: 0...12, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            let bytes = Array(header.utf8)
            for name in ["session", "session2", "a", "x", "v"] {
                let expected = SessionRequest.pairs(bytes).first { String(decoding: bytes[$0.name], as: UTF8.self) == name }
                    .map { String(decoding: bytes[$0.value], as: UTF8.self) }
                #expect(SessionRequest(cookieHeader: header).cookie(named: name) == expected, "\(header) / \(name)")
            }
        }
        let request = SessionRequest(cookieHeaders: ["a=1", " session = abc ; session=def"])
        #expect(request.cookie(named: "session") == "abc")
        #expect(request.cookie(named: "a") == "1")
        #expect(request.cookie(named: "missing") == nil)
    }

    // MARK: HMAC, HKDF, random

    @Test func hmacMatchesSwiftCryptoForEveryKeyAndMessageShape() {
        var rng = SplitMix64(seed: 3)
        for keyLength in [0, 1, 31, 32, 63, 64, 65, 200] {
            let key = (0..<keyLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let hmac = HMACSHA256(key: key)
            for messageLength in [0, 1, 55, 56, 64, 66, 119, 120, 1000] {
                let message = (0..<messageLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let split = messageLength / 3
                var ours = [UInt8](repeating: 0, count: 32)
                message.withUnsafeBytes { all in
                    ours.withUnsafeMutableBytes {
                        hmac.authenticate(UnsafeRawBufferPointer(rebasing: all[..<split]), UnsafeRawBufferPointer(rebasing: all[split...]), into: $0)
                    }
                }
                let reference = Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
                #expect(ours == reference, "key \(keyLength), message \(messageLength)")
            }
        }
    }

    @Test func hkdfMatchesSwiftCrypto() {
        let key = SessionKey(ikm: (0..<32).map { UInt8($0) })
        let sid = (0..<32).map { UInt8(255 - $0) }
        for (usage, count) in [("encryption", 44), ("authentication", 32), ("encryption", 64), ("authentication", 1)] {
            let reference = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: key.ikm),
                info: Array(usage.utf8) + [UInt8(ascii: ":")] + sid,
                outputByteCount: count
            ).withUnsafeBytes { Array($0) }
            let ours = usage == "encryption"
                ? key.expand(usage: "encryption", nonce: sid, count: count)
                : key.expand(usage: "authentication", nonce: sid, count: count)
            #expect(ours == reference, "\(usage) \(count)")
        }
    }

    @Test func systemRandomFillsEveryByte() {
        // 4 KiB from the system source: every byte value shows up (a stuck or short fill would
        // leave zeros or repeat), and two calls differ
        let first = SessionRandom.system.bytes(4096)
        let second = SessionRandom.system.bytes(4096)
        #expect(Set(first).count == 256)
        #expect(first != second)
        #expect(SessionRandom.system.bytes(0).isEmpty)
    }

    // MARK: PBKDF2, header

    @Test func pbkdf2MatchesRFC7914() {
        // RFC 7914 §11, PBKDF2-HMAC-SHA256 ("passwd", "salt", c = 1, dkLen = 64).
        let derived = SessionCrypto.pbkdf2SHA256(password: Array("passwd".utf8), salt: Array("salt".utf8), iterations: 1, count: 64)
        #expect(derived.hex == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")
        let independent = IndependentDecoder.pbkdf2(password: [1, 2, 3], salt: [4, 5], iterations: 1000, count: 44)
        #expect(SessionCrypto.pbkdf2SHA256(password: [1, 2, 3], salt: [4, 5], iterations: 1000, count: 44) == independent)
    }

    @Test func headerRoundTripsAtTheFieldLimits() {
        var header = SessionCookieHeader(
            flags: [.storage, .deflate, .bindUserAgent],
            sid: SessionID((0..<32).map { UInt8($0) })!,
            creationTime: SessionCookieHeader.maximumCreationTime,
            rollingOffset: SessionCookieHeader.maximumRollingOffset,
            dataSize: SessionCookieHeader.maximumDataSize
        )
        header.tag = HeaderBytes16([UInt8](repeating: 0xAB, count: 16))!
        header.idlingOffset = SessionCookieHeader.maximumIdlingOffset
        header.mac = HeaderBytes16([UInt8](repeating: 0xCD, count: 16))!
        #expect(header.bytes.count == 82)
        #expect(header.bytes[3..<35].elementsEqual(0..<32))
        #expect(header.bytes[47..<63].allSatisfy { $0 == 0xAB })
        #expect(header.bytes[66..<82].allSatisfy { $0 == 0xCD })
        #expect(header.encoded.count == 110)
        #expect(SessionCookieHeader(bytes: header.bytes) == header)
        var wrongType = header.bytes
        wrongType[0] = 2
        #expect(SessionCookieHeader(bytes: wrongType) == nil)
        #expect(SessionCookieHeader(bytes: Array(header.bytes.dropLast())) == nil)
    }

    @Test func headerParsesFromItsEncodedFormInPlace() throws {
        let header = SessionCookieHeader(
            flags: [.storage],
            sid: SessionID((0..<32).map { UInt8(255 - $0) })!,
            creationTime: 1_700_000_000,
            rollingOffset: 42,
            dataSize: 1234,
            tag: HeaderBytes16((0..<16).map { UInt8($0 * 3) })!,
            idlingOffset: 7,
            mac: HeaderBytes16((0..<16).map { UInt8($0 * 5) })!
        )
        func parse(_ text: String) -> Result<SessionCookieHeader, SessionCookieHeader.ParseFailure> {
            Array(text.utf8).withUnsafeBufferPointer { SessionCookieHeader.parse(encoded: $0) }
        }
        #expect(try parse(header.encoded).get() == header)
        var wrongType = header.bytes
        wrongType[0] = 2
        #expect(throws: SessionCookieHeader.ParseFailure.invalidType) { try parse(Base64URL.encode(wrongType)).get() }
        var notBase64 = Array(header.encoded.utf8)
        notBase64[50] = UInt8(ascii: "=")
        #expect(throws: SessionCookieHeader.ParseFailure.invalidEncoding) { try parse(String(decoding: notBase64, as: UTF8.self)).get() }
        #expect(throws: SessionCookieHeader.ParseFailure.invalidEncoding) { try parse(String(header.encoded.dropLast())).get() }
        // 110 characters whose last one carries bits past the 82nd byte
        var looseTail = Array(header.encoded.utf8)
        looseTail[109] = UInt8(ascii: "B")
        if looseTail != Array(header.encoded.utf8) {
            #expect(throws: SessionCookieHeader.ParseFailure.invalidEncoding) { try parse(String(decoding: looseTail, as: UTF8.self)).get() }
        }
    }

    @Test func storedValuesSplitWithoutTheParserOnlyInTheirExactForm() {
        func parts(_ text: String) -> [String]? {
            Session.storedParts(text).map { found in [String(text[found.payload])] + (found.info.map { [String(text[$0])] } ?? []) }
        }
        #expect(parts(#"["abc"]"#) == ["abc"])
        #expect(parts(#"["aZ09-_","de_-"]"#) == ["aZ09-_", "de_-"])
        #expect(parts(#"[""]"#) == [""])
        // anything else goes to the JSON parser, which reads the same strings where it can
        for other in [#"[ "abc"]"#, #"["abc" ]"#, #"["a\u0062c"]"#, #"["abc",1]"#, #"["abc""#, #"["abc"]x"#, #"["abc","d","e"]"#,
                      #"["a/c"]"#, #"["abc" , "de"]"#, "", "[", #"[""#, #"{"a":"b"}"#] {
            #expect(parts(other) == nil, "\(other)")
        }
        // where the fast path answers, the parser agrees
        var rng = SplitMix64(seed: 99)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        for _ in 0..<200 {
            let first = String(decoding: (0..<Int(rng.next() % 40)).map { _ in alphabet[Int(rng.next() % 64)] }, as: UTF8.self)
            let second = String(decoding: (0..<Int(rng.next() % 40)).map { _ in alphabet[Int(rng.next() % 64)] }, as: UTF8.self)
            for text in ["[\"\(first)\"]", "[\"\(first)\",\"\(second)\"]"] {
                guard case .array(let values)? = SessionJSON.decode(text.utf8) else {
                    Issue.record("not JSON: \(text)")
                    continue
                }
                let strings = values.compactMap { value -> String? in if case .string(let string) = value { string } else { nil } }
                #expect(parts(text) == strings)
                #expect(Session.storedValue(ciphertext: Substring(first), info: strings.count == 2 ? second : nil) == text)
            }
        }
    }

    @Test func chunkCountsFollowTheOriginal() {
        #expect(SessionSettings.chunkCount(nameSize: 7, dataSize: 0) == 1)
        #expect(SessionSettings.chunkCount(nameSize: 7, dataSize: 4096 - 118) == 1)
        #expect(SessionSettings.chunkCount(nameSize: 7, dataSize: 4096 - 117) == 2)
        #expect(SessionSettings.chunkCount(nameSize: 7, dataSize: 2 * 4096 - 118 - 9) == 2)
        #expect(SessionSettings.chunkCount(nameSize: 7, dataSize: 2 * 4096 - 118 - 8) == 3)
        #expect(SessionSettings.chunkCount(nameSize: 7, dataSize: 9 * 4096 - 118 - 8 * 9) == 9)
        #expect(SessionSettings.chunkCount(nameSize: 7, dataSize: 9 * 4096 - 118 - 8 * 9 + 1) == nil)
    }
}
