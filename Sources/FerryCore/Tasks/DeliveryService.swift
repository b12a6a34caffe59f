import Dispatch
import Logging

/// Accepted uploads from commit to delivery: task records, capacity bounds, the queue and
/// the workers, and the operations offered on tasks. Knows nothing of HTTP.
public final class DeliveryService: Sendable {
    /// What ``DeliveryService`` is told at start-up.
    public struct Settings: Sendable {
        public var workers = 4
        /// The most files one `incus file push` may carry (`--batch-max`).
        public var batchMax = 64
        public var queueCapacity = 1000
        public var spoolMaxBytes: UInt64?
        public var retryPolicy = RetryPolicy()
        /// Sync bytes, records and the directory before acknowledging (`--fsync`).
        public var durable = true
        /// Seconds a finished task's record (and a failed task's bytes) are kept.
        public var retention = 86_400.0

        public init() {}
    }

    public let spool: Spool
    public let capacity: Capacity
    public let store: TaskStore
    private let settings: Settings
    private let queue = DeliveryQueue()
    private let committer: GroupCommitter
    private let pool: WorkerPool
    private let logger: Logger

    public init(spool: Spool, pusher: any Pusher, settings: Settings, logger: Logger) {
        self.spool = spool
        self.settings = settings
        self.logger = logger
        let capacity = Capacity(maxTasks: settings.queueCapacity, maxBytes: settings.spoolMaxBytes)
        let store = TaskStore(spool: spool)
        self.capacity = capacity
        self.store = store
        committer = GroupCommitter(spool: spool, durable: settings.durable)
        let lifecycle = TaskLifecycle(
            store: store, spool: spool, capacity: capacity, keepFinished: settings.retention > 0,
            logger: logger)
        pool = WorkerPool(
            queue: queue, pusher: pusher, staging: spool, workers: settings.workers,
            batchMax: settings.batchMax, retryPolicy: settings.retryPolicy, logger: logger,
            lifecycle: lifecycle)
    }

    /// Takes up what a previous process left in the spool, queues unfinished tasks again in
    /// acceptance order, and starts the workers.
    public func start() throws(SystemError) -> SpoolRecovery {
        let started = Monotonic.seconds()
        let recovery = try spool.recover()
        store.load(recovery.records)
        var requeued = 0
        for var record in recovery.records {
            if record.state == .failed {
                capacity.adopt(tasks: 0, bytes: record.bytes, owner: record.owner)
                continue
            }
            guard !record.state.isFinished else { continue }
            if record.state != .queued {
                // Pushing or waiting to retry when the process died: queued again.
                record = store.update(id: record.id) { $0.state = .queued }.updated ?? record
            }
            capacity.adopt(tasks: 1, bytes: record.bytes, owner: record.owner)
            queue.enqueue(task(for: record))
            requeued += 1
        }
        if settings.durable && (recovery.partialsRemoved + requeued) > 0 {
            try spool.syncDirectory()
        }
        logger.notice(
            "spool recovered",
            metadata: [
                "requeued": "\(requeued)", "records": "\(recovery.records.count)",
                "partials_removed": "\(recovery.partialsRemoved)",
                "temporaries_removed": "\(recovery.temporariesRemoved)",
                "lost": "\(recovery.lost.count)", "damaged": "\(recovery.damaged.count)",
                "unreadable": "\(recovery.unreadable.count)",
                "duration": "\(Monotonic.format(Monotonic.seconds() - started))s",
            ])
        for id in recovery.lost {
            logger.error("task lost: its bytes were missing from the spool", metadata: ["task": "\(id)"])
        }
        for id in recovery.damaged {
            logger.error(
                "task failed: its spool file is not the size that was accepted", metadata: ["task": "\(id)"])
        }
        try pool.start()
        return recovery
    }

    /// Makes an upload durable and queues it; `completion` gets the new record (from the
    /// committer's queue) once bytes and record are on stable storage.
    public func accept(
        _ file: SpoolFile, request: UploadRequest, bytes: UInt64, idempotencyKey: String?,
        requestID: String?, owner: String?,
        completion: @escaping @Sendable (Result<TaskRecord, SystemError>) -> Void
    ) {
        let record = TaskRecord(
            id: file.id, sequence: store.makeSequence(), request: request, bytes: bytes,
            createdAt: WallClock.now(), idempotencyKey: idempotencyKey, requestID: requestID, owner: owner)
        committer.commit(file, record: record) { [store, queue] result in
            switch result {
            case .success:
                store.insert(record)
                queue.enqueue(Self.task(for: record, in: self.spool))
                completion(.success(record))
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// Tasks waiting for a worker (not those being pushed or waiting to retry).
    public var queueDepth: Int { queue.depth }

    /// Task `id` as `viewer` may see it: a token sees only its own tasks (nil: all).
    public func task(id: String, viewer: String?) -> TaskRecord? {
        guard let record = store.record(id: id), viewer == nil || record.owner == viewer else { return nil }
        return record
    }

    /// Sends a failed task back to the queue, with a fresh count of attempts.
    ///
    /// - Parameters:
    ///   - authorize: asked about the task before anything changes, against the policy in
    ///     force now (a token whose rule no longer allows the destination may not send it
    ///     again); nil when there is no policy.
    ///   - quota: the asker's own bounds; the task takes a place in the queue again.
    public func retry(
        id: String, viewer: String? = nil, authorize: ((TaskRecord) -> AccessRefusal?)? = nil,
        quota: Capacity.Quota? = nil
    ) throws(TaskActionError) -> TaskRecord {
        guard let current = task(id: id, viewer: viewer) else { throw .unknownTask(id) }
        if let refusal = authorize?(current) { throw .forbidden(refusal) }
        guard current.state == .failed else {
            throw .wrongState(id: id, state: current.state, allowed: [.failed])
        }
        do {
            // The bytes are held already (a failed task keeps them): only a place is taken.
            try capacity.reserve(bytes: 0, owner: current.owner, quota: quota)
        } catch {
            throw .capacity(error)
        }
        let (updated, now) = store.update(
            id: id, if: { $0.state == .failed },
            apply: { record in
                record.state = .queued
                record.attempts = 0
            })
        guard let updated else {
            capacity.cancel(bytes: 0, owner: current.owner)
            if let now { throw .wrongState(id: id, state: now.state, allowed: [.failed]) }
            throw .unknownTask(id)
        }
        queue.enqueue(task(for: updated))
        logger.info("task retried", metadata: ["task": "\(id)"])
        return updated
    }

    /// Removes a queued or failed task and its bytes.
    ///
    /// - Parameter authorize: as for ``retry(id:viewer:authorize:quota:)``.
    public func delete(
        id: String, viewer: String? = nil, authorize: ((TaskRecord) -> AccessRefusal?)? = nil
    ) throws(TaskActionError) {
        guard let current = task(id: id, viewer: viewer) else { throw .unknownTask(id) }
        if let refusal = authorize?(current) { throw .forbidden(refusal) }
        let allowed: [TaskState] = [.queued, .failed]
        let (removable, now) = store.removeIf(id: id) { allowed.contains($0.state) }
        guard let removable else {
            if let now { throw .wrongState(id: id, state: now.state, allowed: allowed) }
            throw .unknownTask(id)
        }
        do {
            try spool.removeTask(id: id)
        } catch {
            // Keep the task known (and counted) rather than leave its files unaccounted for.
            store.insert(removable)
            throw .storage(error)
        }
        capacity.releaseBytes(removable.bytes, owner: removable.owner)
        if removable.state == .queued { capacity.finishTask(owner: removable.owner) }
        logger.info("task deleted", metadata: ["task": "\(id)", "state": "\(removable.state.rawValue)"])
    }

    /// Forgets finished tasks older than the retention, and removes their files.
    public func collectGarbage() {
        let cutoff = WallClock.now() - settings.retention
        for candidate in store.finished(before: cutoff) {
            // Checked again under the store's lock: a retry or a DELETE may have come first.
            let (removed, _) = store.removeIf(id: candidate.id) {
                $0.state.isFinished && $0.updatedAt < cutoff
            }
            guard let record = removed else { continue }
            try? spool.removeTask(id: record.id)
            if record.state == .failed { capacity.releaseBytes(record.bytes, owner: record.owner) }
        }
    }

    /// Stops the workers: running pushes may finish until `deadline` (monotonic seconds).
    @discardableResult
    public func shutdown(deadline: Double) -> Bool {
        pool.shutdown(deadline: deadline)
    }

    private func task(for record: TaskRecord) -> UploadTask {
        Self.task(for: record, in: spool)
    }

    private static func task(for record: TaskRecord, in spool: Spool) -> UploadTask {
        UploadTask(
            id: record.id, request: record.request, sourcePath: spool.dataPath(id: record.id),
            bytes: record.bytes, attempts: record.attempts, owner: record.owner)
    }
}
