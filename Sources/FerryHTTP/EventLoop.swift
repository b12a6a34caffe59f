import CLibEvent
import Glibc
import Synchronization

/// One libevent `event_base` driven by one thread.
///
/// Everything that touches evhttp objects must run on the loop's thread; other threads hand
/// work over with ``execute(_:)``, which wakes the loop through an eventfd.
public final class EventLoop: @unchecked Sendable {
    let base: OpaquePointer
    private let wakeDescriptor: Int32
    private var wakeEvent: OpaquePointer?
    private let pending = Mutex<[@Sendable () -> Void]>([])
    private var signalEvents: [OpaquePointer] = []
    private var signalHandlers: [Int32: () -> Void] = [:]

    /// Creates an event base and its wake-up channel.
    ///
    /// - Throws: ``HTTPServerError/eventLoop(_:)`` when libevent or the kernel refuses.
    public init() throws {
        guard let base = event_base_new() else {
            throw HTTPServerError.eventLoop("event_base_new failed")
        }
        let descriptor = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard descriptor >= 0 else {
            event_base_free(base)
            throw HTTPServerError.eventLoop("eventfd failed: \(String(cString: strerror(errno)))")
        }
        self.base = base
        self.wakeDescriptor = descriptor
        let me = Unmanaged.passUnretained(self).toOpaque()
        wakeEvent = event_new(
            base, descriptor, Int16(EV_READ | EV_PERSIST),
            { _, _, argument in
                Unmanaged<EventLoop>.fromOpaque(argument!).takeUnretainedValue().runPending()
            }, me)
        event_add(wakeEvent, nil)
    }

    deinit {
        for event in signalEvents { event_free(event) }
        if let wakeEvent { event_free(wakeEvent) }
        close(wakeDescriptor)
        event_base_free(base)
    }

    /// Runs `work` on the loop's thread soon. Safe to call from any thread.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        pending.withLock { $0.append(work) }
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wakeDescriptor, $0.baseAddress, 8) }
    }

    /// Calls `handler` on the loop's thread whenever the process receives `signal`.
    public func onSignal(_ signal: Int32, _ handler: @escaping () -> Void) {
        signalHandlers[signal] = handler
        let me = Unmanaged.passUnretained(self).toOpaque()
        let event = event_new(
            base, signal, Int16(EV_SIGNAL | EV_PERSIST),
            { number, _, argument in
                let loop = Unmanaged<EventLoop>.fromOpaque(argument!).takeUnretainedValue()
                loop.signalHandlers[number]?()
            }, me)!
        event_add(event, nil)
        signalEvents.append(event)
    }

    /// Runs the loop on the calling thread until ``stop()``.
    public func run() {
        event_base_dispatch(base)
    }

    /// Runs the loop until `isDone()` holds after an event, or `timeout` seconds pass.
    ///
    /// - Returns: whether `isDone()` held.
    public func run(forAtMost timeout: Double, until isDone: () -> Bool) -> Bool {
        var limit = timeval(
            tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        let timer = event_new(
            base, -1, 0,
            { _, _, argument in
                event_base_loopbreak(OpaquePointer(argument))
            }, UnsafeMutableRawPointer(base))
        event_add(timer, &limit)
        defer { event_free(timer) }
        while !isDone() {
            guard event_pending(timer, Int16(EV_TIMEOUT), nil) != 0 else { return isDone() }
            event_base_loop(base, EVLOOP_ONCE)
        }
        return true
    }

    /// Makes ``run()`` return after the current callback. Call on the loop's thread.
    public func stop() {
        event_base_loopbreak(base)
    }

    private func runPending() {
        var counter: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &counter) { read(wakeDescriptor, $0.baseAddress, 8) }
        let work = pending.withLock { queued -> [@Sendable () -> Void] in
            defer { queued.removeAll(keepingCapacity: true) }
            return queued
        }
        for item in work { item() }
    }
}
