import Glibc
import Synchronization

/// What a finished child process left behind.
public struct ProcessOutcome: Sendable, Equatable {
    /// The exit status, or nil when a signal ended it.
    public var exitStatus: Int32?
    /// Whether Ferry killed it because it ran past its time limit.
    public var timedOut: Bool
    public var standardOutput: String
    public var standardError: String
}

/// Runs a program with `posix_spawn`: an argv array (no shell), stdin from /dev/null,
/// stdout and stderr captured, killed when it runs too long.
///
/// Every descriptor Ferry opens is close-on-exec, so the child gets only these three.
public enum ChildProcess {
    /// Children running now, so a shutdown can stop them at its deadline.
    private static let running = Mutex<Set<pid_t>>([])

    /// Marks every descriptor the process inherited (above stderr) close-on-exec, so that
    /// pushes get only their stdin, stdout and stderr: whatever started Ferry may have left
    /// descriptors open, and Ferry opens its own with close-on-exec. Call once at start-up.
    public static func keepInheritedDescriptorsFromChildren() {
        guard let names = try? Posix.listDirectory("/proc/self/fd") else { return }
        for name in names {
            guard let descriptor = Int32(name), descriptor > 2 else { continue }
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// Kills (SIGKILL) every child started by ``run(_:arguments:timeout:)`` that still runs.
    public static func killAll() {
        running.withLock { pids in
            for pid in pids { kill(-pid, SIGKILL) }
        }
    }

    /// Runs `executable` (searched on PATH when it has no `/`) and waits for it.
    ///
    /// - Throws: ``SystemError`` when the program cannot be started.
    public static func run(
        _ executable: String, arguments: [String], timeout: Double
    ) throws(SystemError) -> ProcessOutcome {
        var output: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        // socketpair, unlike pipe, takes SOCK_CLOEXEC from Swift: close-on-exec is set
        // atomically, so a push spawned by another worker cannot inherit these ends.
        let kind = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, kind, 0, &output) == 0 else {
            throw SystemError(call: "socketpair", errno: errno)
        }
        guard socketpair(AF_UNIX, kind, 0, &errors) == 0 else {
            Posix.close(output[0])
            Posix.close(output[1])
            throw SystemError(call: "socketpair", errno: errno)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        let (spawned, pid) = spawn(executable, arguments: arguments, actions: &actions)
        Posix.close(output[1])
        Posix.close(errors[1])
        guard spawned == 0 else {
            Posix.close(output[0])
            Posix.close(errors[0])
            throw SystemError(call: "posix_spawn \(executable)", errno: spawned)
        }
        let deadline = Monotonic.seconds() + timeout
        var (standardOutput, standardError, timedOut) = collect(
            output: output[0], errors: errors[0], pid: pid, deadline: deadline)
        // The pipes can close before the child ends; the deadline holds for the wait too.
        while !hasExited(pid) {
            if Monotonic.seconds() >= deadline {
                kill(-pid, SIGKILL)
                timedOut = true
                break
            }
            usleep(5000)
        }
        let status = reap(pid)
        let exited = (status & 0x7f) == 0
        return ProcessOutcome(
            exitStatus: exited ? (status >> 8) & 0xff : nil, timedOut: timedOut,
            standardOutput: standardOutput, standardError: standardError)
    }

    /// Starts `executable` with its stdin and stdout on one end of a socket pair (stderr
    /// on /dev/null) and returns the other end, non-blocking: a byte stream to the child
    /// (`openssl s_client`, a TLS tunnel). End it with ``stop(_:)``.
    ///
    /// - Throws: ``SystemError`` when the program cannot be started.
    public static func spawnConnected(_ executable: String, arguments: [String]) throws(SystemError) -> (
        pid: pid_t, descriptor: Int32
    ) {
        var ends: [Int32] = [-1, -1]
        let kind = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, kind, 0, &ends) == 0 else {
            throw SystemError(call: "socketpair", errno: errno)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, ends[1], 0)
        posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let (spawned, pid) = spawn(executable, arguments: arguments, actions: &actions)
        Posix.close(ends[1])
        guard spawned == 0 else {
            Posix.close(ends[0])
            throw SystemError(call: "posix_spawn \(executable)", errno: spawned)
        }
        _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
        return (pid, ends[0])
    }

    /// Kills a child of ``spawnConnected(_:arguments:)`` (and what it started) and reaps it.
    public static func stop(_ pid: pid_t) {
        kill(-pid, SIGKILL)
        _ = reap(pid)
    }

    /// Forgets `pid` (before it is reaped, so killAll() never signals a recycled pid) and
    /// waits for it; returns its wait status.
    private static func reap(_ pid: pid_t) -> Int32 {
        running.withLock { _ = $0.remove(pid) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// Spawns `executable` with `actions`, in a process group of its own, with default
    /// signal dispositions; returns posix_spawn's result and the pid.
    private static func spawn(
        _ executable: String, arguments: [String], actions: inout posix_spawn_file_actions_t
    ) -> (Int32, pid_t) {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with default signal dispositions and nothing blocked, whatever
        // the server did with SIGPIPE or its signal mask.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGHUP)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        // Its own process group, so a timeout or a shutdown kills whatever it started too.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        // Spawned under the lock so that a shutdown's killAll() sees every child.
        let spawned = running.withLock { running in
            let result = posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
            if result == 0 { running.insert(pid) }
            return result
        }
        return (spawned, pid)
    }

    /// Whether `pid` has ended, without reaping it (so its pid stays reserved).
    private static func hasExited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        let status = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        return status != 0 || info._sifields._sigchld.si_pid != 0
    }

    /// Reads both pipes until they close; kills the child if `timeout` passes first.
    private static func collect(output: Int32, errors: Int32, pid: pid_t, deadline: Double)
        -> (String, String, Bool)
    {
        defer {
            Posix.close(output)
            Posix.close(errors)
        }
        var captured: [[UInt8]] = [[], []]
        var open = [true, true]
        let descriptors = [output, errors]
        var timedOut = false
        var chunk = [UInt8](repeating: 0, count: 4096)
        while open[0] || open[1] {
            let remaining = deadline - Monotonic.seconds()
            if remaining <= 0 {
                kill(-pid, SIGKILL)
                timedOut = true
                break
            }
            var polled = (0..<2).filter { open[$0] }.map {
                pollfd(fd: descriptors[$0], events: Int16(POLLIN), revents: 0)
            }
            let ready = poll(&polled, nfds_t(polled.count), Int32(min(remaining * 1000 + 1, 60_000)))
            if ready < 0 && errno != EINTR { break }
            for entry in polled where entry.revents != 0 {
                let index = entry.fd == output ? 0 : 1
                let count = read(entry.fd, &chunk, chunk.count)
                if count > 0 {
                    // Keep the first 64 KiB: enough for any message, bounded for any child.
                    if captured[index].count < 65536 { captured[index] += chunk[0..<count] }
                } else if count == 0 || errno != EINTR {
                    open[index] = false
                }
            }
        }
        return (
            String(decoding: captured[0], as: UTF8.self), String(decoding: captured[1], as: UTF8.self),
            timedOut
        )
    }
}
