import CSystem
import Glibc

/// System calls wrapped once: `EINTR` retried, `errno` turned into ``SystemError``.
enum Posix {
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws(SystemError) -> Int32 {
        while true {
            let descriptor = Glibc.open(path, flags | O_CLOEXEC, mode)
            if descriptor >= 0 { return descriptor }
            if errno != EINTR { throw SystemError(call: "open \(path)", errno: errno) }
        }
    }

    static func fsync(_ descriptor: Int32) throws(SystemError) {
        while Glibc.fsync(descriptor) != 0 {
            if errno != EINTR { throw SystemError(call: "fsync", errno: errno) }
        }
    }

    static func fdatasync(_ descriptor: Int32) throws(SystemError) {
        while Glibc.fdatasync(descriptor) != 0 {
            if errno != EINTR { throw SystemError(call: "fdatasync", errno: errno) }
        }
    }

    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.write(descriptor, $0.baseAddress, $0.count)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "write", errno: errno)
            }
            offset += written
        }
    }

    /// Sets extended attribute `name` of the open file `descriptor`.
    static func setAttribute(_ descriptor: Int32, _ name: String, _ value: [UInt8]) throws(SystemError) {
        if value.withUnsafeBytes({ fsetxattr(descriptor, name, $0.baseAddress, $0.count, 0) }) != 0 {
            throw SystemError(call: "fsetxattr \(name)", errno: errno)
        }
    }

    /// Sets extended attribute `name` of the file at `path`.
    static func setAttribute(_ path: String, _ name: String, _ value: [UInt8]) throws(SystemError) {
        if value.withUnsafeBytes({ setxattr(path, name, $0.baseAddress, $0.count, 0) }) != 0 {
            throw SystemError(call: "setxattr \(path)", errno: errno)
        }
    }

    /// Removes extended attribute `name` of the file at `path`; having none is fine.
    static func removeAttribute(_ path: String, _ name: String) throws(SystemError) {
        if removexattr(path, name) != 0 && errno != ENODATA {
            throw SystemError(call: "removexattr \(path)", errno: errno)
        }
    }

    /// Extended attribute `name` of the file at `path`; nil if it has none.
    static func attribute(_ path: String, _ name: String) -> [UInt8]? {
        var value = [UInt8](repeating: 0, count: 64 * 1024)
        let count = value.withUnsafeMutableBytes { getxattr(path, name, $0.baseAddress, $0.count) }
        return count < 0 ? nil : Array(value[..<count])
    }

    static func close(_ descriptor: Int32) {
        _ = Glibc.close(descriptor)
    }

    static func rename(_ from: String, _ to: String) throws(SystemError) {
        if Glibc.rename(from, to) != 0 { throw SystemError(call: "rename \(from)", errno: errno) }
    }

    static func unlink(_ path: String) throws(SystemError) {
        if Glibc.unlink(path) != 0 && errno != ENOENT {
            throw SystemError(call: "unlink \(path)", errno: errno)
        }
    }

    static func mkdir(_ path: String, _ mode: mode_t) throws(SystemError) {
        if Glibc.mkdir(path, mode) != 0 && errno != EEXIST {
            throw SystemError(call: "mkdir \(path)", errno: errno)
        }
    }

    /// Creates `path` and any missing parents (parents 0755, `path` itself `mode`).
    static func makeDirectories(_ path: String, _ mode: mode_t) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for segment in path.split(separator: "/").dropLast() {
            prefix += "/" + segment
            try mkdir(prefix, 0o755)
        }
        try mkdir(path, mode)
    }

    /// The names in directory `path`, without `.` and `..`.
    static func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let directory = opendir(path) else {
            throw SystemError(call: "opendir \(path)", errno: errno)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
