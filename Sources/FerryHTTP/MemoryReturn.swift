import CFerryHook
import Synchronization

/// Gives freed heap memory back to the system once connections have gone.
///
/// Bodies wait in libevent's buffers in thousands of small allocations (it reads 4 KiB at
/// a time); when a flood of connections holding partial chunks closes, glibc keeps the
/// freed pages in its arenas, and the process stays as large as the flood made it.
/// `malloc_trim` returns them. It runs from the loops' one-second watchdog, only after the
/// number of open connections has fallen well below its peak of the last second, so a steady server
/// never pays for it.
enum MemoryReturn {
    /// Connections that must have closed since the peak before trimming is worth it.
    static let fall: Int64 = 8
    /// Set when connections fell; the trim waits for the next tick, because libevent frees
    /// a closed connection's buffers only at the end of its loop's turn.
    private static let due = Atomic(false)

    /// Called once a second by each loop's watchdog.
    static func tick() {
        if due.exchange(false, ordering: .relaxed) {
            CFerryHook_returnFreeMemory()
        }
        if CFerryHook_takeConnectionsPeak() - CFerryHook_connectionsOpen() >= fall {
            due.store(true, ordering: .relaxed)
        }
    }
}
