/// Makes a batch's files look like their destinations: `incus file push` names each file it
/// puts into a directory after its source, so a batch's sources must carry the final names.
public protocol BatchStaging: Sendable {
    /// Files named after each task's destination, holding its bytes, in `tasks` order.
    func stage(_ tasks: [UploadTask]) throws(SystemError) -> StagedBatch
    /// Removes what ``stage(_:)`` made (not the tasks' own bytes).
    func discard(_ batch: StagedBatch)
}

/// What ``BatchStaging/stage(_:)`` made.
public struct StagedBatch: Sendable {
    /// The directory holding the staged files.
    public var directory: String
    /// One staged file per task, in order.
    public var sources: [String]

    public init(directory: String, sources: [String]) {
        self.directory = directory
        self.sources = sources
    }
}
