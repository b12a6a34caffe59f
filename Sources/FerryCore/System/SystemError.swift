import Glibc

/// A failed system call: its name and `errno`.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public var call: String
    public var errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// Whether the failure means the file system is full.
    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}
