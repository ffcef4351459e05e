#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A server process a test starts itself (posix_spawn), to kill and restart it.
///
/// Foundation's `Process.waitUntilExit` spins a run loop on the calling thread and was seen to
/// never return inside the test runner; this type reaps its child with `waitpid` on its own pid
/// only, which returns as soon as the child is gone.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: `pid` is written by start() and kill(), which a test calls one after another.
    /// The executable's path.
    public let executable: String
    /// The arguments (without the executable).
    public let arguments: [String]
    /// The running child's pid, or nil.
    public private(set) var pid: pid_t?

    /// Starts `executable` with `arguments`, stdout and stderr to /dev/null.
    public init(executable: String, arguments: [String]) throws {
        self.executable = executable
        self.arguments = arguments
        try start()
    }

    /// Starts the process (again).
    public func start() throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, nil, argv, environ)
        guard result == 0 else { throw ConformanceFailure("posix_spawn \(executable) failed (\(result))") }
        pid = child
    }

    /// Kills the process with `signal` (SIGKILL by default: it dies mid-request) and reaps it.
    public func kill(signal: Int32 = SIGKILL) {
        guard let pid else { return }
        #if canImport(Glibc)
        _ = Glibc.kill(pid, signal)
        #else
        _ = Darwin.kill(pid, signal)
        #endif
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        self.pid = nil
    }

    deinit { kill() }
}
