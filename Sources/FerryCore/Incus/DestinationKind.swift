/// What a destination path is inside an instance, as ``IncusFileInspector`` found it.
///
/// `incus file push` can only replace what is missing or a regular file (a directory gets
/// the source's base name appended); onto a FIFO it hangs, onto a device it writes into it.
public enum DestinationKind: Sendable, Equatable {
    case missing
    case regularFile
    case directory
    /// Anything else, named for a reader: "FIFO", "socket", "character device",
    /// "block device", "symlink" (seen only without following symlinks).
    case other(String)
    /// A parent of the path exists but is not a directory, so nothing can be created there.
    case notADirectoryOnTheWay

    /// The kind that the file type bits (`S_IFMT`) of `mode` name.
    init(mode: UInt32) {
        switch mode & 0o170000 {
        case 0o100000: self = .regularFile
        case 0o040000: self = .directory
        case 0o010000: self = .other("FIFO")
        case 0o140000: self = .other("socket")
        case 0o020000: self = .other("character device")
        case 0o060000: self = .other("block device")
        case 0o120000: self = .other("symlink")
        default: self = .other("file type 0o\(String(mode & 0o170000, radix: 8))")
        }
    }
}
