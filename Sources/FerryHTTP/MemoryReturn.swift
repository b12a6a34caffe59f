import CFerryHook

/// Gives freed heap memory back to the system after a flood.
///
/// Bodies wait in libevent's buffers in thousands of small allocations (it reads 4 KiB at
/// a time); when connections holding partial chunks close, glibc keeps the freed pages in
/// its arenas, and the process stays as large as the flood made it. Once a second each
/// loop looks at how much lies free (`mallinfo2`) and, past ``threshold``, returns it with
/// `malloc_trim`. A server in its steady state keeps little free and never trims.
enum MemoryReturn {
    /// Free heap bytes worth giving back.
    static let threshold = 8 << 20

    /// Called once a second by each loop's watchdog.
    static func tick() {
        CFerryHook_returnFreeMemory(threshold)
    }
}
