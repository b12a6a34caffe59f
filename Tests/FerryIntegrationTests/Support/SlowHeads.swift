import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An attacker that holds connections with request heads that never end: each socket sends
/// the start of a head and then one byte per round. When the server closes one, its lifetime
/// is recorded and, if asked, a new one takes its place, so the attack keeps its numbers up.
final class SlowHeads: @unchecked Sendable {
    private let port: UInt16
    private let source: String
    private let reconnect: Bool
    private let state = Mutex(State())
    private let stopping = Atomic(false)
    private let finished = DispatchSemaphore(value: 0)

    private struct State {
        var sockets: [(descriptor: Int32, opened: Double)] = []
        /// Seconds each socket lived before the server closed it.
        var lifetimes: [Double] = []
        var refusedAtOnce = 0
    }

    /// Opens `count` sockets from `source` (a loopback address) and starts trickling.
    init(count: Int, port: UInt16, source: String = "127.0.0.1", reconnect: Bool, interval: Double = 0.5) {
        self.port = port
        self.source = source
        self.reconnect = reconnect
        for _ in 0..<count { open() }
        Thread {
            while !self.stopping.load(ordering: .relaxed) {
                self.round()
                usleep(UInt32(interval * 1_000_000))
            }
            self.finished.signal()
        }.start()
    }

    /// Closes every socket the attacker still holds.
    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        finished.wait()
        state.withLock { state in
            for socket in state.sockets { close(socket.descriptor) }
            state.sockets = []
        }
    }

    deinit { stop() }

    /// Sockets open now, lifetimes of those the server closed, and how many were closed
    /// before any byte could be sent.
    var snapshot: (open: Int, lifetimes: [Double], refusedAtOnce: Int) {
        state.withLock { ($0.sockets.count, $0.lifetimes, $0.refusedAtOnce) }
    }

    private func open() {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = port.bigEndian
        remote.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &local) { local in
            withUnsafePointer(to: &remote) { remote in
                local.withMemoryRebound(to: sockaddr.self, capacity: 1) { local in
                    remote.withMemoryRebound(to: sockaddr.self, capacity: 1) { remote in
                        bind(descriptor, local, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                            && connect(descriptor, remote, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                    }
                }
            }
        }
        let head = Array("GET /healthz HTTP/1.1\r\n".utf8)
        guard connected, Glibc.send(descriptor, head, head.count, Int32(MSG_NOSIGNAL)) == head.count else {
            close(descriptor)
            state.withLock { $0.refusedAtOnce += 1 }
            return
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        state.withLock { $0.sockets.append((descriptor, Self.now())) }
    }

    /// One byte on every socket; sockets the server closed are counted and replaced.
    private func round() {
        let sockets = state.withLock { $0.sockets }
        var closed: [(Int32, Double)] = []
        for (descriptor, opened) in sockets {
            var byte: UInt8 = 0
            let read = recv(descriptor, &byte, 1, 0)
            let gone = read == 0 || (read < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            if gone || Glibc.send(descriptor, "X", 1, Int32(MSG_NOSIGNAL)) != 1 {
                closed.append((descriptor, opened))
            }
        }
        guard !closed.isEmpty else { return }
        let now = Self.now()
        state.withLock { state in
            let gone = Set(closed.map(\.0))
            state.sockets.removeAll { gone.contains($0.descriptor) }
            state.lifetimes += closed.map { now - $0.1 }
        }
        for (descriptor, _) in closed { close(descriptor) }
        if reconnect && !stopping.load(ordering: .relaxed) {
            for _ in closed { open() }
        }
    }

    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
