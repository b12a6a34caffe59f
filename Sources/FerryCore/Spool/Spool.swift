import CSystem
import Foundation
import Glibc
import Synchronization

/// The directory where accepted uploads' bytes live until they are delivered (and, for a
/// failed one, until someone retries or deletes it): one `ID.data` per task that holds
/// bytes. Everything else known of a task is in the ``TaskStore`` (`tasks.db` here too).
///
/// A data file without a task in the store was never acknowledged: a body still arriving,
/// or a commit that did not finish. Names are generated here only; files are 0600,
/// created with `O_EXCL|O_NOFOLLOW`.
public final class Spool: Sendable {
    public let directory: String
    static let partialSuffix = ".part"
    static let dataSuffix = ".data"
    static let temporarySuffix = ".tmp"
    static let spareSuffix = ".spare"
    /// Emptied data files kept for the next uploads (see ``create(id:)``).
    public static let maxSpares = 64
    /// Bytes announced by uploads in progress and not written yet: free space already
    /// promised, which the next upload must not count on.
    private let promised = Mutex<UInt64>(0)
    /// Paths of emptied data files waiting to be given to a new upload.
    private let spares = Mutex<[String]>([])
    /// Whether new files are made with `O_TMPFILE` (see ``create(id:)``): tried at open.
    private let unnamedFiles = Atomic(false)

    /// Opens the spool directory, creating it (0700) and its parents if needed.
    ///
    /// - Throws: ``SystemError`` when the directory cannot be made.
    public init(directory: String) throws(SystemError) {
        let trimmed =
            directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        self.directory = trimmed
        try Posix.makeDirectories(trimmed, 0o700)
        unnamedFiles.store(canNameUnnamedFiles(), ordering: .relaxed)
    }

    /// Whether this spool can make an `O_TMPFILE` file and name it later: the file system
    /// must support it and `/proc` must be there for `linkat`. Tried once, on a probe file
    /// (a `.tmp`, which recovery removes should the process die right here).
    private func canNameUnnamedFiles() -> Bool {
        guard let descriptor = try? openUnnamed() else { return false }
        let probe = SpoolFile(
            id: "probe", path: path(TaskID.make(), Self.temporarySuffix), descriptor: descriptor, named: false
        )
        defer { probe.discard() }
        return (try? probe.giveName()) != nil
    }

    /// Where the task store lives: beside the bytes, on the same file system.
    public var storePath: String {
        "\(directory)/\(SQLiteTaskStore.fileName)"
    }

    /// Creates the file that will receive upload `id`'s body: a spare one renamed, if
    /// there is one, else a new one with no name until ``finish(_:durable:)``.
    ///
    /// Why spares: allocating an inode is what bounds small uploads while others are
    /// being delivered. ext4 without a journal looks past every inode freed in the last
    /// 60 s (300 s while its inode table block is dirty) on each allocation (`recently_deleted`, the top of a profile of
    /// accept-and-deliver), and any ext4 takes its inode bitmap's lock. A rename of an
    /// emptied file allocates nothing; it never replaces a file (`RENAME_NOREPLACE`).
    ///
    /// Why no name: a file created by name is allocated while its directory is locked, so
    /// the event loops creating files in the spool at once spun on that lock (18 % of a
    /// profile of small ingest, `rwsem_spin_on_owner`). An `O_TMPFILE` file is allocated
    /// without the directory's lock; the name, given at commit, is a short link. And a
    /// body that never completes leaves nothing to clean up, even after `kill -9`.
    public func create(id: String) throws(SystemError) -> SpoolFile {
        let data = path(id, Self.dataSuffix)
        if let spare = spares.withLock({ $0.popLast() }) {
            // Empty already (see removeData): no O_TRUNC, which would make ext4 flush the
            // file's pages at its close (auto_da_alloc) on the committer's thread.
            if renameat2(AT_FDCWD, spare, AT_FDCWD, data, UInt32(CSYSTEM_RENAME_NOREPLACE)) == 0,
                let descriptor = try? Posix.open(data, O_WRONLY | O_NOFOLLOW)
            {
                return SpoolFile(id: id, path: data, descriptor: descriptor, named: true)
            }
            try? Posix.unlink(spare)
        }
        if unnamedFiles.load(ordering: .relaxed) {
            return SpoolFile(id: id, path: data, descriptor: try openUnnamed(), named: false)
        }
        // A file system without O_TMPFILE, or no /proc to name such files through.
        let descriptor = try Posix.open(data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        return SpoolFile(id: id, path: data, descriptor: descriptor, named: true)
    }

    /// A new file in the spool with no name yet, open for writing.
    private func openUnnamed() throws(SystemError) -> Int32 {
        try Posix.open(directory, CSYSTEM_O_TMPFILE | O_WRONLY, 0o600)
    }

    /// Creates the named file of a tus upload (it must outlive the process: an upload in
    /// progress is resumed after a restart), open for writing.
    public func createResumable(id: String) throws(SystemError) -> Int32 {
        try Posix.open(dataPath(id: id), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
    }

    /// Opens a tus upload's file for writing at `offset`; bytes past it (written by a
    /// request whose end was not stored) are cut off.
    public func openResumable(id: String, at offset: UInt64) throws(SystemError) -> Int32 {
        let descriptor = try Posix.open(dataPath(id: id), O_WRONLY | O_NOFOLLOW)
        guard ftruncate(descriptor, off_t(offset)) == 0, lseek(descriptor, off_t(offset), SEEK_SET) >= 0
        else {
            let error = SystemError(call: "ftruncate \(dataPath(id: id))", errno: errno)
            Posix.close(descriptor)
            throw error
        }
        return descriptor
    }

    /// Syncs task `id`'s bytes (a tus upload's, between requests: any descriptor of the
    /// file syncs all of it).
    public func syncData(id: String) throws(SystemError) {
        let descriptor = try Posix.open(dataPath(id: id), O_WRONLY | O_NOFOLLOW)
        defer { Posix.close(descriptor) }
        try Posix.fdatasync(descriptor)
    }

    /// Removes task `id`'s bytes where a store transaction needs to know whether they are
    /// gone: true when they are (or never were), else false with the failure in `failure`.
    public func removeData(id: String, failure: inout SystemError?) -> Bool {
        do throws(SystemError) {
            try removeData(id: id)
            return true
        } catch  where error.errno == ENOENT {
            return true
        } catch {
            failure = error
            return false
        }
    }

    /// The digests of task `id`'s bytes, read from its file (for a resumed upload whose
    /// hash was lost with the process that had it).
    public func digests(id: String, _ algorithms: Set<DigestAlgorithm>) throws(SystemError)
        -> [DigestAlgorithm: [UInt8]]
    {
        let descriptor = try Posix.open(dataPath(id: id), O_RDONLY | O_NOFOLLOW)
        defer { Posix.close(descriptor) }
        var digests = algorithms.map(RunningDigest.init)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "read \(dataPath(id: id))", errno: errno)
            }
            if count == 0 { break }
            for index in digests.indices {
                digests[index].update(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            }
        }
        return digests.finalized
    }

    /// Where task `id`'s bytes are once accepted.
    public func dataPath(id: String) -> String {
        path(id, Self.dataSuffix)
    }

    /// Closes `file`, its body complete; with `durable`, its bytes are synced first (the
    /// directory entry is the caller's: see ``GroupCommitter``).
    public func finish(_ file: SpoolFile, durable: Bool) throws(SystemError) {
        defer { file.close() }
        if !file.named {
            try file.giveName()
            // The link changed the inode (its link count) after the body: a full fsync
            // writes the inode with it, where fdatasync might leave the count behind.
            if durable { try Posix.fsync(file.descriptor) }
        } else if durable {
            try Posix.fdatasync(file.descriptor)
        }
    }

    /// Removes task `id`'s bytes: its file is emptied and kept as a spare while there are
    /// fewer than ``maxSpares``, else deleted.
    public func removeData(id: String) throws(SystemError) {
        let data = path(id, Self.dataSuffix)
        let keep = spares.withLock { $0.count < Self.maxSpares }
        if keep {
            // Emptied first: the bytes of a delivered file do not linger under another name.
            // Truncated through a descriptor closed at once: the close takes ext4's "flush
            // at close" mark of a file cut to zero while there is nothing to flush.
            let descriptor = Glibc.open(data, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)
            if descriptor >= 0 {
                Glibc.close(descriptor)
                let spare = path(TaskID.make(), Self.spareSuffix)
                if renameat2(AT_FDCWD, data, AT_FDCWD, spare, UInt32(CSYSTEM_RENAME_NOREPLACE)) == 0 {
                    spares.withLock { $0.append(spare) }
                    return
                }
            } else if errno == ENOENT {
                return
            }
        }
        try Posix.unlink(data)
    }

    /// Makes renames and unlinks in the spool durable.
    public func syncDirectory() throws(SystemError) {
        let descriptor = try Posix.open(directory, O_RDONLY | O_DIRECTORY)
        defer { Posix.close(descriptor) }
        try Posix.fsync(descriptor)
    }

    /// Clears what a previous process left half-done (temporary files, staged batches,
    /// partials of Ferry 0.5 and earlier) and names the data files, with their sizes.
    public func scan() throws(SystemError) -> SpoolScan {
        var scan = SpoolScan()
        for name in try Posix.listDirectory(directory) {
            if name.hasSuffix(Self.partialSuffix) {
                try Posix.unlink("\(directory)/\(name)")
                scan.partialsRemoved += 1
            } else if name.hasSuffix(Self.temporarySuffix) || name.hasSuffix(Self.spareSuffix) {
                try Posix.unlink("\(directory)/\(name)")
                scan.temporariesRemoved += 1
            } else if name.hasSuffix(Self.batchSuffix) {
                // Links staged for a push that never finished; the bytes have their own name.
                Self.removeTree("\(directory)/\(name)")
                scan.temporariesRemoved += 1
            } else if name.hasSuffix(Self.dataSuffix) {
                let id = String(name.dropLast(Self.dataSuffix.count))
                scan.dataFiles[id] = Self.size(of: "\(directory)/\(name)")
            }
        }
        return scan
    }

    /// Bytes that unprivileged writers can still use on the spool's file system.
    public func availableBytes() throws(SystemError) -> UInt64 {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else {
            throw SystemError(call: "statvfs \(directory)", errno: errno)
        }
        return UInt64(info.f_bavail) * UInt64(info.f_frsize)
    }

    /// Promises `bytes` of the free space to an upload, unless that would leave less than
    /// `reserve` free after every promise so far is kept.
    ///
    /// - Returns: nil when promised, else the free and promised bytes that refused it.
    public func promise(_ bytes: UInt64, keeping reserve: UInt64) throws(SystemError) -> (
        available: UInt64, promised: UInt64
    )? {
        let available = try availableBytes()
        return promised.withLock { promised in
            let unpromised = available > promised ? available - promised : 0
            guard unpromised >= bytes, unpromised - bytes >= reserve else { return (available, promised) }
            promised += bytes
            return nil
        }
    }

    /// Free bytes not promised to uploads in progress.
    public func unpromisedBytes() throws(SystemError) -> UInt64 {
        let available = try availableBytes()
        let promised = promised.withLock { $0 }
        return available > promised ? available - promised : 0
    }

    /// Why writing `count` bytes that no promise covers would eat into `reserve`, or nil
    /// when they fit (or the free space cannot be read: the write itself will tell).
    public func refusalOfUnpromised(_ count: UInt64, keeping reserve: UInt64) -> String? {
        guard let available = try? unpromisedBytes(), available < count || available - count < reserve else {
            return nil
        }
        return "\(available) bytes free and not promised to other uploads, \(reserve) kept in reserve"
    }

    /// Part of a promise is kept (the bytes were written) or given up (the upload ended).
    public func settle(_ bytes: UInt64) {
        promised.withLock { $0 -= min($0, bytes) }
    }

    /// The size of the file at `path`, if it can be read.
    private static func size(of path: String) -> UInt64? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return UInt64(status.st_size)
    }

    /// The names in the spool directory.
    public func contents() throws(SystemError) -> [String] {
        try Posix.listDirectory(directory)
    }

    func path(_ id: String, _ suffix: String) -> String {
        "\(directory)/\(id)\(suffix)"
    }
}

/// What ``Spool/scan()`` found.
public struct SpoolScan: Sendable {
    /// Data files by task id, with their sizes (nil when it could not be read).
    public var dataFiles: [String: UInt64?] = [:]
    /// Partials of Ferry 0.5 and earlier deleted (never acknowledged).
    public var partialsRemoved = 0
    /// Half-written temporary files and staged batches deleted.
    public var temporariesRemoved = 0
}

/// One upload's file while its body is being written. Used by one thread at a time.
public final class SpoolFile: @unchecked Sendable {
    public let id: String
    /// The open descriptor, for writing body bytes.
    public let descriptor: Int32
    /// Where the bytes go (`ID.data`); without a record next to it, it is a partial.
    let path: String
    private var isOpen = true
    /// Bytes written so far.
    private var written: Int64 = 0
    /// Where the write-back not yet started begins.
    private var writeBackFrom: Int64 = 0

    /// Written bytes whose write-back is started at once when a synced commit will follow.
    /// Without it the disk starts late (after about 30 s or at the kernel's dirty limits),
    /// and the commit's fdatasync of a 1 GiB body waited for all of it at the end.
    static let writeBackStep: Int64 = 8 << 20

    /// Whether the file has its name (`path`) yet; an unnamed one gets it at commit.
    private(set) var named: Bool

    init(id: String, path: String, descriptor: Int32, named: Bool) {
        self.id = id
        self.path = path
        self.descriptor = descriptor
        self.named = named
    }

    /// Links the unnamed file at its path (`/proc/self/fd` names the open file: linkat with
    /// `AT_EMPTY_PATH` would need CAP_DAC_READ_SEARCH).
    func giveName() throws(SystemError) {
        guard linkat(AT_FDCWD, "/proc/self/fd/\(descriptor)", AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 else {
            throw SystemError(call: "linkat \(path)", errno: errno)
        }
        named = true
    }

    /// Counts `count` more bytes written. With `durable` (the commit will sync), every
    /// whole ``writeBackStep`` of them is handed to the disk now (`sync_file_range`, which
    /// starts the write-back and does not wait for it): the sync at the end waits for the
    /// last piece, not the whole body.
    func wrote(_ count: Int, durable: Bool) {
        written += Int64(count)
        guard durable, written - writeBackFrom >= Self.writeBackStep else { return }
        // A failure here costs only the overlap: the commit's fdatasync still syncs it all.
        _ = sync_file_range(
            descriptor, writeBackFrom, written - writeBackFrom, UInt32(CSYSTEM_SYNC_FILE_RANGE_WRITE))
        writeBackFrom = written
    }

    /// Closes the descriptor (after its data was synced, or when discarding).
    func close() {
        if isOpen {
            isOpen = false
            Posix.close(descriptor)
        }
    }

    /// Closes and deletes the partial file (the upload was rejected or aborted).
    public func discard() {
        close()
        if named { try? Posix.unlink(path) }
    }
}
