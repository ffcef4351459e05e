#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CCryptoBoringSSL

/// Where the session core reads the time: Unix seconds. Inject a fixed or stepping clock in
/// tests; every timeout, creation time and storage TTL comes from it.
public struct SessionClock: Sendable {
    private let read: @Sendable () -> Int

    /// A clock reading `now()`.
    public init(_ now: @escaping @Sendable () -> Int) {
        self.read = now
    }

    /// The current time in Unix seconds.
    public func now() -> Int { read() }

    /// The system's wall clock.
    public static let system = SessionClock {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int(spec.tv_sec)
    }
}

/// Where the session core takes random bytes (session ids, and a development key). The
/// default is the system's cryptographically secure generator; tests inject a source that
/// replays known bytes to reproduce a cookie exactly.
public struct SessionRandom: Sendable {
    private let generate: @Sendable (Int) -> [UInt8]

    /// A source returning `count` bytes per call.
    public init(_ generate: @escaping @Sendable (_ count: Int) -> [UInt8]) {
        self.generate = generate
    }

    /// `count` random bytes.
    public func bytes(_ count: Int) -> [UInt8] {
        let bytes = generate(count)
        precondition(bytes.count == count, "SessionRandom returned \(bytes.count) bytes instead of \(count)")
        return bytes
    }

    /// A cryptographically secure generator: BoringSSL's `RAND_bytes` (the library under
    /// swift-crypto), as lua-resty-session takes its ids from OpenSSL's `RAND_bytes`. It is a
    /// per-thread CTR-DRBG seeded and reseeded from the kernel (`getrandom(2)`), safe across
    /// `fork`, so a session id costs no system call (one `getrandom` per save cost about a
    /// microsecond).
    public static let system = SessionRandom { count in
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { CCryptoBoringSSL_RAND_bytes(buffer.baseAddress, count) }  // aborts rather than fail
            initialized = count
        }
    }
}
