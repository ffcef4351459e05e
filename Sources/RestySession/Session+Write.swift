import Logging
import SessionStorage

extension Session {
    /// lua-resty-session `save(self, state, remember)`: a new id, the data encrypted into a new
    /// cookie (chunked when large) or into the store, the previous record rotated.
    ///
    /// Cookies are only added to ``setCookieHeaders`` once the store accepted the record, so a
    /// failed save never sends a cookie without data behind it.
    nonisolated(nonsending) mutating func write(remember: Bool, newState: State?, enforceSameSubject: Bool = true) async throws {
        let name = remember ? settings.rememberCookieName : settings.cookieName
        let nameSize = name.utf8.count
        let previous = remember ? rememberMeta : meta
        let storage = settings.storage

        var flags = settings.bindFlags
        if storage != nil { flags.insert(.storage) }
        if writesForgetFlag { flags.insert(.forget) }

        let sid = settings.random.bytes(SessionID.size).withUnsafeBytes { SessionID(copying: $0) }
        let now = settings.clock.now()
        var creationTime = now
        var rollingOffset = 0
        if let previous {
            creationTime = previous.header.creationTime
            rollingOffset = max(0, now - creationTime)
            guard rollingOffset <= SessionCookieHeader.maximumRollingOffset else {
                throw SessionError(.clockOutOfRange, message: "the session's maximum rolling offset is exceeded")
            }
        }
        guard creationTime >= 0, creationTime <= SessionCookieHeader.maximumCreationTime else {
            throw SessionError(.clockOutOfRange, message: "the clock is outside the cookie's creation time range")
        }

        if enforceSameSubject, settings.configuration.enforceSameSubject, entries.count > 1 {
            let current = entries[index]
            entries.removeAll { $0.subject != current.subject }
            index = entries.firstIndex { $0.audience == current.audience } ?? 0
        }

        var plaintext = Self.encodeEntries(entries)
        let threshold = settings.configuration.compressionThreshold
        if threshold != 0, plaintext.count > threshold {
            if let deflated = RawDeflate.deflate(plaintext, ifSmallerThan: plaintext.count) {
                flags.insert(.deflate)
                plaintext = deflated
            }
        }
        let dataSize = SessionCookieHeader.base64Size(plaintext.count)
        let chunks: Int
        if storage != nil {
            guard dataSize <= SessionCookieHeader.maximumDataSize else {
                throw SessionError(.dataTooLarge, message: "the session data exceeds the maximum data size")
            }
            chunks = 1
        } else {
            guard let count = SessionSettings.chunkCount(nameSize: nameSize, dataSize: dataSize) else {
                throw SessionError(.cookieTooLarge, message: "the session data does not fit into \(SessionSettings.maximumCookies) cookies")
            }
            chunks = count
        }

        var header = SessionCookieHeader(
            flags: flags,
            sid: sid,
            creationTime: creationTime,
            rollingOffset: rollingOffset,
            dataSize: dataSize
        )
        let key = settings.key
        // a session cookie's keys: derived for the new id and cached for its next requests,
        // used here for both the AEAD and the MAC (no lookups)
        let issued = remember ? nil : key.issueKeys(sid: sid)
        let sealed = SessionCrypto.withEncryptionKey(
            key,
            sid: sid,
            iterations: remember ? settings.rememberIterations : nil,
            cached: issued
        ) { aesKey, nonce in
            // in place: the plaintext becomes the ciphertext
            header.withAdditionalData { AES256GCM.sealInPlace(&plaintext, key: aesKey, nonce: nonce, additionalData: $0) }
        }
        guard let tag = sealed else {
            throw SessionError(.invalidState, message: "unable to encrypt the session data")
        }
        let ciphertext = plaintext
        header.tag = tag
        if let issued {
            header.mac = withMACMessage(header) { SessionCrypto.mac(issued.authentication, message: $0) }
        } else {
            header.mac = mac(header, key: key)
        }

        var attributes = settings.cookieAttributes
        if remember {
            var maxAge = settings.rememberRollingTimeout
            if maxAge == 0 || maxAge > SessionSettings.maximumTTL { maxAge = SessionSettings.maximumTTL }
            attributes += "; Expires=\(HTTPDate.format(now + maxAge)); Max-Age=\(maxAge)"
        }

        var cookies: [(name: String, value: String)] = []
        var initialChunk: Substring?
        var storedCiphertext: Substring?
        var storedValue: String?
        if storage != nil {
            // the payload is base64url-encoded straight into the stored value
            let value = ciphertext.withUnsafeBytes { Self.storedValue(ciphertext: $0, info: encodedInfo()) }
            storedValue = value.value
            storedCiphertext = value.value[value.ciphertext]
            cookies.append((name, header.withUnsafeBytes { Self.cookieValue(name, header: $0, payload: nil, attributes).value }))
        } else if chunks == 1 {
            // name=header‖payload‖attributes, both encoded in place: one allocation
            let (value, payloadRange) = header.withUnsafeBytes { headerBytes in
                ciphertext.withUnsafeBytes { Self.cookieValue(name, header: headerBytes, payload: $0, attributes) }
            }
            initialChunk = value[payloadRange]
            cookies.append((name, value))
        } else {
            let headerText = header.encoded
            let payload = StrictBase64URL.encode(ciphertext)
            let characters = Array(payload.utf8)
            let firstSize = SessionSettings.maximumCookieSize - SessionCookieHeader.encodedSize - nameSize - 1
            let first = String(decoding: characters.prefix(firstSize), as: UTF8.self)
            initialChunk = Substring(first)
            cookies.append((name, Self.cookieValue(name, headerText, first, attributes)))
            var offset = min(firstSize, characters.count)
            let chunkSize = SessionSettings.maximumCookieSize - nameSize - 2
            for chunk in 2...chunks {
                let end = min(offset + chunkSize, characters.count)
                let part = String(decoding: characters[offset..<end], as: UTF8.self)
                offset = end
                let chunkName = name + String(chunk)
                cookies.append((chunkName, "\(chunkName)=\(part)\(attributes)"))
            }
        }

        if let storage, let value = storedValue {
            let oldKey = previous.map { settings.storageKey(sid: $0.header.sid) }
            let ttl = settings.storeTTL(remember: remember, currentTime: now, creationTime: creationTime, rollingOffset: rollingOffset)
            do {
                try await storage.set(
                    SessionSetRequest(
                        name: name,
                        key: settings.storageKey(sid: sid),
                        value: value,
                        ttl: ttl,
                        currentTime: now,
                        oldKey: oldKey,
                        staleTTL: settings.staleTTL,
                        metadata: storeMetadata(),
                        remember: remember
                    )
                )
            } catch {
                throw SessionError(.storageFailed, message: "unable to store the session", underlying: error)
            }
        } else if let previous,
                  let previousChunks = SessionSettings.chunkCount(nameSize: nameSize, dataSize: previous.header.dataSize),
                  previousChunks > chunks
        {
            for chunk in (chunks + 1)...previousChunks {
                let chunkName = name + String(chunk)
                cookies.append((chunkName, "\(chunkName)=\(settings.cookieAttributes)\(Self.expireAttributes)"))
            }
        }

        for cookie in cookies { setCookie(name: cookie.name, value: cookie.value) }
        let written = CookieMeta(
            timestamp: now,
            header: header,
            key: key,
            initialChunk: initialChunk,
            ciphertext: storedCiphertext
        )
        if remember {
            rememberMeta = written
        } else {
            meta = written
            state = newState ?? .open
        }
        settings.logger.debug(
            "session saved",
            metadata: ["cookie": "\(remember ? "remember" : "session")", "chunks": "\(chunks)", "deflated": "\(flags.contains(.deflate))"]
        )
    }

    /// `name=header‖payload‖attributes` with the 82 header bytes and the payload bytes
    /// base64url-encoded in place: one allocation, no intermediate texts. Also the range of
    /// the payload's characters in the value.
    static func cookieValue(
        _ name: String,
        header: UnsafeRawBufferPointer,
        payload: UnsafeRawBufferPointer?,
        _ attributes: String
    ) -> (value: String, payload: Range<String.Index>) {
        var name = name
        var attributes = attributes
        let headerCount = StrictBase64URL.encodedCount(header.count)
        let payloadCount = payload.map { StrictBase64URL.encodedCount($0.count) } ?? 0
        let nameCount = name.utf8.count
        let payloadStart = nameCount + 1 + headerCount
        let count = payloadStart + payloadCount + attributes.utf8.count
        let value = String(unsafeUninitializedCapacity: count) { out in
            let base = out.baseAddress!
            name.withUTF8 { base.update(from: $0.baseAddress!, count: $0.count) }
            base[nameCount] = UInt8(ascii: "=")
            StrictBase64URL.encode(header, into: base + nameCount + 1)
            if let payload { StrictBase64URL.encode(payload, into: base + payloadStart) }
            attributes.withUTF8 { attributes in
                if let source = attributes.baseAddress {
                    (base + payloadStart + payloadCount).update(from: source, count: attributes.count)
                }
            }
            return count
        }
        let utf8 = value.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: payloadStart)
        return (value, start..<utf8.index(start, offsetBy: payloadCount))
    }

    /// `name=header‖payload‖attributes` built in one allocation (an interpolation grows its
    /// buffer as it goes; a cookie of 1.5 KiB cost several).
    static func cookieValue(_ name: String, _ header: String, _ payload: String, _ attributes: String) -> String {
        var value = ""
        value.reserveCapacity(name.utf8.count + 1 + header.utf8.count + payload.utf8.count + attributes.utf8.count)
        value += name
        value += "="
        value += header
        value += payload
        value += attributes
        return value
    }

    /// The stored value with the ciphertext base64url-encoded in place; also the range of its
    /// characters in the value.
    static func storedValue(ciphertext: UnsafeRawBufferPointer, info: String?) -> (value: String, ciphertext: Range<String.Index>) {
        var info = info
        let payloadCount = StrictBase64URL.encodedCount(ciphertext.count)
        let infoCount = info.map { $0.utf8.count + 3 } ?? 0
        let count = 2 + payloadCount + infoCount + 2
        let value = String(unsafeUninitializedCapacity: count) { out in
            let base = out.baseAddress!
            base[0] = UInt8(ascii: "[")
            base[1] = UInt8(ascii: "\"")
            StrictBase64URL.encode(ciphertext, into: base + 2)
            var offset = 2 + payloadCount
            if info != nil {
                base[offset] = UInt8(ascii: "\"")
                base[offset + 1] = UInt8(ascii: ",")
                base[offset + 2] = UInt8(ascii: "\"")
                offset += 3
                info!.withUTF8 { info in
                    if let source = info.baseAddress { (base + offset).update(from: source, count: info.count) }
                    offset += info.count
                }
            }
            base[offset] = UInt8(ascii: "\"")
            base[offset + 1] = UInt8(ascii: "]")
            return offset + 2
        }
        let utf8 = value.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: 2)
        return (value, start..<utf8.index(start, offsetBy: payloadCount))
    }

    /// The stored value, `["<payload>"]` or `["<payload>","<info>"]` (lua-resty-session's JSON
    /// array), written in one allocation: both are base64url, which JSON never escapes.
    static func storedValue(ciphertext: Substring, info: String?) -> String {
        var value = ""
        value.reserveCapacity(ciphertext.utf8.count + (info.map { $0.utf8.count + 3 } ?? 0) + 4)
        value += "[\""
        value += ciphertext
        if let info {
            value += "\",\""
            value += info
        }
        value += "\"]"
        return value
    }
}
