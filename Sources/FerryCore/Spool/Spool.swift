import Glibc

/// The directory where upload bytes live between receipt and delivery.
///
/// A file is `ID.part` while its body arrives and `ID.data` once it is complete and synced.
/// Names are generated here only; files are 0600 and created with `O_EXCL|O_NOFOLLOW`.
public final class Spool: Sendable {
    public let directory: String
    static let partialSuffix = ".part"
    static let completeSuffix = ".data"

    /// Opens (creating it 0700, and its parents) the spool directory and deletes partial uploads left by
    /// a previous process: they were never acknowledged.
    ///
    /// - Throws: ``SystemError`` when the directory cannot be made or read.
    public init(directory: String) throws(SystemError) {
        let trimmed =
            directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        self.directory = trimmed
        try Posix.makeDirectories(trimmed, 0o700)
        for name in try Posix.listDirectory(trimmed) where name.hasSuffix(Self.partialSuffix) {
            try Posix.unlink("\(trimmed)/\(name)")
        }
    }

    /// Creates the file that will receive upload `id`'s body.
    public func create(id: String) throws(SystemError) -> SpoolFile {
        let partial = path(id, Self.partialSuffix)
        let descriptor = try Posix.open(partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        return SpoolFile(
            id: id, partialPath: partial, completePath: path(id, Self.completeSuffix), descriptor: descriptor)
    }

    /// Removes upload `id`'s complete file.
    public func remove(id: String) throws(SystemError) {
        try Posix.unlink(path(id, Self.completeSuffix))
    }

    /// The names of the files in the spool (partial and complete).
    public func contents() throws(SystemError) -> [String] {
        try Posix.listDirectory(directory)
    }

    private func path(_ id: String, _ suffix: String) -> String {
        "\(directory)/\(id)\(suffix)"
    }
}

/// One upload's file while it is being written. Used by one thread at a time.
public final class SpoolFile: @unchecked Sendable {
    public let id: String
    /// Where the complete file lives after ``commit()``.
    public let completePath: String
    /// The open descriptor, for writing body bytes.
    public let descriptor: Int32
    private let partialPath: String
    private var isOpen = true

    init(id: String, partialPath: String, completePath: String, descriptor: Int32) {
        self.id = id
        self.partialPath = partialPath
        self.completePath = completePath
        self.descriptor = descriptor
    }

    /// Makes the file durable and complete: sync its data, close it, give it its final name.
    ///
    /// Blocking (fsync): never call on an event-loop thread.
    public func commit() throws(SystemError) {
        isOpen = false
        do {
            try Posix.fsync(descriptor)
        } catch {
            Posix.close(descriptor)
            try? Posix.unlink(partialPath)
            throw error
        }
        Posix.close(descriptor)
        try Posix.rename(partialPath, completePath)
    }

    /// Closes and deletes the partial file (the upload was rejected or aborted).
    public func discard() {
        if isOpen {
            isOpen = false
            Posix.close(descriptor)
        }
        try? Posix.unlink(partialPath)
    }
}
