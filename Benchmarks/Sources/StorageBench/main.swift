import CBenchSupport
import Foundation
import Histogram
import NIOCore
import NIOPosix
import MemcachedSessionStorage
import MySQLSessionStorage
import PostgresSessionStorage
import RedisClusterSessionStorage
import RedisSessionStorage
import SessionStorage

// storage-bench: a mixed get / set / rotate / readMetadata load with N concurrent tasks against
// one storage, printing ops/s and latency percentiles. See BENCHMARKS.md for the runs.

struct Options {
    var backend = "memory"
    var tasks = 1
    var seconds = 5.0
    var warmup = 1.0
    var valueBytes = 1024
    var keys = 10_000
    var getPercent = 90
    var setPercent = 10
    var rotatePercent = 0
    var readMetadataPercent = 0
    var label: String?
    var host = "127.0.0.1"
    var port: Int?
    var poolSize = 4
    /// MySQL: the shared (pipelined) connections; `nil`: the store's default.
    var sharedConnections: Int?
    /// memcached, MySQL: requests one connection carries at once (nil: the store's default)
    var pipelineDepth: Int?
    /// Redis: requests pipelined per connection (`nil`: the store's default)
    var requestsPerConnection: Int?
    var numericKeys = false
    var user = "sess"
    var password = "sesspass"
    var database = "sessdb"
    /// `host:port,host:port,…` of a Redis Cluster
    var nodes = ""
    /// Local servers' PIDs (PostgreSQL: the postmaster; a Redis Cluster: every node's) whose
    /// process trees' CPU time per operation is printed too.
    var serverPIDs: [Int32] = []
    /// Event loop threads of the store's own group (PostgreSQL, MySQL); `nil`: the singleton group.
    var eventLoops: Int?
    /// Runs Swift concurrency's global executor on NIO's singleton event loops
    /// (`NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor`).
    var nioExecutor = false

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            func next() -> String {
                guard let value = iterator.next() else { fatalError("\(argument) needs a value") }
                return value
            }
            switch argument {
            case "--backend": options.backend = next()
            case "--tasks": options.tasks = Int(next())!
            case "--seconds": options.seconds = Double(next())!
            case "--warmup": options.warmup = Double(next())!
            case "--value-bytes": options.valueBytes = Int(next())!
            case "--keys": options.keys = Int(next())!
            case "--label": options.label = next()
            case "--host": options.host = next()
            case "--port": options.port = Int(next())!
            case "--pool-size": options.poolSize = Int(next())!
            case "--shared-connections": options.sharedConnections = Int(next())!
            case "--pipeline-depth": options.pipelineDepth = Int(next())!
            case "--requests-per-connection": options.requestsPerConnection = Int(next())!
            case "--numeric-keys": options.numericKeys = true
            case "--user": options.user = next()
            case "--password": options.password = next()
            case "--database": options.database = next()
            case "--nodes": options.nodes = next()
            case "--server-pid": options.serverPIDs = next().split(separator: ",").map { Int32($0)! }
            case "--event-loops": options.eventLoops = Int(next())!
            case "--nio-executor": options.nioExecutor = true
            case "--mix":
                // e.g. get=90,set=10,rotate=0,read_metadata=0
                options.getPercent = 0
                options.setPercent = 0
                for part in next().split(separator: ",") {
                    let pair = part.split(separator: "=")
                    let value = Int(pair[1])!
                    switch pair[0] {
                    case "get": options.getPercent = value
                    case "set": options.setPercent = value
                    case "rotate": options.rotatePercent = value
                    case "read_metadata": options.readMetadataPercent = value
                    default: fatalError("unknown operation \(pair[0])")
                    }
                }
            case "--help", "-h":
                print(
                    """
                    usage: storage-bench [--backend memory|memory-zone|hummingbird-memory|noop|memcached|redis|redis-cluster|mysql|postgres]
                                         [--host H] [--port P] [--nodes H:P,H:P] [--pool-size N] [--requests-per-connection N] [--numeric-keys]
                                         [--user U] [--password P] [--database D]
                    --numeric-keys: keys are the index zero-padded to 43 digits (pgbench's keys) [--tasks N] [--seconds S]
                                         [--warmup S] [--value-bytes B] [--keys K] [--label L]
                                         [--mix get=90,set=10,rotate=0,read_metadata=0] [--server-pid PID[,PID…]]
                    --event-loops N: the PostgreSQL or MySQL store on its own group of N event loops
                    --shared-connections N: MySQL's shared, pipelined connections (0: none; --pipeline-depth D each)
                    --nio-executor: Swift concurrency's global executor on NIO's event loops
                    --server-pid: also print the CPU time per operation of those local servers' process trees
                    Prints one line: RESULT label=… ops_per_sec=… p50_us=… p99_us=… p999_us=… errors=…
                    """)
                exit(0)
            default: fatalError("unknown argument \(argument)")
            }
        }
        precondition(options.getPercent + options.setPercent + options.rotatePercent + options.readMetadataPercent == 100,
                     "the mix must add up to 100")
        return options
    }
}

/// What runs once the service runs and before the load (creating tables).
nonisolated(unsafe) var prepare: (@Sendable () async throws -> Void)?

/// The target, and the service it needs running (a connection pool), if any.
func makeTarget(_ options: Options) throws -> (any BenchTarget, (@Sendable () async throws -> Void)?) {
    switch options.backend {
    case "memcached":
        var configuration = MemcachedSessionStore.Configuration()
        configuration.host = options.host
        configuration.port = options.port ?? 11211
        configuration.poolSize = options.poolSize
        if let depth = options.pipelineDepth { configuration.pipelineDepth = depth }
        let store = try MemcachedSessionStore(configuration: configuration)
        return (StoreTarget(store: store), { try await store.run() })
    case "redis":
        var configuration = RedisSessionStore.Configuration()
        configuration.host = options.host
        configuration.port = options.port ?? 6379
        configuration.poolSize = options.poolSize
        if options.password != "sesspass" { configuration.password = options.password }
        if let requests = options.requestsPerConnection { configuration.requestsPerConnection = requests }
        let store = RedisSessionStore(configuration: configuration)
        return (StoreTarget(store: store), { try await store.run() })
    case "redis-cluster":
        var configuration = RedisClusterSessionStore.Configuration()
        configuration.nodes = options.nodes.split(separator: ",").map { node in
            let parts = node.split(separator: ":")
            return .init(ip: String(parts[0]), port: Int(parts[1])!)
        }
        configuration.poolSize = options.poolSize
        configuration.password = options.password
        if let requests = options.requestsPerConnection { configuration.requestsPerConnection = requests }
        let store = RedisClusterSessionStore(configuration: configuration)
        return (StoreTarget(store: store), { try await store.run() })
    case "mysql":
        var configuration = MySQLSessionStore.Configuration(
            host: options.host, port: options.port ?? 3306, username: options.user, password: options.password)
        configuration.database = options.database
        configuration.poolSize = options.poolSize
        if let shared = options.sharedConnections { configuration.sharedConnections = shared }
        if let depth = options.pipelineDepth { configuration.pipelineDepth = depth }
        let store = try MySQLSessionStore(
            configuration: configuration,
            eventLoopGroup: options.eventLoops.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
                ?? MultiThreadedEventLoopGroup.singleton)
        prepare = { try await store.migrate() }
        return (StoreTarget(store: store), { try await store.run() })
    case "postgres":
        var configuration = PostgresSessionStore.Configuration()
        configuration.host = options.host
        configuration.port = options.port ?? 5432
        configuration.username = options.user
        configuration.password = options.password
        configuration.database = options.database
        configuration.poolSize = options.poolSize
        let store = try PostgresSessionStore(
            configuration: configuration,
            eventLoopGroup: options.eventLoops.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
                ?? MultiThreadedEventLoopGroup.singleton)
        prepare = { try await store.migrate() }
        return (StoreTarget(store: store), { await store.run() })
    default:
        return (makeLocalTarget(options), nil)
    }
}

func makeLocalTarget(_ options: Options) -> any BenchTarget {
    switch options.backend {
    case "memory":
        return StoreTarget(store: MemorySessionStore(configuration: .init(zone: "bench", capacity: 512 << 20)))
    case "memory-zone":
        return ZoneTarget()
    case "hummingbird-memory":
        return HummingbirdMemoryTarget()
    case "noop":
        return NoopTarget()
    default:
        fatalError("unknown backend \(options.backend)")
    }
}

/// A small, fast per-task generator (xorshift*), so random choices cost nothing measurable.
struct FastRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
    /// Uniform enough in `0..<bound` (the high half of a 64 × 64-bit product: no division).
    mutating func below(_ bound: Int) -> Int { Int(next().multipliedFullWidth(by: UInt64(bound)).high) }
}

struct TaskResult: Sendable {
    // two significant digits (1 % resolution): 30 KB of counters per task instead of 220 KB,
    // so recording a latency does not miss the cache
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .two)
    var operations = 0
    var errors = 0
}

let options = Options.parse(CommandLine.arguments)
if options.nioExecutor {
    precondition(NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor())
}
let (target, service) = try makeTarget(options)
let serviceTask = service.map { run in Task { try await run() } }
try await prepare?()
let keys = (0..<options.keys).map { index in
    if options.numericKeys {
        let digits = String(index + 1)
        return String(repeating: "0", count: 43 - digits.count) + digits
    }
    return Base64URL.encode((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ index &* 7 &+ (index >> 8)) })
}
/// Every key's bytes back to back (all keys have the same length), read-only and never freed:
/// the tasks read them without reference counting.
let keyLength = keys[0].utf8.count
nonisolated(unsafe) let keyBytes: UnsafeBufferPointer<UInt8> = {
    precondition(keys.allSatisfy { $0.utf8.count == keyLength })
    let bytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: keys.count * keyLength)
    _ = bytes.initialize(from: keys.lazy.flatMap(\.utf8))
    return UnsafeBufferPointer(bytes)
}()
let value = String(repeating: "v", count: options.valueBytes)
let now = Int(Date().timeIntervalSince1970)
let metadata = try SessionMetadata(audiences: ["app1", "app2"], subjects: ["alice", "bob"])

// Populate every key so that gets hit.
for key in keys { try await target.set(key: key, value: value, ttl: 3600, now: now) }

/// Nanoseconds of the monotonic clock (one vDSO call, no `Duration` arithmetic).
@inline(__always)
func monotonicNanos() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
}

/// The load loop, generic so that it is specialised for each target type: the call to the
/// target is a direct call (the target's own work, such as the call through `any SessionStore`,
/// is unchanged), for every target alike.
func runLoad<Target: BenchTarget>(_ target: Target, seconds: Double, record: Bool) async -> [TaskResult] {
    let deadline = monotonicNanos() + UInt64(seconds * 1e9)
    return await withTaskGroup(of: TaskResult.self) { group in
        for taskIndex in 0..<options.tasks {
            group.addTask {
                var result = TaskResult()
                // Each request brings its own key, as a request carrying its cookie would: a
                // new string made from the key's bytes (no string storage shared, and
                // reference-counted, across cores).
                let keyCount = keyBytes.count / keyLength
                let value = String(decoding: Array(value.utf8), as: UTF8.self)
                var random = FastRandom(state: 0x9E37_79B9_7F4A_7C15 &+ UInt64(taskIndex) &* 0x1234_5678_9ABC_DEF1)
                var rotations = 0
                // The next operation's key is chosen one operation ahead and its bytes
                // prefetched then, so that they are in the cache when its string is made, as a
                // request's cookie just parsed from the socket buffer would be: without this the
                // table of 10 000 keys (430 KB) misses the cache on every operation, a cost of
                // the benchmark, not of the store.
                var nextKey = random.below(keyCount) * keyLength
                // One clock read per operation: an operation's latency runs from the end of the
                // previous one (so it includes choosing and making its key).
                var last = monotonicNanos()
                while last < deadline {
                    for _ in 0..<64 {
                        let dice = random.below(100)
                        let keyIndex = nextKey
                        nextKey = random.below(keyCount) * keyLength
                        bench_prefetch(keyBytes.baseAddress! + nextKey)
                        bench_prefetch(keyBytes.baseAddress! + nextKey + keyLength - 1)
                        let key = String(decoding: keyBytes[keyIndex..<keyIndex + keyLength], as: UTF8.self)
                        do {
                            if dice < options.getPercent {
                                _ = try await target.get(key: key, now: now)
                            } else if dice < options.getPercent + options.setPercent {
                                try await target.set(key: key, value: value, ttl: 3600, now: now)
                            } else if dice < options.getPercent + options.setPercent + options.rotatePercent {
                                rotations += 1
                                let fresh = Base64URL.encode(
                                    (0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) })
                                try await target.setRotating(
                                    key: fresh, oldKey: key, value: value, ttl: 3600, now: now, metadata: metadata)
                            } else {
                                _ = try await target.readMetadata(audience: "app1", subject: "alice", now: now)
                            }
                        } catch {
                            result.errors += 1
                        }
                        if record {
                            let end = monotonicNanos()
                            _ = result.histogram.record(end &- last)
                            last = end
                        }
                        result.operations += 1
                    }
                    if !record { last = monotonicNanos() }
                }
                return result
            }
        }
        var results: [TaskResult] = []
        for await result in group { results.append(result) }
        return results
    }
}

if options.warmup > 0 { _ = await runLoad(target, seconds: options.warmup, record: false) }
/// The process's context switches so far (voluntary + involuntary, every thread).
func contextSwitches() -> Int {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return usage.ru_nvcsw + usage.ru_nivcsw
}
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}
let servers = options.serverPIDs.map(ServerCPU.init)
func sampleServers() -> (seconds: Double, children: Int)? {
    guard !servers.isEmpty else { return nil }
    return servers.map { $0.sample() }.reduce((seconds: 0.0, children: 0)) {
        (seconds: $0.seconds + $1.seconds, children: $0.children + $1.children)
    }
}
/// The servers' read and write system calls (their main processes).
func serverSyscalls() -> (reads: Int, writes: Int) {
    servers.map { ServerCPU.syscalls(String($0.pid)) }.reduce((reads: 0, writes: 0)) {
        (reads: $0.reads + $1.reads, writes: $0.writes + $1.writes)
    }
}
let serverStart = sampleServers()
let serverSyscallsStart = serverSyscalls()
let syscallsStart = ServerCPU.syscalls("self")
let cpuStart = cpuSeconds()
let switchesStart = contextSwitches()
let started = ContinuousClock.now
let results = await runLoad(target, seconds: options.seconds, record: true)
let elapsed = started.duration(to: .now)
let cpuUsed = cpuSeconds() - cpuStart
let switches = contextSwitches() - switchesStart
let serverEnd = sampleServers()
let serverSyscallsEnd = serverSyscalls()
let syscallsEnd = ServerCPU.syscalls("self")
var merged = TaskResult()
for result in results {
    merged.histogram.add(result.histogram)
    merged.operations += result.operations
    merged.errors += result.errors
}
let (secs, atto) = elapsed.components
let seconds = Double(secs) + Double(atto) / 1e18
let opsPerSecond = Double(merged.operations) / seconds
let histogram = merged.histogram
func micros(_ percentile: Double) -> String {
    String(format: "%.1f", Double(histogram.valueAtPercentile(percentile)) / 1000)
}
let label = options.label ?? "\(options.backend)-t\(options.tasks)"
var serverText = ""
if let serverStart, let serverEnd {
    let nanos = (serverEnd.seconds - serverStart.seconds) * 1e9 / Double(max(merged.operations, 1))
    let operations = Double(max(merged.operations, 1))
    serverText = " server_cpu_ns_per_op=\(Int(nanos)) server_children=\(serverEnd.children)"
        + " server_reads_per_op=\(String(format: "%.3f", Double(serverSyscallsEnd.reads - serverSyscallsStart.reads) / operations))"
        + " server_writes_per_op=\(String(format: "%.3f", Double(serverSyscallsEnd.writes - serverSyscallsStart.writes) / operations))"
}
let cpuText = "cpu_ns_per_op=\(Int(cpuUsed * 1e9 / Double(max(merged.operations, 1)))) "
    + "ctxsw_per_op=\(String(format: "%.2f", Double(switches) / Double(max(merged.operations, 1)))) "
    + "reads_per_op=\(String(format: "%.3f", Double(syscallsEnd.reads - syscallsStart.reads) / Double(max(merged.operations, 1)))) "
    + "writes_per_op=\(String(format: "%.3f", Double(syscallsEnd.writes - syscallsStart.writes) / Double(max(merged.operations, 1))))"
print(
    "RESULT label=\(label) backend=\(options.backend) tasks=\(options.tasks) ops=\(merged.operations) "
        + "seconds=\(String(format: "%.2f", seconds)) ops_per_sec=\(Int(opsPerSecond)) "
        + "p50_us=\(micros(50)) p99_us=\(micros(99)) p999_us=\(micros(99.9)) errors=\(merged.errors) "
        + cpuText + serverText)
serviceTask?.cancel()
