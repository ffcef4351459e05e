import Foundation

/// The CPU time of a server process tree (Linux `/proc`): the process itself, its children
/// alive now, and the children that already exited (their time moves into the parent's
/// `cutime`/`cstime` once reaped). For PostgreSQL pass the postmaster's PID: every backend is
/// one of its children. Two samples bracket the measured phase.
struct ServerCPU {
    let pid: Int32

    /// The read and write system calls of a process so far (`/proc/PID/io`; `"self"` for ours).
    static func syscalls(_ pid: String) -> (reads: Int, writes: Int) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) else { return (0, 0) }
        var reads = 0
        var writes = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Int(parts[1]) else { continue }
            if parts[0] == "syscr:" { reads = value }
            if parts[0] == "syscw:" { writes = value }
        }
        return (reads, writes)
    }

    /// Seconds of CPU of the tree, and how many children run now.
    func sample() -> (seconds: Double, children: Int) {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var total = 0.0
        if let own = Self.stat(pid) {
            total += Double(own.utime + own.stime + own.cutime + own.cstime)
        }
        var children = 0
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let child = Int32(entry), let stat = Self.stat(child), stat.ppid == pid else { continue }
            children += 1
            total += Double(stat.utime + stat.stime)
        }
        return (total / ticks, children)
    }

    private struct Stat {
        var ppid: Int32
        var utime: Int
        var stime: Int
        var cutime: Int
        var cstime: Int
    }

    /// Fields of `/proc/PID/stat` (after the command name, which may hold spaces).
    private static func stat(_ pid: Int32) -> Stat? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3): ppid is field 4, utime..cstime fields 14..17.
        guard fields.count > 14, let ppid = Int32(fields[1]), let utime = Int(fields[11]), let stime = Int(fields[12]),
            let cutime = Int(fields[13]), let cstime = Int(fields[14])
        else { return nil }
        return Stat(ppid: ppid, utime: utime, stime: stime, cutime: cutime, cstime: cstime)
    }
}
