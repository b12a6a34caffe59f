import CFerryHook
import Dispatch
import Synchronization

/// Gives freed heap memory back to the system after a flood.
///
/// Bodies wait in libevent's buffers in many allocations (a chunk of a chunked body is
/// held until it is complete); when connections holding partial chunks close, glibc keeps the freed pages in
/// its arenas, and the process stays as large as the flood made it. Once a second a timer
/// of its own (not a loop: measuring a large heap takes milliseconds and holds the arenas'
/// locks) looks at how much lies free (`mallinfo2`) and, when ``threshold`` more than after
/// the last trim, returns it with `malloc_trim`. A server in its steady state never trims.
enum MemoryReturn {
    /// Free heap bytes, beyond those left after the last trim, worth giving back.
    static let threshold = 8 << 20
    private static let timer = Mutex<DispatchSourceTimer?>(nil)

    /// Starts the one timer of the process (later calls do nothing).
    static func start() {
        timer.withLock { timer in
            guard timer == nil else { return }
            let source = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ferry.memory-return"))
            source.schedule(deadline: .now() + 1, repeating: 1)
            source.setEventHandler { CFerryHook_returnFreeMemory(threshold) }
            source.resume()
            timer = source
        }
    }
}
