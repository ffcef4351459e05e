#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// The system's cryptographically secure generator (`SystemRandomNumberGenerator`:
    /// `getrandom(2)` on Linux, `arc4random_buf` on Darwin).
    public static let system = SessionRandom { count in
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in generator.next() }
    }
}
