import Dispatch
import Synchronization

/// The FIFO of tasks waiting for a worker. Its bound is kept by ``Capacity``, which counts
/// every unfinished task, not only the waiting ones.
public final class DeliveryQueue: Sendable {
    private struct State {
        var waiting: [UploadTask] = []
        var head = 0
    }
    private let state = Mutex(State())
    private let tasksWaiting = DispatchSemaphore(value: 0)

    public init() {}

    /// Appends `task` (a new one, one recovered at start-up, or one to try again).
    public func enqueue(_ task: UploadTask) {
        state.withLock { $0.waiting.append(task) }
        tasksWaiting.signal()
    }

    /// The oldest waiting task; blocks until there is one.
    public func next() -> UploadTask {
        tasksWaiting.wait()
        return state.withLock { state in
            let task = state.waiting[state.head]
            state.head += 1
            // Compact now and then so the array does not grow with the total ever queued.
            if state.head > 1024 && state.head * 2 > state.waiting.count {
                state.waiting.removeFirst(state.head)
                state.head = 0
            }
            return task
        }
    }

    /// Tasks waiting for a worker.
    public var depth: Int { state.withLock { $0.waiting.count - $0.head } }
}
