import Dispatch
import Synchronization

/// The bounded FIFO of tasks waiting for a worker.
///
/// Capacity counts every task not yet settled (waiting, being pushed, or waiting to retry)
/// plus reservations: an upload reserves its place when its headers arrive, so "full" is
/// decided before the body is read and an accepted body always finds room.
public final class DeliveryQueue: Sendable {
    public let capacity: Int
    private struct State {
        var waiting: [UploadTask] = []
        var head = 0
        var unsettled = 0
    }
    private let state = Mutex(State())
    private let tasksWaiting = DispatchSemaphore(value: 0)

    public init(capacity: Int) {
        self.capacity = capacity
    }

    /// Takes a place for an upload about to be received. False when the queue is full.
    public func reserve() -> Bool {
        state.withLock { state in
            guard state.unsettled < capacity else { return false }
            state.unsettled += 1
            return true
        }
    }

    /// Gives back a reservation whose upload was not accepted.
    public func cancelReservation() {
        state.withLock { $0.unsettled -= 1 }
    }

    /// Queues `task` in the place reserved for it (or again, after a failed attempt).
    public func enqueue(_ task: UploadTask) {
        state.withLock { $0.waiting.append(task) }
        tasksWaiting.signal()
    }

    /// Marks a task as finished for good (delivered or failed), freeing its place.
    public func settle() {
        state.withLock { $0.unsettled -= 1 }
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

    /// Tasks not yet settled, reservations included.
    public var depth: Int { state.withLock { $0.unsettled } }
}
