import CLibEvent
import Glibc
import Synchronization

/// Closes a connection whose request body was left unread without losing our answer.
///
/// After an answer decided from the head, the client (or nginx) is still sending body.
/// Closing a socket with unread bytes makes the kernel send a reset, which can destroy the
/// answer before the peer reads it: nginx then answers 502 instead of our 400 or 413. So
/// the socket is kept (a duplicate of libevent's descriptor), half-closed once the answer
/// is written, and drained until the peer closes too, a quiet spell passes, or a total
/// time is up.
final class LingeringClose {
    /// Sockets lingering in the process; past the cap they are closed at once.
    private static let lingering = Atomic<Int>(0)
    private static let limit = Atomic<Int>(1024)
    /// Where every lingering socket's bytes go: they are never read, so one area serves all
    /// (1,024 lingering sockets used to hold 64 KiB each).
    // Written by recv on any loop thread and never read: races cannot matter.
    nonisolated(unsafe) private static let discard = UnsafeMutableRawPointer.allocate(
        byteCount: 64 * 1024, alignment: 16)
    static let quietSeconds = 2
    static let maximumSeconds = 10.0

    private let descriptor: Int32
    private let startedAt = Exchange.now()
    private var event: OpaquePointer?

    /// Sockets that may linger at once (each holds a descriptor).
    static func setCap(_ cap: Int) {
        limit.store(max(0, cap), ordering: .relaxed)
    }

    /// Duplicates `descriptor` (close-on-exec) while libevent still owns it; nil when the
    /// cap is reached or the kernel refuses.
    static func keep(_ descriptor: Int32) -> Int32? {
        guard lingering.add(1, ordering: .relaxed).newValue <= limit.load(ordering: .relaxed) else {
            lingering.subtract(1, ordering: .relaxed)
            return nil
        }
        let kept = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        if kept < 0 { lingering.subtract(1, ordering: .relaxed) }
        return kept < 0 ? nil : kept
    }

    /// Gives up a kept descriptor without lingering (the peer is gone anyway).
    static func drop(_ kept: Int32) {
        close(kept)
        lingering.subtract(1, ordering: .relaxed)
    }

    /// Half-closes `kept` and drains it on `loop`. Call once libevent has written the
    /// answer and closed its own descriptor.
    static func start(_ kept: Int32, on loop: EventLoop) {
        shutdown(kept, Int32(SHUT_WR))
        let linger = LingeringClose(descriptor: kept)
        let retained = Unmanaged.passRetained(linger).toOpaque()
        linger.event = event_new(
            loop.base, kept, Int16(EV_READ | EV_PERSIST),
            { _, what, argument in
                Unmanaged<LingeringClose>.fromOpaque(argument!).takeUnretainedValue().readable(what)
            }, retained)
        var quiet = timeval(tv_sec: quietSeconds, tv_usec: 0)
        event_add(linger.event, &quiet)
    }

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    private func readable(_ what: Int16) {
        if what & Int16(EV_READ) != 0 && Exchange.now() - startedAt < Self.maximumSeconds {
            // The descriptor shares libevent's non-blocking open file: recv never waits.
            let count = recv(descriptor, Self.discard, 64 * 1024, 0)
            if count > 0 || (count < 0 && (errno == EAGAIN || errno == EINTR)) { return }
        }
        // End of the body, a quiet spell, an error, or time is up.
        event_free(event)
        Self.drop(descriptor)
        Unmanaged.passUnretained(self).release()
    }
}
