/// Delivers files by running `incus file push`: one process per task, or per batch.
public struct IncusPusher: Pusher {
    /// The `incus` binary (a path, or a name searched on PATH).
    public var executable: String
    /// Seconds a push may run before it is killed (and counted as transient).
    public var timeout: Double

    public init(executable: String = "incus", timeout: Double = 300) {
        self.executable = executable
        self.timeout = timeout
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
        run(Self.arguments(for: task))
    }

    public func push(_ tasks: [UploadTask], sources: [String]) -> PushResult {
        run(Self.arguments(for: tasks, sources: sources))
    }

    private func run(_ arguments: [String]) -> PushResult {
        let outcome: ProcessOutcome
        do {
            outcome = try ChildProcess.run(executable, arguments: arguments, timeout: timeout)
        } catch {
            return .failed(PushFailure(kind: .transient, message: "cannot run \(executable): \(error)"))
        }
        if outcome.timedOut {
            return .failed(
                PushFailure(kind: .transient, message: "timed out after \(timeout)s and was killed"))
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
