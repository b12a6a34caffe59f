import Glibc
import Logging

/// Delivers files by running `incus file push`: one process per task, or per batch.
public struct IncusPusher: Pusher {
    /// The `incus` binary (a path, or a name searched on PATH).
    public var executable: String
    /// Seconds any push may run before it is killed (and counted as transient).
    public var timeout: Double
    /// Bytes per second a push must at least move: a push of `n` bytes may run
    /// `timeout + n / minimumRate` seconds, so a large file is not cut off and a stuck
    /// small one does not hold its worker for long.
    public var minimumRate: Double

    /// Asks the daemon what each destination is before a push; nil pushes unasked.
    public var inspector: IncusFileInspector?
    /// Says when a destination could not be checked.
    public var logger: Logger?
    /// Write through symlinks in the destination (`--follow-symlinks`): the operator's
    /// explicit opt-out of the check that refuses them.
    public var followSymlinks: Bool

    public init(
        executable: String = "incus", timeout: Double = 15, minimumRate: Double = 2 * 1024 * 1024,
        inspector: IncusFileInspector? = nil, logger: Logger? = nil, followSymlinks: Bool = false
    ) {
        self.followSymlinks = followSymlinks
        self.executable = executable
        self.timeout = timeout
        self.minimumRate = minimumRate
        self.inspector = inspector
        self.logger = logger
    }

    /// The time allowed for pushing `bytes`.
    public func timeout(forBytes bytes: UInt64) -> Double {
        timeout + Double(bytes) / minimumRate
    }

    /// The argv after the program name. Owner and mode are always given: Incus would copy
    /// them from the spool file (0600, root). `--` ends the options, so no value can become
    /// one (names and paths are validated too).
    public static func arguments(for task: UploadTask) -> [String] {
        options(for: task.request) + ["--", task.sourcePath, "\(task.request.container)\(task.request.path)"]
    }

    /// The argv for a batch: every source into the shared directory (the trailing `/` makes
    /// Incus append each source's base name, which staging made the destination's).
    public static func arguments(for tasks: [UploadTask], sources: [String]) -> [String] {
        let first = tasks[0]
        return options(for: first.request) + ["--"] + sources
            + ["\(first.request.container)\(first.destinationDirectory)"]
    }

    private static func options(for request: UploadRequest) -> [String] {
        var arguments = [
            "file", "push", "-q", "--uid", String(request.uid), "--gid", String(request.gid),
            "--mode", request.octalMode,
        ]
        if request.createDirectories { arguments.append("-p") }
        return arguments
    }

    public func push(_ task: UploadTask) -> PushResult {
        if let refusal = refusal(of: [task]) { return .failed(refusal) }
        return run(Self.arguments(for: task), timeout: timeout(forBytes: task.bytes))
    }

    public func push(_ tasks: [UploadTask], sources: [String]) -> PushResult {
        // A bad destination fails the batch; the pool then pushes its files one by one,
        // and only that one fails.
        if let refusal = refusal(of: tasks) { return .failed(refusal) }
        return run(
            Self.arguments(for: tasks, sources: sources),
            timeout: timeout(forBytes: tasks.reduce(0) { $0 + $1.bytes }))
    }

    /// A permanent failure when a destination has a symlink in it (a parent or the name
    /// itself), or exists and is neither a regular file nor a directory: a FIFO would hold
    /// the push (and a daemon thread) until the timeout, a device would take the bytes.
    ///
    /// The symlink check fails closed: when the daemon cannot be asked, the push waits
    /// (a transient failure) rather than going unchecked. With `followSymlinks` only the
    /// final name is checked, following symlinks, and an unanswered check lets the push
    /// decide, as before the check existed.
    private func refusal(of tasks: [UploadTask]) -> PushFailure? {
        guard let inspector, let first = tasks.first else { return nil }
        let (instance, remote) = (first.request.instance, first.request.remote)
        if followSymlinks { return refusalFollowingSymlinks(of: tasks, inspector: inspector) }
        let kinds: [String: DestinationKind]
        do {
            kinds = try inspector.lstatComponents(
                instance: instance, remote: remote, paths: tasks.map(\.request.path))
        } catch {
            switch error {
            case .invalidInstanceName, .unknownRemote, .refused(status: 404, _):
                // No such instance: the push would fail the same way, for good.
                return PushFailure(kind: .permanent, message: "\(error)", started: false)
            default: break
            }
            return PushFailure(
                kind: .transient, message: "cannot check the destination for symlinks: \(error)",
                started: false)
        }
        for task in tasks {
            switch DestinationCheck.verdict(for: task.request.path, kinds: kinds) {
            case .writable:
                continue
            case .symlink(let component):
                return PushFailure(
                    kind: .permanent,
                    message:
                        "symlink_in_destination: \(component) is a symlink in the container; Ferry does not write through symlinks (--follow-symlinks would)",
                    started: false)
            case .unusable(let name):
                return Self.unusable(task, name)
            }
        }
        return nil
    }

    private func refusalFollowingSymlinks(of tasks: [UploadTask], inspector: IncusFileInspector)
        -> PushFailure?
    {
        let kinds: [DestinationKind]
        do {
            kinds = try inspector.inspect(
                instance: tasks[0].request.instance, remote: tasks[0].request.remote,
                paths: tasks.map(\.request.path))
        } catch {
            logger?.debug(
                "destinations not checked before the push",
                metadata: ["container": "\(tasks[0].request.container)", "error": "\(error)"])
            return nil
        }
        for (task, kind) in zip(tasks, kinds) {
            if case .other(let name) = kind { return Self.unusable(task, name) }
        }
        return nil
    }

    private static func unusable(_ task: UploadTask, _ name: String) -> PushFailure {
        PushFailure(
            kind: .permanent,
            message: "destination \(task.request.path) is a \(name); Ferry writes only regular files",
            started: false)
    }

    private func run(_ arguments: [String], timeout: Double) -> PushResult {
        let outcome: ProcessOutcome
        do {
            outcome = try ChildProcess.run(executable, arguments: arguments, timeout: timeout)
        } catch {
            // Out of descriptors, processes or memory: the push never started, which says
            // nothing about the file or its destination.
            let kind: PushFailure.Kind =
                [EMFILE, ENFILE, EAGAIN, ENOMEM].contains(error.errno) ? .unstarted : .transient
            return .failed(
                PushFailure(kind: kind, message: "cannot run \(executable): \(error)", started: false))
        }
        if outcome.timedOut {
            return .failed(
                PushFailure(
                    kind: .transient, message: "timed out after \(Monotonic.format(timeout))s and was killed")
            )
        }
        if outcome.exitStatus == 0 { return .delivered }
        let message = Self.firstLine(outcome.standardError) ?? "exited without a message"
        return .failed(
            PushFailure(
                kind: PushErrorClassifier.classify(standardError: outcome.standardError),
                message: message, exitStatus: outcome.exitStatus))
    }

    private static func firstLine(_ text: String) -> String? {
        text.split(whereSeparator: \.isNewline).first.map(String.init)
    }
}
