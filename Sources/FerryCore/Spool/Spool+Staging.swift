import Glibc

/// Batches are staged inside the spool as hard links, in `RANDOM.batch/` directories:
/// no bytes are copied, and recovery removes what a crash left.
extension Spool: BatchStaging {
    static let batchSuffix = ".batch"

    public func stage(_ tasks: [UploadTask]) throws(SystemError) -> StagedBatch {
        let directory = path(TaskID.make(), Self.batchSuffix)
        try Posix.mkdir(directory, 0o700)
        var batch = StagedBatch(directory: directory, sources: [])
        for task in tasks {
            let staged = "\(directory)/\(task.request.fileName)"
            guard link(task.sourcePath, staged) == 0 else {
                let failure = SystemError(call: "link \(task.sourcePath)", errno: errno)
                discard(batch)
                throw failure
            }
            batch.sources.append(staged)
        }
        return batch
    }

    public func discard(_ batch: StagedBatch) {
        Self.removeTree(batch.directory)
    }

    /// Removes a staging directory and the links in it.
    static func removeTree(_ directory: String) {
        for name in (try? Posix.listDirectory(directory)) ?? [] {
            try? Posix.unlink("\(directory)/\(name)")
        }
        rmdir(directory)
    }
}
