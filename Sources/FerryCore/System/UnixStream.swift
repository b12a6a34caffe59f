import Glibc

/// A connected `AF_UNIX` stream socket whose every call ends by one deadline, so a peer
/// that stops answering cannot hold the caller longer than it allowed.
///
/// Non-copyable: the socket is closed exactly once, when the value goes away, whichever
/// path the caller leaves by.
struct UnixStream: ~Copyable {
    enum Failure: Error, Equatable {
        case system(SystemError)
        /// The deadline passed before the call could finish.
        case timedOut
        /// The peer closed the connection.
        case closed
    }

    private let descriptor: Int32
    /// Seconds on the ``Monotonic`` clock after which every call fails with `timedOut`.
    let deadline: Double
    /// The process at the other end of a socket pair, stopped with the stream.
    private let child: pid_t?

    /// Takes `descriptor` (a non-blocking stream socket) and, if given, the `child` process
    /// at its other end (see ``ChildProcess/spawnConnected(_:arguments:)``).
    init(adopting descriptor: Int32, child: pid_t?, deadline: Double) {
        self.descriptor = descriptor
        self.child = child
        self.deadline = deadline
    }

    /// Connects to the socket at `path`.
    ///
    /// - Throws: `system` when there is no such socket or it refuses; `timedOut` when its
    ///   listen queue stays full until `deadline`.
    init(connectingTo path: String, deadline: Double) throws(Failure) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw .system(SystemError(call: "connect \(path)", errno: ENAMETOOLONG))
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        // Non-blocking, so that no read, write or connect can wait past the deadline.
        let kind = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let descriptor = socket(AF_UNIX, kind, 0)
        guard descriptor >= 0 else { throw .system(SystemError(call: "socket", errno: errno)) }
        do throws(Failure) {
            try Self.connect(descriptor, to: &address, path: path, deadline: deadline)
        } catch {
            Posix.close(descriptor)
            throw error
        }
        self.descriptor = descriptor
        self.deadline = deadline
        self.child = nil
    }

    private static func connect(
        _ descriptor: Int32, to address: inout sockaddr_un, path: String, deadline: Double
    ) throws(Failure) {
        while true {
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if result == 0 { return }
            switch errno {
            case EISCONN:
                return
            case EINTR:
                continue
            case EAGAIN:
                // A full listen queue: a non-blocking unix socket does not queue the
                // attempt (and poll cannot tell when there is room), so pause and retry.
                if Monotonic.seconds() >= deadline { throw .timedOut }
                usleep(2000)
            default:
                throw .system(SystemError(call: "connect \(path)", errno: errno))
            }
        }
    }

    deinit {
        Posix.close(descriptor)
        if let child { ChildProcess.stop(child) }
    }

    /// Writes all of `bytes`.
    func send(_ bytes: [UInt8]) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            // MSG_NOSIGNAL: a peer that went away is an error here, not a SIGPIPE.
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent >= 0 {
                offset += sent
            } else if errno == EAGAIN {
                try wait(for: Int16(POLLOUT))
            } else if errno != EINTR {
                throw .system(SystemError(call: "send", errno: errno))
            }
        }
    }

    /// Appends what the peer sent next (at least one byte) to `buffer`.
    func receive(into buffer: inout [UInt8]) throws(Failure) {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer += chunk[..<count]
                return
            }
            if count == 0 { throw .closed }
            if errno == EAGAIN {
                try wait(for: Int16(POLLIN))
            } else if errno != EINTR {
                throw .system(SystemError(call: "recv", errno: errno))
            }
        }
    }

    /// Waits until the socket is ready for `events`, never past the deadline.
    private func wait(for events: Int16) throws(Failure) {
        let remaining = deadline - Monotonic.seconds()
        if remaining <= 0 { throw .timedOut }
        var entry = pollfd(fd: descriptor, events: events, revents: 0)
        let milliseconds = Int32(min(remaining, 60) * 1000) + 1
        if poll(&entry, 1, milliseconds) < 0 && errno != EINTR {
            throw .system(SystemError(call: "poll", errno: errno))
        }
    }
}
