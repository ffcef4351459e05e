#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CRestySessionShims

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

    /// The system's cryptographically secure generator: one `getrandom(2)` call for all the
    /// bytes on Linux (the kernel's CSPRNG, never blocking once seeded), `arc4random_buf` on
    /// Darwin.
    public static let system = SessionRandom { count in
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            systemRandom(buffer)
            initialized = count
        }
    }
}

/// Fills `buffer` from the system's CSPRNG: one `getrandom(2)` call on Linux.
func systemRandom(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
    guard let base = buffer.baseAddress, buffer.count > 0 else { return }
    if c_resty_session_random(base, buffer.count) != 0 {
        // no getrandom (Linux < 3.17): the standard library's generator, which traps if it
        // cannot read the kernel's randomness either
        var generator = SystemRandomNumberGenerator()
        for index in buffer.indices { buffer[index] = generator.next() }
    }
}
