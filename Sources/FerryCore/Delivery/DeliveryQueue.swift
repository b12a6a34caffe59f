import Foundation

/// The FIFO of tasks waiting for a worker, handed out in batches that one `incus file push`
/// call can deliver. Its bound is kept by ``Capacity``, which counts every unfinished task,
/// not only the waiting ones.
///
/// A destination (container and path) belongs to one task at a time, from the moment the
/// task is handed out until ``release(_:)``, retry waits included: two uploads to the same
/// path are never pushed at once, and the later one is pushed last, so it wins.
public final class DeliveryQueue: @unchecked Sendable {
    // NSCondition rather than a semaphore: a waiting task may be ineligible (its
    // destination is busy), so "something is queued" is not "something can be taken".
    private let condition = NSCondition()
    private var waiting: [UploadTask] = []
    private var head = 0
    /// Destination → the task that holds it.
    private var destinationsHeld: [String: String] = [:]

    public init() {}

    /// Appends `task` (a new one, one recovered at start-up, or one to try again).
    public func enqueue(_ task: UploadTask) {
        condition.lock()
        waiting.append(task)
        condition.signal()
        condition.unlock()
    }

    /// The oldest task whose destination is free, with up to `limit - 1` later ones of the
    /// same ``UploadTask/batchKey`` and distinct destinations; blocks until there is one.
    public func next(limit: Int = 1) -> [UploadTask] {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let batch = takeBatch(limit: max(1, limit)) { return batch }
            condition.wait()
        }
    }

    /// `task` is finished with (delivered, failed for good, deleted): its destination is
    /// free for the next task.
    public func release(_ task: UploadTask) {
        condition.lock()
        if destinationsHeld[task.destinationKey] == task.id {
            destinationsHeld[task.destinationKey] = nil
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Tasks waiting for a worker.
    public var depth: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting.count - head
    }

    private func isFree(_ task: UploadTask) -> Bool {
        let holder = destinationsHeld[task.destinationKey]
        return holder == nil || holder == task.id
    }

    private func takeBatch(limit: Int) -> [UploadTask]? {
        guard let first = waiting[head...].firstIndex(where: isFree) else { return nil }
        var picked = [first]
        var destinations: Set<String> = [waiting[first].destinationKey]
        let key = waiting[first].batchKey
        var index = first + 1
        // A bounded look-ahead: a long queue of tasks that cannot join (other directories,
        // or one destination uploaded again and again) must not cost a full scan per take.
        let end = min(waiting.count, first + 1 + 8 * limit)
        while picked.count < limit && index < end {
            let task = waiting[index]
            // A task whose destination is taken (here or by a running push) waits, and so
            // does every later task for that destination, because `destinations` keeps it.
            if task.batchKey == key && isFree(task) && !destinations.contains(task.destinationKey) {
                picked.append(index)
            }
            destinations.insert(task.destinationKey)
            index += 1
        }
        let batch = picked.map { waiting[$0] }
        for task in batch { destinationsHeld[task.destinationKey] = task.id }
        if picked.last! - head + 1 == picked.count {
            // The common case, a run from the head: just move the head.
            head += picked.count
        } else {
            var remaining = Array(waiting[head...])
            for offset in picked.reversed() { remaining.remove(at: offset - head) }
            waiting = remaining
            head = 0
        }
        // Compact now and then so the array does not grow with the total ever queued.
        if head > 1024 && head * 2 > waiting.count {
            waiting.removeFirst(head)
            head = 0
        }
        return batch
    }
}
