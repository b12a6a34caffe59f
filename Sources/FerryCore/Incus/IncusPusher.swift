/// Delivers files by running `incus file push`, one process per task.
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
        let request = task.request
        var arguments = [
            "file", "push", "-q", "--uid", String(request.uid), "--gid", String(request.gid),
            "--mode", request.octalMode,
        ]
        if request.createDirectories { arguments.append("-p") }
        arguments += ["--", task.sourcePath, "\(request.container)\(request.path)"]
        return arguments
    }

    public func push(_ task: UploadTask) -> PushResult {
        let outcome: ProcessOutcome
        do {
            outcome = try ChildProcess.run(executable, arguments: Self.arguments(for: task), timeout: timeout)
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
