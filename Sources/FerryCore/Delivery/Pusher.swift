/// Delivers files into their container. Called on worker threads; may block.
public protocol Pusher: Sendable {
    /// Delivers one task's file.
    func push(_ task: UploadTask) -> PushResult
    /// Delivers several tasks of one ``UploadTask/batchKey`` in one go; `sources[i]` is a
    /// file named like `tasks[i]`'s destination (see ``BatchStaging``). Delivered means
    /// all were; on failure any may have been.
    func push(_ tasks: [UploadTask], sources: [String]) -> PushResult
}

/// How one push attempt ended.
public enum PushResult: Sendable, Equatable {
    case delivered
    case failed(PushFailure)
}

/// A failed push, classified.
public struct PushFailure: Error, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Retrying cannot help (no such instance, bad target...).
        case permanent
        /// Might work later (daemon down, timeout, anything unrecognised).
        case transient
        /// The push could not even start (the system ran out of descriptors, processes or
        /// memory): tried again later without counting an attempt, so it never makes a
        /// dead letter of an accepted upload.
        case unstarted
    }

    public var kind: Kind
    /// What went wrong, as Incus (or the system) said it.
    public var message: String
    /// The pusher's exit status, when a process ran and exited.
    public var exitStatus: Int32?
    /// Whether a push ran at all (false: refused by a check before it, or never started);
    /// only pushes that ran are counted as push attempts in the metrics.
    public var started: Bool

    public init(kind: Kind, message: String, exitStatus: Int32? = nil, started: Bool = true) {
        self.kind = kind
        self.message = message
        self.exitStatus = exitStatus
        self.started = started
    }
}
