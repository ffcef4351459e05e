import Foundation
import RestySession
import SessionStorage

// session-bench: open + save of a session holding 1 KiB of data, through the session core,
// with N concurrent tasks; cookie-only or on the memory store. Prints one RESULT line.
// `--operation open` measures what a request that only reads its session costs: open, read
// the subject, refresh (nothing is due, so nothing is written); `--operation request` the same
// through `RequestSession`, as the framework adapters run it (load, subject, finish).
//
//   session-bench [--storage cookie|memory] [--operation open-save|open|request] [--tasks N] [--seconds S] [--data-bytes B]

let usage = "usage: session-bench [--storage cookie|memory] [--operation open-save|open|request] [--tasks N] [--seconds S] [--data-bytes B]"
var operation = "open-save"
var storageKind = "cookie"
var tasks = 1
var seconds = 5.0
var dataBytes = 1024
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    func next() -> String {
        guard let value = arguments.next() else { fatalError("\(argument) needs a value") }
        return value
    }
    switch argument {
    case "--storage": storageKind = next()
    case "--operation": operation = next()
    case "--tasks": tasks = Int(next())!
    case "--seconds": seconds = Double(next())!
    case "--data-bytes": dataBytes = Int(next())!
    case "--help", "-h":
        print(usage)
        exit(0)
    default:
        FileHandle.standardError.write(Data("unknown argument \(argument)\n\(usage)\n".utf8))
        exit(2)
    }
}

var configuration = SessionManager.Configuration()
configuration.secret = "benchmark secret, not for production use"
configuration.cookieSecure = false
let storage: (any SessionStore)? = switch storageKind {
case "cookie": nil
case "memory": MemorySessionStore(configuration: .init(zone: "session-bench", capacity: 256 << 20))
default: fatalError("unknown storage \(storageKind)")
}
let manager = try SessionManager(configuration: configuration, storage: storage)

// One session with 1 KiB of data; each request carries its cookie.
@Sendable func cookieHeader(_ setCookies: [String]) -> String {
    // what a browser sends back: each Set-Cookie's name=value (byte-wise: the harness must not
    // cost more than what it measures)
    setCookies.map { cookie in
        var cookie = cookie
        return cookie.withUTF8 { bytes in
            String(decoding: bytes[..<(bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.endIndex)], as: UTF8.self)
        }
    }.joined(separator: "; ")
}
func firstCookie(_ manager: SessionManager, dataBytes: Int) async throws -> String {
    var first = manager.new(SessionRequest(cookieHeader: nil))
    // varied, barely compressible text (base64url of pseudo-random bytes), as real data would be
    var state: UInt64 = 0x243F_6A88_85A3_08D3
    let bytes = (0..<(dataBytes * 3 / 4)).map { _ -> UInt8 in state = state &* 6_364_136_223_846_793_005 &+ 1; return UInt8(truncatingIfNeeded: state >> 56) }
    first["data"] = .string(Base64URL.encode(bytes))
    first.subject = "bench"
    try await first.save()
    return cookieHeader(first.setCookieHeaders)
}
let initialCookie = try await firstCookie(manager, dataBytes: dataBytes)
guard ["open-save", "open", "request"].contains(operation) else { fatalError("unknown operation \(operation)") }
let throughRequestSession = operation == "request"
let saves = operation == "open-save"

struct Result: Sendable { var operations = 0; var errors = 0; var failedOpens = 0 }

func load(seconds: Double, tasks: Int, manager: SessionManager, initialCookie: String) async -> [Result] {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    return await withTaskGroup(of: Result.self) { group in
        for _ in 0..<tasks {
            group.addTask {
                var result = Result()
                // each task follows its own cookie (save() on a storage rotates the id)
                var cookie = initialCookie
                var counter = 0
                while ContinuousClock.now < deadline {
                    for _ in 0..<32 {
                        do {
                            if throughRequestSession {
                                let request = RequestSession(manager: manager, request: SessionRequest(cookieHeader: cookie))
                                if try await request.subject() != "bench" { result.failedOpens += 1 }
                                if try await !request.finish().isEmpty { result.errors += 1 }
                                result.operations += 1
                                continue
                            }
                            var session = try await manager.open(SessionRequest(cookieHeader: cookie))
                            if !session.exists { result.failedOpens += 1 }
                            if saves {
                                counter += 1
                                session["n"] = .number(Double(counter))
                                try await session.save()
                                cookie = cookieHeader(session.setCookieHeaders)
                            } else {
                                if session.subject != "bench" { result.failedOpens += 1 }
                                try await session.refresh()
                                if !session.setCookieHeaders.isEmpty { result.errors += 1 }
                            }
                        } catch {
                            result.errors += 1
                        }
                        result.operations += 1
                    }
                }
                return result
            }
        }
        var results: [Result] = []
        for await result in group { results.append(result) }
        return results
    }
}

/// CPU seconds this process used so far (user + system): what an operation costs, whatever
/// else the machine runs.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

_ = await load(seconds: 0.5, tasks: tasks, manager: manager, initialCookie: initialCookie)
let cpuStarted = cpuSeconds()
let started = ContinuousClock.now
let results = await load(seconds: seconds, tasks: tasks, manager: manager, initialCookie: initialCookie)
let elapsed = started.duration(to: .now)
let cpuUsed = cpuSeconds() - cpuStarted
let operations = results.reduce(0) { $0 + $1.operations }
let errors = results.reduce(0) { $0 + $1.errors }
let failedOpens = results.reduce(0) { $0 + $1.failedOpens }
let (secs, atto) = elapsed.components
let wall = Double(secs) + Double(atto) / 1e18
print("RESULT storage=\(storageKind) operation=\(operation) tasks=\(tasks) ops=\(operations) ops_per_sec=\(Int(Double(operations) / wall)) "
    + "us_per_op_per_task=\(String(format: "%.2f", wall * 1e6 * Double(tasks) / Double(max(operations, 1)))) "
    + "cpu_us_per_op=\(String(format: "%.2f", cpuUsed * 1e6 / Double(max(operations, 1)))) "
    + "errors=\(errors) failed_opens=\(failedOpens) cookie_bytes=\(initialCookie.utf8.count)")
