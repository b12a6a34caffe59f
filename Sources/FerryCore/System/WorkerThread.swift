import Glibc

/// Detached threads started with `pthread_create`, whose failure is reported: Foundation's
/// `Thread.start()` on Linux drops it, and the work then silently never runs.
public enum WorkerThread {
    /// Names the calling thread for `top -H` and /proc/PID/task/*/comm (its first 15
    /// bytes). Glibc's module leaves out `pthread_setname_np`, and Foundation's
    /// `Thread.name` was seen to leave some threads unnamed.
    public static func nameCurrentThread(_ name: String) {
        let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = name.withCString { write(descriptor, $0, min(15, strlen($0))) }
        close(descriptor)
    }

    /// Runs `body` on a new detached thread named `name` (its first 15 bytes).
    ///
    /// - Throws: ``SystemError`` when the system cannot start a thread.
    static func start(named name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        let work = Unmanaged.passRetained(ThreadWork(name: name, body: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(&thread, &attributes, runThreadWork, work)
        guard status == 0 else {
            Unmanaged<ThreadWork>.fromOpaque(work).release()
            throw SystemError(call: "pthread_create", errno: status)
        }
    }
}

/// What a ``WorkerThread`` runs, handed through `pthread_create`'s argument.
private final class ThreadWork {
    let name: String
    let body: @Sendable () -> Void

    init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }
}

/// The thread's entry: names it, then runs its work.
private func runThreadWork(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let argument else { return nil }
    let work = Unmanaged<ThreadWork>.fromOpaque(argument).takeRetainedValue()
    WorkerThread.nameCurrentThread(work.name)
    work.body()
    return nil
}
