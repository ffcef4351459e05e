import Logging
import SessionStorage

extension Session {
    /// The largest plaintext an inflated payload may have.
    static let maximumInflatedSize = 16 * 1024 * 1024

    /// lua-resty-session `metatable:open()`: the session cookie, else (remember on) the
    /// remember cookie, which then renews both cookies.
    nonisolated(nonsending) mutating func open() async throws {
        guard let failure = try await openCookie(remember: false, metaOnly: false) else {
            openFailure = nil
            return
        }
        openFailure = failure
        settings.logger.debug("session cookie did not open", metadata: ["reason": "\(failure)"])
        guard failure != .missingAudience, settings.configuration.remember else { return }

        if let rememberFailure = try await openCookie(remember: true, metaOnly: false) {
            settings.logger.debug("remember cookie did not open", metadata: ["reason": "\(rememberFailure)"])
            return
        }
        try await write(remember: true, newState: nil)
        meta = nil
        state = .new
        try await write(remember: false, newState: .open)
        isRestoredFromRememberCookie = true
        openFailure = nil
    }

    /// Reads and verifies one cookie (COOKIE.md §9). Returns `nil` when it opened, or why not.
    /// With `metaOnly` it stops after the MAC and the payload lookup, keeping only the meta
    /// (creation time, old id) needed to renew a remember cookie.
    ///
    /// - Throws: only a storage backend failure.
    nonisolated(nonsending) mutating func openCookie(remember: Bool, metaOnly: Bool) async throws -> SessionOpenFailure? {
        let now = settings.clock.now()
        let name = remember ? settings.rememberCookieName : settings.cookieName
        guard let cookie = request.cookie(named: name) else { return .missingCookie }
        // read in place (the cookie's value is one native string: no copy into an array)
        let text = cookie.utf8
        guard text.count >= SessionCookieHeader.encodedSize else { return .invalidHeader }
        let encodedHeader = text.prefix(SessionCookieHeader.encodedSize)
        let parsed = encodedHeader.withContiguousStorageIfAvailable { SessionCookieHeader.parse(encoded: $0) }
            ?? Array(encodedHeader).withUnsafeBufferPointer { SessionCookieHeader.parse(encoded: $0) }
        let header: SessionCookieHeader
        switch parsed {
        case .success(let parsedHeader): header = parsedHeader
        case .failure(.invalidEncoding): return .invalidHeader
        case .failure(.invalidType): return .invalidCookieType
        }

        // one copy of the store's existential for the whole open
        let storage = settings.storage
        guard header.flags.contains(.storage) == (storage != nil) else { return .invalidFlags }

        let absoluteElapsed = now - header.creationTime
        if absoluteElapsed > SessionCookieHeader.maximumRollingOffset { return .lifetimeExceeded }
        if remember {
            if settings.rememberAbsoluteTimeout != 0, absoluteElapsed > settings.rememberAbsoluteTimeout {
                return .rememberAbsoluteTimeoutExceeded
            }
        } else if settings.absoluteTimeout != 0, absoluteElapsed > settings.absoluteTimeout {
            return .absoluteTimeoutExceeded
        }

        let rollingElapsed = now - header.creationTime - header.rollingOffset
        if remember {
            if settings.rememberRollingTimeout != 0, rollingElapsed > settings.rememberRollingTimeout {
                return .rememberRollingTimeoutExceeded
            }
        } else if settings.rollingTimeout != 0, rollingElapsed > settings.rollingTimeout {
            return .rollingTimeoutExceeded
        }

        if remember {
            if header.idlingOffset != 0 { return .invalidIdlingOffset }
        } else if settings.idlingTimeout != 0, rollingElapsed - header.idlingOffset > settings.idlingTimeout {
            return .idlingTimeoutExceeded
        }

        // The MAC, with the current key, then the fallbacks; compared in constant time.
        let verified: (key: SessionKey, authentication: HMACSHA256, cached: DerivedKeyCache.Entry?)? = withMACMessage(header) { message in
            // the current key, then the fallbacks (no array of them built per cookie)
            for position in -1..<settings.fallbackKeys.count {
                let key = position < 0 ? settings.key : settings.fallbackKeys[position]
                let (authentication, cached) = SessionCrypto.verificationKeys(key, sid: header.sid)
                if SessionCrypto.mac(authentication, message: message).constantTimeEquals(header.mac) {
                    return (key, authentication, cached)
                }
            }
            return nil
        }
        guard let (key, authentication, cachedKeys) = verified else { return .invalidMAC }

        // The payload: from the store, or from the cookie and its chunks.
        var ciphertext: [UInt8]
        var initialChunk: Substring?
        var storedCiphertext: Substring?
        var storedInfo: [String: [String: SessionValue]]?
        if let storage {
            let storageKey = settings.storageKey(sid: header.sid)
            let stored: String?
            do {
                stored = try await storage.get(name: name, key: storageKey, currentTime: now)
            } catch {
                throw SessionError(.storageFailed, message: "unable to load the session", underlying: error)
            }
            guard let stored else { return .notInStorage }
            let encodedCiphertext: Substring
            let encodedInfo: Substring?
            if let (payload, info) = Self.storedParts(stored) {
                // what this library and lua-resty-session write: no JSON parser, no copies
                encodedCiphertext = stored[payload]
                encodedInfo = info.map { stored[$0] }
            } else {
                guard case .array(let parts)? = SessionJSON.decode(stored.utf8),
                      (1...2).contains(parts.count),
                      case .string(let payload) = parts[0]
                else { return .invalidStoredValue }
                encodedCiphertext = Substring(payload)
                if parts.count == 2 {
                    guard case .string(let info) = parts[1] else { return .invalidStoredValue }
                    encodedInfo = Substring(info)
                } else {
                    encodedInfo = nil
                }
            }
            if let encodedInfo {
                guard let infoJSON = StrictBase64URL.decode(encodedInfo.utf8),
                      let info = Self.decodeInfo(infoJSON)
                else { return .invalidStoredValue }
                storedInfo = info
            }
            guard encodedCiphertext.utf8.count == header.dataSize,
                  let decoded = StrictBase64URL.decode(encodedCiphertext.utf8)
            else { return .invalidPayload }
            storedCiphertext = encodedCiphertext
            ciphertext = decoded
        } else {
            guard let chunks = SessionSettings.chunkCount(nameSize: name.utf8.count, dataSize: header.dataSize) else {
                return .invalidDataSize
            }
            let first = text.dropFirst(SessionCookieHeader.encodedSize)
            initialChunk = Substring(first)
            let decoded: [UInt8]?
            if chunks == 1 {
                decoded = first.count == header.dataSize ? StrictBase64URL.decode(first) : nil
            } else {
                var payload = Array(first)
                for chunk in 2...chunks {
                    guard let part = request.cookie(named: name + String(chunk)) else { return .missingChunk }
                    payload.append(contentsOf: part.utf8)
                }
                decoded = payload.count == header.dataSize ? StrictBase64URL.decode(payload) : nil
            }
            guard let decoded else { return .invalidPayload }
            ciphertext = decoded
        }

        let opened = CookieMeta(
            timestamp: now,
            header: header,
            key: key,
            initialChunk: initialChunk,
            ciphertext: storedCiphertext
        )
        if metaOnly {
            if remember { rememberMeta = opened } else { meta = opened }
            return nil
        }

        // Decrypt, inflate, decode.
        let decrypted = SessionCrypto.withEncryptionKey(
            key,
            sid: header.sid,
            iterations: remember ? settings.rememberIterations : nil,
            authentication: authentication,  // prepared for the MAC check: cached with the keys
            cached: cachedKeys  // found for the MAC check: no second lookup
        ) { aesKey, nonce in
            // in place: the decoded ciphertext becomes the plaintext
            header.withAdditionalData { AES256GCM.openInPlace(&ciphertext, tag: header.tag, key: aesKey, nonce: nonce, additionalData: $0) }
        }
        guard decrypted else { return .decryptionFailed }
        var plaintext = ciphertext
        if header.flags.contains(.deflate) {
            do {
                plaintext = try RawInflate.inflate(plaintext, limit: Self.maximumInflatedSize)
            } catch {
                return .inflateFailed
            }
        }
        guard let decoded = Self.decodeEntries(plaintext) else { return .invalidData }

        if remember { rememberMeta = opened } else { meta = opened }
        let current = entries[index]
        if storage != nil {
            var info = storedInfo ?? [:]
            if info[current.audience] == nil, let pending = infoData[current.audience] {
                info[current.audience] = pending
            }
            infoData = info
        }
        guard let found = decoded.firstIndex(where: { $0.audience == current.audience }) else {
            // A valid cookie of other audiences: keep them, add the configured audience as new.
            entries = decoded + [current]
            index = entries.count - 1
            state = .new
            return .missingAudience
        }
        entries = decoded
        index = found
        state = .open
        return nil
    }

    /// `[[{data}, "audience", "subject"?], …]`
    static func decodeEntries(_ plaintext: [UInt8]) -> [AudienceData]? {
        guard case .array(let items)? = SessionJSON.decode(plaintext), !items.isEmpty else { return nil }
        var entries: [AudienceData] = []
        entries.reserveCapacity(items.count)
        for item in items {
            guard case .array(let fields) = item, (2...3).contains(fields.count),
                  case .string(let audience) = fields[1]
            else { return nil }
            let values: [String: SessionValue]
            switch fields[0] {
            case .object(let object):
                values = object
            case .array(let array):
                // lua-cjson writes a Lua sequence as an array; keep it under its 1-based keys.
                values = Dictionary(uniqueKeysWithValues: array.enumerated().map { (String($0.offset + 1), $0.element) })
            default:
                return nil
            }
            var subject: String?
            if fields.count == 3 {
                switch fields[2] {
                case .string(let value): subject = value
                case .null: subject = nil
                default: return nil
                }
            }
            entries.append(AudienceData(values: values, audience: audience, subject: subject))
        }
        return entries
    }

    /// `{ "audience": { "key": value } }`
    static func decodeInfo(_ json: [UInt8]) -> [String: [String: SessionValue]]? {
        guard case .object(let audiences)? = SessionJSON.decode(json) else { return nil }
        var result: [String: [String: SessionValue]] = [:]
        for (audience, value) in audiences {
            switch value {
            case .object(let members): result[audience] = members
            case .array(let array) where array.isEmpty: result[audience] = [:]
            default: return nil
            }
        }
        return result
    }

    /// The JSON of `[[{data}, "audience", "subject"?], …]`, written straight from the entries
    /// (no tree of arrays built to encode), reserved once.
    static func encodeEntries(_ entries: [AudienceData]) -> [UInt8] {
        var size = 2
        for entry in entries {
            size += 4 + SessionJSON.estimatedSize(.object(entry.values)) + entry.audience.utf8.count + 2
            if let subject = entry.subject { size += subject.utf8.count + 3 }
        }
        var out: [UInt8] = []
        out.reserveCapacity(size)
        out.append(UInt8(ascii: "["))
        for (position, entry) in entries.enumerated() {
            if position > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "["))
            SessionJSON.encode(.object(entry.values), into: &out)
            out.append(UInt8(ascii: ","))
            SessionJSON.encodeString(entry.audience, into: &out)
            if let subject = entry.subject {
                out.append(UInt8(ascii: ","))
                SessionJSON.encodeString(subject, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// The ranges of the strings of a stored value `["<base64url>"]` or
    /// `["<base64url>","<base64url>"]`, exactly (no whitespace, no escapes: base64url needs
    /// none); `nil` for any other text, which the JSON parser then reads.
    static func storedParts(_ stored: String) -> (payload: Range<String.Index>, info: Range<String.Index>?)? {
        let utf8 = stored.utf8
        let offsets: (Int, Int, Int, Int)?? = utf8.withContiguousStorageIfAvailable { bytes in
            // [ " run " ] or [ " run " , " run " ]
            func run(from start: Int) -> Int {
                var index = start
                while index < bytes.count, StrictBase64URL.isAlphabet(bytes[index]) { index += 1 }
                return index
            }
            let count = bytes.count
            guard count >= 4, bytes[0] == UInt8(ascii: "["), bytes[1] == UInt8(ascii: "\"") else { return nil }
            let end1 = run(from: 2)
            guard end1 < count, bytes[end1] == UInt8(ascii: "\"") else { return nil }
            if end1 + 2 == count, bytes[end1 + 1] == UInt8(ascii: "]") { return (2, end1, -1, -1) }
            guard end1 + 3 < count, bytes[end1 + 1] == UInt8(ascii: ","), bytes[end1 + 2] == UInt8(ascii: "\"") else { return nil }
            let end2 = run(from: end1 + 3)
            guard end2 + 2 == count, bytes[end2] == UInt8(ascii: "\""), bytes[end2 + 1] == UInt8(ascii: "]") else { return nil }
            return (2, end1, end1 + 3, end2)
        }
        guard case .some(.some(let (start1, end1, start2, end2))) = offsets else { return nil }
        func index(_ offset: Int) -> String.Index { utf8.index(utf8.startIndex, offsetBy: offset) }
        return (index(start1)..<index(end1), start2 < 0 ? nil : index(start2)..<index(end2))
    }
}
