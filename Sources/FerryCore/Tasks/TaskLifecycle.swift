import Logging

/// Keeps task records and the spool in step with what the workers do.
final class TaskLifecycle: DeliveryLifecycle {
    private let store: TaskStore
    private let spool: Spool
    private let capacity: Capacity
    private let keepFinished: Bool
    private let logger: Logger

    init(store: TaskStore, spool: Spool, capacity: Capacity, keepFinished: Bool, logger: Logger) {
        self.store = store
        self.spool = spool
        self.capacity = capacity
        self.keepFinished = keepFinished
        self.logger = logger
    }

    func willPush(_ task: UploadTask) -> Bool {
        // Kept in memory only: recovery queues a "pushing" task again, just as it queues a
        // "queued" one, so writing the record would cost a file per push for nothing.
        let (updated, _) = store.update(
            id: task.id, if: { $0.state == .queued || $0.state == .retrying }, persist: false,
            apply: { $0.state = .pushing })
        return updated != nil
    }

    func willRetry(_ task: UploadTask, after failure: PushFailure, delay: Double) {
        store.update(id: task.id) { record in
            record.state = .retrying
            record.attempts = task.attempts
            record.lastError = failure.message
        }
    }

    func finished(_ task: UploadTask, _ outcome: DeliveryOutcome) {
        switch outcome {
        case .delivered:
            // The record says "delivered" before the bytes go: a crash in between then
            // removes leftover bytes at recovery instead of pushing them again.
            // Without retention the record is removed next: no need to write it first.
            store.update(id: task.id, persist: keepFinished) { record in
                record.state = .delivered
                record.attempts = task.attempts
                record.lastError = nil
            }
            removeData(task)
            if !keepFinished { forget(task.id) }
        case .failed(let failure):
            // A dead letter: the bytes stay until a retry, a delete or the retention ends.
            store.update(id: task.id) { record in
                record.state = .failed
                record.attempts = task.attempts
                record.lastError = failure.message
            }
        }
        capacity.finishTask(owner: task.owner)
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

    private func forget(_ id: String) {
        store.remove(id: id)
        try? spool.removeTask(id: id)
    }
}
