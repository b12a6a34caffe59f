/// Where task state lives: every accepted upload's record, from acceptance until the
/// retention forgets it. The bytes are the spool's; everything else is here.
///
/// Every method is one transaction: a change is stored entirely or not at all, and a
/// condition is checked in the same transaction as the change it guards (a worker cannot
/// start a task that a DELETE is removing). Each call may wait for the disk: none is made
/// on an event loop, but for the indexed look-up of an idempotency key.
public protocol TaskStore: Sendable {
    /// Adds newly accepted tasks, all or none. With `durable`, they are on stable storage
    /// when this returns.
    func insert(_ records: [TaskRecord], durable: Bool) throws(StoreError)

    /// Task `id`, if it is known.
    func record(id: String) throws(StoreError) -> TaskRecord?

    /// The newest task accepted under `key` from `owner` (nil: without `--tokens`).
    func record(idempotencyKey key: String, owner: String?) throws(StoreError) -> TaskRecord?

    /// For each of `ids` for which `condition` holds, applies `change` (to ``TaskRecord/state``,
    /// ``TaskRecord/attempts`` and ``TaskRecord/lastError``; the rest is fixed at
    /// acceptance), stamps it, and stores it.
    ///
    /// - Returns: per id, in order, the record after the change (nil if unknown or the
    ///   condition did not hold) and the record as it is now (nil if unknown).
    @discardableResult
    func update(
        ids: [String], if condition: (TaskRecord) -> Bool, apply change: (inout TaskRecord) -> Void
    ) throws(StoreError) -> [TaskUpdate]

    /// Removes task `id` if `condition` holds for it. `beforeCommit` runs with the task
    /// still held in the transaction: returning false keeps the task (the removal is rolled
    /// back), so a task is never forgotten while its bytes are still on disk.
    func remove(
        id: String, if condition: (TaskRecord) -> Bool, beforeCommit: (TaskRecord) -> Bool
    ) throws(StoreError) -> TaskUpdate

    /// Moves a receiving upload on: its stored offset (and length, once announced), or,
    /// with ``UploadProgress/completedWith``, makes it a queued task with that SHA-256.
    /// With `durable`, the change is on stable storage when this returns.
    ///
    /// - Returns: the record after the change; nil when `id` is unknown or not receiving.
    func advance(id: String, _ progress: UploadProgress, durable: Bool) throws(StoreError) -> TaskRecord?

    /// Removes tasks `ids` unconditionally (delivered, and nothing is kept of them).
    func remove(ids: [String]) throws(StoreError)

    /// One page of tasks in acceptance order.
    ///
    /// - Returns: nil when `query.after` names no task that `query.owner` may see.
    func list(_ query: TaskQuery) throws(StoreError) -> [TaskRecord]?

    /// Removes up to `limit` finished tasks last changed before `cutoff` (seconds since
    /// 1970), oldest first, and returns them (their bytes are the caller's to remove).
    func expire(finishedBefore cutoff: Double, limit: Int) throws(StoreError) -> [TaskRecord]

    /// How many tasks are in each state: `owner`'s (nil: everyone's).
    func counts(owner: String?) throws(StoreError) -> [TaskState: Int]

    /// A value kept across restarts under `key` (that a round-1 spool was adopted, which
    /// deliveries are paused); nil when there is none.
    func setting(_ key: String) throws(StoreError) -> String?

    /// Keeps `value` under `key` (nil removes it), on stable storage when this returns.
    func setSetting(_ key: String, to value: String?) throws(StoreError)

    /// The tasks that hold bytes in the spool (unfinished or failed), in acceptance order.
    func holdingBytes() throws(StoreError) -> [TaskRecord]

    /// The highest acceptance number given so far (0 when none).
    func lastSequence() throws(StoreError) -> UInt64
}

extension TaskStore {
    /// How many tasks are in each state, everyone's.
    public func counts() throws(StoreError) -> [TaskState: Int] {
        try counts(owner: nil)
    }

    /// Applies `change` to each of `ids` that is known (see ``update(ids:if:apply:)``).
    @discardableResult
    public func update(ids: [String], apply change: (inout TaskRecord) -> Void) throws(StoreError)
        -> [TaskUpdate]
    {
        try update(ids: ids, if: { _ in true }, apply: change)
    }
}

/// Where a receiving upload has got to (see ``TaskStore/advance(id:_:durable:)``).
public struct UploadProgress: Sendable, Equatable {
    /// Bytes stored.
    public var offset: UInt64
    /// The announced length (nil: deferred still).
    public var length: UInt64?
    /// The SHA-256 (hex) of all the bytes, once the last one is in: the upload is complete.
    public var completedWith: String?

    public init(offset: UInt64, length: UInt64?, completedWith: String? = nil) {
        self.offset = offset
        self.length = length
        self.completedWith = completedWith
    }
}

/// What ``TaskStore/update(ids:if:apply:)`` did to one task.
public struct TaskUpdate: Sendable, Equatable {
    /// The record after the change; nil when the task is unknown or the condition failed.
    public var updated: TaskRecord?
    /// The record as it is now; nil when the task is unknown.
    public var current: TaskRecord?

    public init(updated: TaskRecord?, current: TaskRecord?) {
        self.updated = updated
        self.current = current
    }
}

/// Which tasks a listing shows.
public struct TaskQuery: Sendable, Equatable {
    public var state: TaskState?
    /// The viewer: a token sees only its own tasks (nil: all tasks).
    public var owner: String?
    /// Only tasks for this container.
    public var container: String?
    /// Only tasks whose destination starts with this (byte for byte).
    public var pathPrefix: String?
    /// Only tasks whose id starts with this.
    public var idPrefix: String?
    /// A task id: the page starts after it.
    public var after: String?
    public var limit: Int

    public init(
        state: TaskState? = nil, owner: String? = nil, container: String? = nil, pathPrefix: String? = nil,
        idPrefix: String? = nil, after: String? = nil, limit: Int
    ) {
        self.idPrefix = idPrefix
        self.state = state
        self.owner = owner
        self.container = container
        self.pathPrefix = pathPrefix
        self.after = after
        self.limit = limit
    }
}
