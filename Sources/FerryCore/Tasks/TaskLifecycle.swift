import Logging
import Metrics

/// Keeps the task store and the spool in step with what the workers do.
///
/// Every write is checked. A state that cannot be stored is logged and counted
/// (`ferry_store_write_failures_total`), and the task's truth stays what the store says:
/// an outcome that could not be stored sends the task back to the queue instead of
/// removing its bytes.
final class TaskLifecycle: DeliveryLifecycle {
    private let store: any TaskStore
    private let spool: Spool
    private let capacity: Capacity
    private let keepFinished: Bool
    private let events: TaskEventHub
    private let logger: Logger
    static let writeFailures = Counter(label: "ferry_store_write_failures_total")

    init(
        store: any TaskStore, spool: Spool, capacity: Capacity, keepFinished: Bool, events: TaskEventHub,
        logger: Logger
    ) {
        self.store = store
        self.events = events
        self.spool = spool
        self.capacity = capacity
        self.keepFinished = keepFinished
        self.logger = logger
    }

    func willPush(_ tasks: [UploadTask]) -> [UploadTask] {
        do {
            let updates = try store.update(
                // Unfinished: queued, retrying, or pushing still when the outcome of its
                // last push could not be stored. Deleted ones are gone.
                ids: tasks.map(\.id), if: { !$0.state.isFinished }, apply: { $0.state = .pushing })
            let going = zip(tasks, updates).compactMap { task, update in update.updated == nil ? nil : task }
            events.publish(going.map { TaskEvent($0, .pushing) })
            return going
        } catch {
            // "pushing" is only shown, never needed: the store still says queued, which is
            // what recovery would make of "pushing" too. The push goes on.
            failed(error, writing: "pushing", tasks)
            return tasks
        }
    }

    func willRetry(_ task: UploadTask, after failure: PushFailure, delay: Double) {
        do {
            try store.update(ids: [task.id]) { record in
                record.state = .retrying
                record.attempts = task.attempts
                record.lastError = failure.message
            }
            events.publish(TaskEvent(task, .retrying, error: failure.message))
        } catch {
            // The store says pushing (or queued): after a restart the task is pushed again,
            // as it will be here after the wait.
            failed(error, writing: "retrying", [task])
        }
    }

    func finished(_ tasks: [UploadTask], _ outcome: DeliveryOutcome) -> Bool {
        var attempts: [String: Int] = [:]
        for task in tasks { attempts[task.id] = task.attempts }
        do {
            switch outcome {
            case .delivered:
                // Stored before the bytes go: a crash in between removes leftover bytes at
                // recovery instead of pushing them again.
                if keepFinished {
                    try store.update(ids: tasks.map(\.id)) { record in
                        record.state = .delivered
                        record.attempts = attempts[record.id] ?? record.attempts
                        record.lastError = nil
                    }
                } else {
                    try store.remove(ids: tasks.map(\.id))
                }
                for task in tasks { removeData(task) }
            case .failed(let failure):
                // A dead letter: the bytes stay until a retry, a delete or the retention ends.
                try store.update(ids: tasks.map(\.id)) { record in
                    record.state = .failed
                    record.attempts = attempts[record.id] ?? record.attempts
                    record.lastError = failure.message
                }
            }
        } catch {
            failed(error, writing: outcome == .delivered ? "delivered" : "failed", tasks)
            return false
        }
        for task in tasks { capacity.finishTask(owner: task.owner) }
        events.publish(
            tasks.map { task in
                var task = task
                task.attempts = attempts[task.id] ?? task.attempts
                return switch outcome {
                case .delivered: TaskEvent(task, .delivered)
                case .failed(let failure): TaskEvent(task, .failed, error: failure.message)
                }
            })
        return true
    }

    private func removeData(_ task: UploadTask) {
        // The task no longer holds its bytes, whether or not the unlink worked.
        capacity.releaseBytes(task.bytes, owner: task.owner)
        do {
            try spool.removeData(id: task.id)
        } catch {
            logger.error("cannot remove spool file", metadata: ["task": "\(task.id)", "error": "\(error)"])
        }
    }

    private func failed(_ error: StoreError, writing state: String, _ tasks: [UploadTask]) {
        Self.writeFailures.increment(by: tasks.count)
        logger.error(
            "cannot store task state",
            metadata: [
                "state": "\(state)", "tasks": "\(tasks.map(\.id).joined(separator: ","))",
                "error": "\(error)",
            ])
    }
}
