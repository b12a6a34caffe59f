import Dispatch
import Glibc
import Logging
import Synchronization

/// Accepted uploads from their first byte to delivery: uploads in progress, the task
/// store, capacity bounds, the queue and the workers, and the operations offered on tasks.
/// Knows nothing of HTTP.
///
/// Memory holds what is needed to hand out work (the unfinished tasks' queue entries, the
/// keys of uploads in flight, per-owner usage); history is in the store.
public final class DeliveryService: Sendable {
    /// What ``DeliveryService`` is told at start-up.
    public struct Settings: Sendable {
        public var workers = 4
        /// The most files one `incus file push` may carry (`--batch-max`).
        public var batchMax = 64
        /// This node's name, the first part of every id it makes (`--node-id`; nil: ids of
        /// 32 hex digits alone).
        public var nodeID: String?
        /// The most pushes into one remote at once (`--workers-per-remote`; nil: `workers`).
        public var workersPerRemote: Int?
        public var queueCapacity = 1000
        public var spoolMaxBytes: UInt64?
        public var retryPolicy = RetryPolicy()
        /// Sync bytes, the directory and the store before acknowledging (`--fsync`).
        public var durable = true
        /// Seconds a finished task's record (and a failed task's bytes) are kept.
        public var retention = 86_400.0
        /// Seconds an unfinished tus upload is kept after its creation or last PATCH
        /// (`--upload-expiry`).
        public var uploadExpiry = 86_400.0

        public init() {}
    }

    /// What ``start()`` found and did.
    public struct Recovery: Sendable {
        /// Records of a round-1 spool made rows (0 once adopted).
        public var adopted = 0
        /// Round-1 record files that could not be read (left for a person to look at).
        public var unreadable: [String] = []
        /// Unfinished tasks queued again, in acceptance order.
        public var requeued: [String] = []
        /// Data files without a task (never acknowledged) or of delivered tasks, deleted.
        public var dataRemoved = 0
        /// Temporary files and staged batches deleted.
        public var temporariesRemoved = 0
        /// Unfinished tasks whose bytes were gone: they cannot be delivered (removed).
        public var lost: [String] = []
        /// Unfinished tasks whose data file is not the size accepted: made dead letters.
        public var damaged: [String] = []
        /// tus uploads in progress, ready to be resumed.
        public var resumable: [String] = []
        /// The pauses of deliveries in force when the last process stopped, in force again.
        public var paused = DeliveryPauses()
    }

    /// Finished tasks the retention removes in one transaction: a large expiry never holds
    /// the writer for long.
    static let expiryBatch = 500

    public let spool: Spool
    public let capacity: Capacity
    public let store: any TaskStore
    let claims: IdempotencyClaims
    let settings: Settings
    /// Whether an accepted upload is synced before its 202 (`--fsync`).
    var durable: Bool { settings.durable }
    let queue: DeliveryQueue
    private let committer: GroupCommitter
    private let pool: WorkerPool
    let nextSequence = Mutex<UInt64>(1)
    private let pauseWrites = Mutex(())
    /// tus uploads in progress, by id.
    let resumables = Mutex<[String: ResumableUpload]>([:])
    /// Task changes, for `/events` and the per-minute history.
    public let events = TaskEventHub()
    let logger: Logger

    public init(spool: Spool, store: any TaskStore, pusher: any Pusher, settings: Settings, logger: Logger) {
        self.spool = spool
        self.store = store
        self.settings = settings
        self.logger = logger
        queue = DeliveryQueue(limitPerRemote: settings.workersPerRemote)
        let capacity = Capacity(maxTasks: settings.queueCapacity, maxBytes: settings.spoolMaxBytes)
        self.capacity = capacity
        claims = IdempotencyClaims(store: store)
        committer = GroupCommitter(spool: spool, store: store, durable: settings.durable)
        let lifecycle = TaskLifecycle(
            store: store, spool: spool, capacity: capacity, keepFinished: settings.retention > 0,
            events: events, logger: logger)
        pool = WorkerPool(
            queue: queue, pusher: pusher, staging: spool, workers: settings.workers,
            batchMax: settings.batchMax, retryPolicy: settings.retryPolicy, logger: logger,
            lifecycle: lifecycle)
    }

    // MARK: Start

    /// Adopts a round-1 spool if there is one, reconciles the store with the data files,
    /// queues unfinished tasks again in acceptance order, and starts the workers.
    public func start() throws -> Recovery {
        let started = Monotonic.seconds()
        var recovery = Recovery()
        if let store = store as? SQLiteTaskStore {
            let adoption = try RoundOneSpool(directory: spool.directory).adopt(into: store)
            recovery.adopted = adoption.adopted
            recovery.unreadable = adoption.unreadable
        }
        let scan = try spool.scan()
        recovery.temporariesRemoved = scan.temporariesRemoved + scan.partialsRemoved
        var dataFiles = scan.dataFiles
        var toQueue: [String] = []
        for record in try store.holdingBytes() {
            if record.state == .receiving {
                if resume(record, size: dataFiles.removeValue(forKey: record.id) ?? nil) {
                    recovery.resumable.append(record.id)
                } else {
                    recovery.lost.append(record.id)
                }
                continue
            }
            guard let found = dataFiles.removeValue(forKey: record.id) else {
                // Unfinished (or failed), and its bytes are gone: it cannot be delivered.
                recovery.lost.append(record.id)
                continue
            }
            if let size = found, size != record.bytes, record.state != .failed {
                // The bytes on disk are not the bytes accepted (a damaged disk, a hand
                // that touched the spool): pushing them would deliver the wrong file. A
                // dead letter, its bytes kept for a person to look at.
                try store.update(ids: [record.id]) {
                    $0.state = .failed
                    $0.lastError =
                        "the spool file holds \(size) bytes, the upload had \(record.bytes); not delivered"
                }
                capacity.adopt(tasks: 0, bytes: record.bytes, owner: record.owner)
                recovery.damaged.append(record.id)
                continue
            }
            if record.state == .failed {
                capacity.adopt(tasks: 0, bytes: record.bytes, owner: record.owner)
                continue
            }
            capacity.adopt(tasks: 1, bytes: record.bytes, owner: record.owner)
            queue.enqueue(task(for: record))
            if record.state != .queued { toQueue.append(record.id) }
            recovery.requeued.append(record.id)
        }
        // Pushing or waiting to retry when the process died: queued again, in one write;
        // the lost are forgotten in another.
        try store.update(ids: toQueue, if: { !$0.state.isFinished }, apply: { $0.state = .queued })
        try store.remove(ids: recovery.lost)
        // What is left was never acknowledged (no task), or was delivered (its bytes were
        // to go).
        for id in dataFiles.keys {
            try spool.removeData(id: id)
            recovery.dataRemoved += 1
        }
        if settings.durable && recovery.dataRemoved > 0 { try spool.syncDirectory() }
        nextSequence.withLock { $0 = (try? store.lastSequence()).map { $0 + 1 } ?? 1 }
        recovery.paused = try restorePauses()
        logRecovery(recovery, seconds: Monotonic.seconds() - started)
        try pool.start()
        return recovery
    }

    private func logRecovery(_ recovery: Recovery, seconds: Double) {
        logger.notice(
            "spool recovered",
            metadata: [
                "requeued": "\(recovery.requeued.count)", "adopted": "\(recovery.adopted)",
                "data_removed": "\(recovery.dataRemoved)",
                "temporaries_removed": "\(recovery.temporariesRemoved)",
                "lost": "\(recovery.lost.count)", "damaged": "\(recovery.damaged.count)",
                "unreadable": "\(recovery.unreadable.count)", "resumable": "\(recovery.resumable.count)",
                "paused": "\(recovery.paused.summary)",
                "duration": "\(Monotonic.format(seconds))s",
            ])
        for id in recovery.lost {
            logger.error("task lost: its bytes were missing from the spool", metadata: ["task": "\(id)"])
        }
        for id in recovery.damaged {
            logger.error(
                "task failed: its spool file is not the size that was accepted", metadata: ["task": "\(id)"])
        }
        for id in recovery.unreadable {
            logger.error("round-1 record unreadable; left in the spool", metadata: ["task": "\(id)"])
        }
    }

    // MARK: Uploads

    /// Begins an upload whose head was judged acceptable: claims its idempotency key,
    /// promises it free disk, reserves its place, and creates its spool file. What it took
    /// is given back if a later step refuses.
    public func begin(_ plan: UploadPlan) throws(UploadRefusal) -> UploadAdmission {
        let upload = IncomingUpload(id: TaskID.make(node: settings.nodeID), plan: plan, service: self)
        do throws(UploadRefusal) {
            if let key = plan.idempotencyKey {
                let claim: IdempotencyClaims.Claim
                do {
                    claim = try claims.claim(key, owner: plan.owner)
                } catch {
                    throw .storage(error.description)
                }
                switch claim {
                case .existing(let record)
                where record.request != plan.request
                    || (plan.announcedLength.map { $0 != record.bytes } ?? false):
                    // Another upload under a used key: answering with the first task would
                    // drop this body silently.
                    throw .idempotencyKeyMismatch(id: record.id)
                case .existing(let record):
                    return .repeated(record)
                case .inProgress:
                    throw .idempotencyKeyInProgress
                case .claimed:
                    upload.holdClaim()
                }
            }
            let announced = plan.announcedLength ?? 0
            try promiseDisk(announced, keeping: plan.minFreeDisk)
            upload.holdPromise(announced)
            do {
                try capacity.reserve(bytes: announced, owner: plan.owner, quota: plan.quota)
            } catch {
                throw .capacity(error)
            }
            upload.holdReservation(announced)
            do {
                upload.holdFile(try spool.create(id: upload.id))
            } catch {
                throw UploadRefusal(error)
            }
            return .receiving(upload)
        } catch {
            upload.abandon()
            throw error
        }
    }

    /// Promises `bytes` of the free space, or says why they would eat into the reserve
    /// once the uploads in progress have written what they announced.
    func promiseDisk(_ bytes: UInt64, keeping reserve: UInt64) throws(UploadRefusal) {
        let refused: (available: UInt64, promised: UInt64)?
        do {
            refused = try spool.promise(bytes, keeping: reserve)
        } catch {
            throw .storage(error.description)
        }
        if let refused {
            throw .insufficientStorage(
                "\(refused.available) bytes free, \(refused.promised) promised to uploads in progress, "
                    + "\(reserve) kept in reserve, \(bytes) announced")
        }
    }

    /// Makes an upload's bytes and task durable and queues it; `completion` gets the new
    /// record (from the committer's queue) once both are on stable storage.
    func accept(
        _ file: SpoolFile, plan: UploadPlan, bytes: UInt64, sha256: String?,
        completion: @escaping @Sendable (Result<TaskRecord, UploadRefusal>) -> Void
    ) {
        let sequence = nextSequence.withLock { next in
            defer { next += 1 }
            return next
        }
        var record = TaskRecord(
            id: file.id, sequence: sequence, request: plan.request, bytes: bytes, createdAt: WallClock.now(),
            idempotencyKey: plan.idempotencyKey, requestID: plan.requestID, owner: plan.owner)
        record.sha256 = sha256
        committer.commit(file, record: record) { [queue, spool, events, record] result in
            switch result {
            case .success:
                // Told before it is queued: a worker could otherwise tell "pushing" first.
                events.publish(TaskEvent(record), accepted: true)
                queue.enqueue(Self.task(for: record, in: spool))
                completion(.success(record))
            case .failure(let refusal):
                completion(.failure(refusal))
            }
        }
    }

    // MARK: Pauses

    /// Where the pauses are kept in the store.
    static let pausesSetting = "paused_deliveries"

    /// Pauses or resumes deliveries; the change is on stable storage before it takes
    /// effect, so it survives a restart.
    ///
    /// - Returns: the pauses in force now.
    @discardableResult
    public func changeDeliveries(_ change: DeliveryPauses.Change) throws(StoreError) -> DeliveryPauses {
        // One change at a time: two stored out of order would leave the store and the queue
        // disagreeing.
        try pauseWrites.withLock { _ throws(StoreError) in
            var pauses = queue.paused
            let now = WallClock.now()
            pauses.apply(change, at: now)
            try store.setSetting(Self.pausesSetting, to: pauses.isEmpty ? nil : pauses.encoded())
            let inForce = queue.apply(change, at: now)
            logger.notice("deliveries \(change.verb)", metadata: ["paused": "\(inForce.summary)"])
            events.publish(inForce)
            return inForce
        }
    }

    /// The pauses in force.
    public var pausedDeliveries: DeliveryPauses { queue.paused }

    private func restorePauses() throws(StoreError) -> DeliveryPauses {
        guard let text = try store.setting(Self.pausesSetting) else { return DeliveryPauses() }
        guard let stored = DeliveryPauses(encoded: text) else {
            // Never written so by Ferry: a person edited it. Deliveries go on, loudly.
            logger.error("stored pauses of deliveries unreadable; ignored", metadata: ["value": "\(text)"])
            return DeliveryPauses()
        }
        if let since = stored.allSince { queue.apply(.pauseAll, at: since) }
        for (container, since) in stored.containers { queue.apply(.pause(container: container), at: since) }
        return queue.paused
    }

    // MARK: Tasks

    /// Tasks waiting for a worker (not those being pushed or waiting to retry).
    public var queueDepth: Int { queue.depth }

    /// Task `id` as `viewer` may see it: a token sees only its own tasks (nil: all).
    public func task(id: String, viewer: String?) throws(StoreError) -> TaskRecord? {
        guard let record = try store.record(id: id), viewer == nil || record.owner == viewer else {
            return nil
        }
        return record
    }

    /// One page of tasks; nil when the cursor names no task the viewer may see.
    public func list(_ query: TaskQuery) throws(StoreError) -> [TaskRecord]? {
        try store.list(query)
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
        let current = try taskForAction(id: id, viewer: viewer)
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
        let update: TaskUpdate
        do {
            update = try store.update(
                ids: [id], if: { $0.state == .failed },
                apply: { record in
                    record.state = .queued
                    record.attempts = 0
                })[0]
        } catch {
            capacity.cancel(bytes: 0, owner: current.owner)
            throw .storage(error.description)
        }
        guard let updated = update.updated else {
            capacity.cancel(bytes: 0, owner: current.owner)
            if let now = update.current { throw .wrongState(id: id, state: now.state, allowed: [.failed]) }
            throw .unknownTask(id)
        }
        events.publish(TaskEvent(updated))
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
        let current = try taskForAction(id: id, viewer: viewer)
        if let refusal = authorize?(current) { throw .forbidden(refusal) }
        let allowed: [TaskState] = [.queued, .failed]
        var unlinkFailure: SystemError?
        let update: TaskUpdate
        do {
            // The bytes go inside the transaction that forgets the task: if they cannot be
            // removed, the task stays known (and counted) rather than its file unaccounted.
            update = try store.remove(
                id: id, if: { allowed.contains($0.state) },
                beforeCommit: { [spool] record in spool.removeData(id: record.id, failure: &unlinkFailure) })
        } catch {
            throw .storage(error.description)
        }
        if let unlinkFailure { throw .storage(unlinkFailure.description) }
        guard let removed = update.updated else {
            if let now = update.current { throw .wrongState(id: id, state: now.state, allowed: allowed) }
            throw .unknownTask(id)
        }
        capacity.releaseBytes(removed.bytes, owner: removed.owner)
        if removed.state == .queued { capacity.finishTask(owner: removed.owner) }
        events.publish(TaskEvent(removed, .deleted))
        logger.info("task deleted", metadata: ["task": "\(id)", "state": "\(removed.state.rawValue)"])
    }

    /// What a bulk action did: how many tasks it changed, and what stopped it early (a
    /// full queue, say), if anything.
    public struct BulkOutcome: Sendable {
        public var count = 0
        public var stoppedBy: TaskActionError?
    }

    /// Retries every failed task `viewer` may see (of one container, if named), oldest
    /// first, until the queue's bounds stop it. Tasks whose rule no longer allows them are
    /// left as they are.
    public func retryAll(
        viewer: String?, container: String?, authorize: ((TaskRecord) -> AccessRefusal?)?,
        quota: Capacity.Quota?
    ) -> BulkOutcome {
        forEachFailed(viewer: viewer, container: container) { record throws(TaskActionError) in
            try retry(id: record.id, viewer: viewer, authorize: authorize, quota: quota)
        }
    }

    /// Deletes every failed task `viewer` may see (of one container, if named).
    public func deleteAll(viewer: String?, container: String?, authorize: ((TaskRecord) -> AccessRefusal?)?)
        -> BulkOutcome
    {
        forEachFailed(viewer: viewer, container: container) { record throws(TaskActionError) in
            try delete(id: record.id, viewer: viewer, authorize: authorize)
        }
    }

    /// Calls `action` on each task that was failed when the bulk action began, a page at a
    /// time, oldest first. A task that another request changed meanwhile, or whose rule
    /// refuses, is skipped; a bound or a storage failure stops the whole.
    ///
    /// Paging: a task acted on leaves the failed ones, so each page is read again after the
    /// last task *skipped* (which stays failed): every page either acts or moves on.
    private func forEachFailed(
        viewer: String?, container: String?, _ action: (TaskRecord) throws(TaskActionError) -> Void
    ) -> BulkOutcome {
        let pageSize = 500
        let began = WallClock.now()
        var outcome = BulkOutcome()
        var cursor: String?
        while true {
            let page: [TaskRecord]
            do throws(StoreError) {
                guard
                    let found = try store.list(
                        TaskQuery(
                            state: .failed, owner: viewer, container: container, after: cursor,
                            limit: pageSize))
                else { return outcome }  // the cursor's task went meanwhile
                page = found
            } catch {
                outcome.stoppedBy = .storage(error.description)
                return outcome
            }
            for record in page {
                // One that failed again after a retry here waits for the next bulk action.
                guard record.updatedAt <= began else {
                    cursor = record.id
                    continue
                }
                do throws(TaskActionError) {
                    try action(record)
                    outcome.count += 1
                } catch {
                    switch error {
                    case .wrongState, .forbidden:
                        cursor = record.id
                    case .unknownTask:
                        continue  // gone meanwhile: no cursor (a cursor must exist)
                    case .capacity, .storage:
                        outcome.stoppedBy = error
                        return outcome
                    }
                }
            }
            if page.count < pageSize { return outcome }
        }
    }

    private func taskForAction(id: String, viewer: String?) throws(TaskActionError) -> TaskRecord {
        let record: TaskRecord?
        do {
            record = try task(id: id, viewer: viewer)
        } catch {
            throw .storage(error.description)
        }
        guard let record else { throw .unknownTask(id) }
        return record
    }

    /// Forgets finished tasks older than the retention, in small batches, and removes the
    /// bytes failed ones kept; removes tus uploads past their expiry.
    public func collectGarbage() {
        expireResumables()
        let cutoff = WallClock.now() - settings.retention
        while true {
            let expired: [TaskRecord]
            do {
                expired = try store.expire(finishedBefore: cutoff, limit: Self.expiryBatch)
            } catch {
                TaskLifecycle.writeFailures.increment()
                logger.error("cannot expire finished tasks", metadata: ["error": "\(error)"])
                return
            }
            for record in expired where record.state == .failed {
                try? spool.removeData(id: record.id)
                capacity.releaseBytes(record.bytes, owner: record.owner)
            }
            if expired.count < Self.expiryBatch { return }
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

    static func task(for record: TaskRecord, in spool: Spool) -> UploadTask {
        UploadTask(
            id: record.id, request: record.request, sourcePath: spool.dataPath(id: record.id),
            bytes: record.bytes, attempts: record.attempts, owner: record.owner)
    }
}
