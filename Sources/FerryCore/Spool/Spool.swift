import CSystem
import Foundation
import Glibc
import Synchronization

/// The directory where accepted uploads live until they are delivered (and, for a failed
/// one, until someone retries or deletes it).
///
/// Per task `ID`: `ID.data` (the bytes, written as they arrive) and the task's
/// ``TaskRecord``. While the task holds its bytes, the record is the data file's extended
/// attribute `user.ferry.record`; once delivered (bytes gone), it is `ID.json`. Setting the
/// attribute is the commit: bytes without a record were never acknowledged.
///
/// Why an attribute: creating files is what bounds small uploads (ext4's inode allocation
/// and the directory's lock), and a record file doubled the files per upload. On a file
/// system without user attributes every record is `ID.json`, replaced whole (write
/// `ID.json.tmp`, rename), and that rename is the commit.
/// Names are generated here only; files are 0600, created with `O_EXCL|O_NOFOLLOW`.
public final class Spool: Sendable {
    public let directory: String
    static let partialSuffix = ".part"
    static let dataSuffix = ".data"
    static let recordSuffix = ".json"
    static let temporarySuffix = ".tmp"
    static let recordAttribute = "user.ferry.record"
    /// Whether records of tasks that hold bytes live in their data file's attribute.
    public let recordsInAttributes: Bool
    /// Bytes announced by uploads in progress and not written yet: free space already
    /// promised, which the next upload must not count on.
    private let promised = Mutex<UInt64>(0)

    /// Opens the spool directory, creating it (0700) and its parents if needed.
    ///
    /// - Throws: ``SystemError`` when the directory cannot be made.
    public init(directory: String) throws(SystemError) {
        let trimmed =
            directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        self.directory = trimmed
        try Posix.makeDirectories(trimmed, 0o700)
        recordsInAttributes = Self.supportsAttributes(trimmed)
    }

    /// Whether the file system takes user attributes (ext4, xfs, btrfs, tmpfs since 6.6).
    private static func supportsAttributes(_ directory: String) -> Bool {
        let probe = "user.ferry.probe"
        guard (try? Posix.setAttribute(directory, probe, [1])) != nil else { return false }
        removexattr(directory, probe)
        return true
    }

    /// Creates the file that will receive upload `id`'s body.
    public func create(id: String) throws(SystemError) -> SpoolFile {
        let data = path(id, Self.dataSuffix)
        let descriptor = try Posix.open(data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        return SpoolFile(id: id, path: data, descriptor: descriptor)
    }

    /// Where task `id`'s bytes are once accepted.
    public func dataPath(id: String) -> String {
        path(id, Self.dataSuffix)
    }

    /// Makes `file` (its body complete) task `record.id` with `record`: after this, recovery
    /// takes it up. With `durable`, bytes and record are synced; the directory is synced by
    /// the caller (see ``GroupCommitter``).
    public func commit(_ file: SpoolFile, record: TaskRecord, durable: Bool) throws(SystemError) {
        guard recordsInAttributes else {
            if durable { try Posix.fdatasync(file.descriptor) }
            file.close()
            try writeRecord(record, durable: durable)
            return
        }
        do {
            try Posix.setAttribute(file.descriptor, Self.recordAttribute, Self.encode(record))
        } catch  where Self.isTooLargeForAnAttribute(error) {
            // A record past the file system's attribute size (ext4: about 4 KiB, reached
            // by a long destination): this task keeps its record in ID.json instead.
            if durable { try Posix.fdatasync(file.descriptor) }
            file.close()
            try writeRecordFile(record, durable: durable)
            return
        }
        // fsync, not fdatasync: the attribute is metadata.
        if durable { try Posix.fsync(file.descriptor) }
        file.close()
    }

    /// Whether `error` from setting an attribute means the value does not fit one (as
    /// opposed to a full disk, which the record file would not fix either).
    private static func isTooLargeForAnAttribute(_ error: SystemError) -> Bool {
        error.errno == E2BIG || error.errno == ERANGE || error.errno == ENOSPC
    }

    /// Replaces task `id`'s record: the attribute of its bytes while it has them, else
    /// `ID.json`. With `durable`, the record is synced; the directory is the caller's.
    public func writeRecord(_ record: TaskRecord, durable: Bool) throws(SystemError) {
        if recordsInAttributes && record.state != .delivered {
            let data = dataPath(id: record.id)
            do {
                try Posix.setAttribute(data, Self.recordAttribute, Self.encode(record))
            } catch  where Self.isTooLargeForAnAttribute(error) {
                // The file is the record from now on; an older attribute must not win at
                // recovery.
                try writeRecordFile(record, durable: durable)
                try Posix.removeAttribute(data, Self.recordAttribute)
                return
            }
            if durable {
                let descriptor = try Posix.open(data, O_RDONLY | O_NOFOLLOW)
                defer { Posix.close(descriptor) }
                try Posix.fsync(descriptor)
            }
            return
        }
        try writeRecordFile(record, durable: durable)
    }

    private func writeRecordFile(_ record: TaskRecord, durable: Bool) throws(SystemError) {
        let temporary = path(record.id, Self.recordSuffix + Self.temporarySuffix)
        let descriptor = try Posix.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o600)
        do {
            try Posix.writeAll(descriptor, Self.encode(record))
            if durable { try Posix.fdatasync(descriptor) }
        } catch {
            Posix.close(descriptor)
            try? Posix.unlink(temporary)
            throw error
        }
        Posix.close(descriptor)
        try Posix.rename(temporary, path(record.id, Self.recordSuffix))
    }

    /// Removes task `id`'s bytes (its record stays).
    public func removeData(id: String) throws(SystemError) {
        try Posix.unlink(path(id, Self.dataSuffix))
    }

    /// Removes task `id` entirely: bytes and record.
    public func removeTask(id: String) throws(SystemError) {
        try Posix.unlink(path(id, Self.dataSuffix))
        try Posix.unlink(path(id, Self.recordSuffix))
    }

    /// Makes renames and unlinks in the spool durable.
    public func syncDirectory() throws(SystemError) {
        let descriptor = try Posix.open(directory, O_RDONLY | O_DIRECTORY)
        defer { Posix.close(descriptor) }
        try Posix.fsync(descriptor)
    }

    /// Reads what a previous process left: every task record, in acceptance order.
    ///
    /// Deletes what was never acknowledged: bytes without a record (a body still arriving,
    /// or a commit that did not finish) and half-written records. An unfinished record
    /// whose bytes are missing cannot be delivered and is dropped.
    public func recover() throws(SystemError) -> SpoolRecovery {
        var recovery = SpoolRecovery()
        let names = try Posix.listDirectory(directory)
        var dataIDs = Set<String>()
        var recordIDs: [String] = []
        for name in names {
            if name.hasSuffix(Self.partialSuffix) {
                // A body still arriving, in the layout of Ferry 0.5 and earlier.
                try Posix.unlink("\(directory)/\(name)")
                recovery.partialsRemoved += 1
            } else if name.hasSuffix(Self.temporarySuffix) {
                try Posix.unlink("\(directory)/\(name)")
                recovery.temporariesRemoved += 1
            } else if name.hasSuffix(Self.batchSuffix) {
                // Links staged for a push that never finished; the bytes have their own name.
                Self.removeTree("\(directory)/\(name)")
                recovery.temporariesRemoved += 1
            } else if name.hasSuffix(Self.dataSuffix) {
                dataIDs.insert(String(name.dropLast(Self.dataSuffix.count)))
            } else if name.hasSuffix(Self.recordSuffix) {
                recordIDs.append(String(name.dropLast(Self.recordSuffix.count)))
            }
        }
        let decoder = JSONDecoder()
        var files: [String: TaskRecord] = [:]
        for id in recordIDs {
            guard let data = FileManager.default.contents(atPath: path(id, Self.recordSuffix)),
                let record = try? decoder.decode(TaskRecord.self, from: data), record.id == id
            else {
                recovery.unreadable.append(id)
                // Its bytes stay for a person to look at, unless their attribute says more.
                if dataIDs.contains(id) && attributeRecord(id, decoder) == nil { dataIDs.remove(id) }
                continue
            }
            files[id] = record
        }
        for id in dataIDs {
            let file = files.removeValue(forKey: id)
            if let file, file.state == .delivered {
                // Delivered, but the process died before it removed the bytes.
                try Posix.unlink(path(id, Self.dataSuffix))
                recovery.records.append(file)
            } else if var record = attributeRecord(id, decoder) ?? file {
                if record.state != .delivered, let size = Self.size(of: path(id, Self.dataSuffix)),
                    size != record.bytes
                {
                    // The bytes on disk are not the bytes accepted (a damaged disk, a hand
                    // that touched the spool): pushing them would deliver the wrong file.
                    // A dead letter, its bytes kept for a person to look at.
                    record.state = .failed
                    record.lastError =
                        "the spool file holds \(size) bytes, the upload had \(record.bytes); not delivered"
                    try? writeRecord(record, durable: false)
                    recovery.damaged.append(id)
                }
                recovery.records.append(record)
            } else {
                try Posix.unlink(path(id, Self.dataSuffix))
                recovery.partialsRemoved += 1
            }
        }
        for (id, record) in files {
            if record.state == .delivered {
                recovery.records.append(record)
            } else {
                // Unfinished (or failed), and its bytes are gone: it cannot be delivered.
                try Posix.unlink(path(id, Self.recordSuffix))
                recovery.lost.append(id)
            }
        }
        recovery.records.sort { $0.sequence < $1.sequence }
        return recovery
    }

    /// The record in task `id`'s data attribute, if it has a readable one.
    private func attributeRecord(_ id: String, _ decoder: JSONDecoder) -> TaskRecord? {
        guard let bytes = Posix.attribute(path(id, Self.dataSuffix), Self.recordAttribute),
            let record = try? decoder.decode(TaskRecord.self, from: Data(bytes)), record.id == id
        else { return nil }
        return record
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

    static func encode(_ record: TaskRecord) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(record)) ?? Data())
    }
}

/// What ``Spool/recover()`` found.
public struct SpoolRecovery: Sendable {
    /// Records to carry on with, in acceptance order.
    public var records: [TaskRecord] = []
    /// Bytes without a record deleted: bodies still arriving, or commits that did not
    /// finish (never acknowledged either way).
    public var partialsRemoved = 0
    /// Half-written record files deleted (a record change the process did not finish).
    public var temporariesRemoved = 0
    /// Records that could not be read (left in place for a person to look at).
    public var unreadable: [String] = []
    /// Unfinished records whose bytes were gone (deleted).
    public var lost: [String] = []
    /// Unfinished tasks whose data file's size is not the size accepted: made dead letters.
    public var damaged: [String] = []
}

/// One upload's file while its body is being written. Used by one thread at a time.
public final class SpoolFile: @unchecked Sendable {
    public let id: String
    /// The open descriptor, for writing body bytes.
    public let descriptor: Int32
    /// Where the bytes go (`ID.data`); without a record next to it, it is a partial.
    let path: String
    private var isOpen = true

    init(id: String, path: String, descriptor: Int32) {
        self.id = id
        self.path = path
        self.descriptor = descriptor
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
        try? Posix.unlink(path)
    }
}
