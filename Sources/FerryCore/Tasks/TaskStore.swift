import Synchronization

/// Every known task, in memory, mirrored to its record in the spool.
///
/// Record writes happen under the lock so that two updates of one task reach the disk in
/// the order they were made. State changes after acceptance are written without a sync:
/// a crash can at worst push a task again (at-least-once), never lose it.
public final class TaskStore: Sendable {
    /// What an `Idempotency-Key` refers to.
    public enum KeyClaim: Sendable, Equatable {
        /// New: the key is held for this upload until it is accepted or given up.
        case claimed
        /// A task was already accepted with this key.
        case existing(TaskRecord)
        /// Another upload with this key is being received right now.
        case inProgress
    }

    /// An `Idempotency-Key` belongs to the token that first used it (or, without
    /// `--tokens`, to the server): another token's equal key is simply another key.
    private struct ScopedKey: Hashable {
        var owner: String?
        var key: String

        init(_ key: String, owner: String?) {
            self.owner = owner
            self.key = key
        }

        init?(of record: TaskRecord) {
            guard let key = record.idempotencyKey else { return nil }
            self.init(key, owner: record.owner)
        }
    }

    private struct Index {
        var records: [String: TaskRecord] = [:]
        var idByKey: [ScopedKey: String] = [:]
        var keysInProgress: Set<ScopedKey> = []
        var nextSequence: UInt64 = 1
    }

    private let spool: Spool
    private let index = Mutex(Index())

    public init(spool: Spool) {
        self.spool = spool
    }

    /// Takes in the records found at start-up.
    public func load(_ records: [TaskRecord]) {
        index.withLock { index in
            for record in records {
                index.records[record.id] = record
                if let key = ScopedKey(of: record) { index.idByKey[key] = record.id }
                index.nextSequence = max(index.nextSequence, record.sequence + 1)
            }
        }
    }

    /// The next acceptance number.
    public func makeSequence() -> UInt64 {
        index.withLock { index in
            defer { index.nextSequence += 1 }
            return index.nextSequence
        }
    }

    /// Claims `key` for an upload of `owner` (nil without `--tokens`).
    public func claim(idempotencyKey: String, owner: String?) -> KeyClaim {
        let key = ScopedKey(idempotencyKey, owner: owner)
        return index.withLock { index in
            if let id = index.idByKey[key], let record = index.records[id] { return .existing(record) }
            if index.keysInProgress.contains(key) { return .inProgress }
            index.keysInProgress.insert(key)
            return .claimed
        }
    }

    /// Lets go of a claimed key whose upload was not accepted.
    public func release(idempotencyKey: String, owner: String?) {
        _ = index.withLock { $0.keysInProgress.remove(ScopedKey(idempotencyKey, owner: owner)) }
    }

    /// Adds a task whose record was just committed.
    public func insert(_ record: TaskRecord) {
        index.withLock { index in
            index.records[record.id] = record
            if let key = ScopedKey(of: record) {
                index.keysInProgress.remove(key)
                index.idByKey[key] = record.id
            }
        }
    }

    public func record(id: String) -> TaskRecord? {
        index.withLock { $0.records[id] }
    }

    /// Applies `change` to task `id` if `condition` holds for it, stamps it, and persists it
    /// unless `persist` is false (for states recovery treats like the persisted one).
    ///
    /// - Returns: the record after the change, or nil if the task is unknown or the
    ///   condition does not hold (then `current` says what it is).
    @discardableResult
    public func update(
        id: String, if condition: (TaskRecord) -> Bool = { _ in true }, persist: Bool = true,
        apply change: (inout TaskRecord) -> Void
    ) -> (updated: TaskRecord?, current: TaskRecord?) {
        index.withLock { index in
            guard var record = index.records[id] else { return (nil, nil) }
            guard condition(record) else { return (nil, record) }
            change(&record)
            record.updatedAt = WallClock.now()
            index.records[id] = record
            if persist { try? spool.writeRecord(record, durable: false) }
            return (record, record)
        }
    }

    /// Forgets task `id` if `condition` holds for it, in one step with the check, so a
    /// worker cannot start it in between.
    ///
    /// - Returns: the removed record, or nil and what the task is (nil if unknown).
    public func removeIf(id: String, _ condition: (TaskRecord) -> Bool) -> (
        removed: TaskRecord?, current: TaskRecord?
    ) {
        index.withLock { index in
            guard let record = index.records[id] else { return (nil, nil) }
            guard condition(record) else { return (nil, record) }
            index.records[id] = nil
            if let key = ScopedKey(of: record), index.idByKey[key] == id { index.idByKey[key] = nil }
            return (record, record)
        }
    }

    /// Forgets task `id` (its files are the caller's to remove).
    @discardableResult
    public func remove(id: String) -> TaskRecord? {
        index.withLock { index in
            guard let record = index.records.removeValue(forKey: id) else { return nil }
            if let key = ScopedKey(of: record), index.idByKey[key] == id { index.idByKey[key] = nil }
            return record
        }
    }

    /// Tasks in acceptance order, optionally in one state and of one owner, after task
    /// `after`, at most `limit`.
    ///
    /// - Returns: nil when `after` names no task of `owner` (deleted, expired, never made,
    ///   or another owner's: all look the same, so a cursor tells nothing about others).
    public func list(state: TaskState?, owner: String? = nil, after: String?, limit: Int) -> [TaskRecord]? {
        index.withLock { index in
            var start: UInt64 = 0
            if let after {
                guard let cursor = index.records[after], owner == nil || cursor.owner == owner else {
                    return nil
                }
                start = cursor.sequence
            }
            return index.records.values
                .filter {
                    $0.sequence > start && (state == nil || $0.state == state)
                        && (owner == nil || $0.owner == owner)
                }
                .sorted { $0.sequence < $1.sequence }
                .prefix(limit)
                .map { $0 }
        }
    }

    /// Finished tasks last changed before `cutoff` (seconds since 1970).
    public func finished(before cutoff: Double) -> [TaskRecord] {
        index.withLock { index in
            index.records.values.filter { $0.state.isFinished && $0.updatedAt < cutoff }
        }
    }

    /// How many tasks are in each state.
    public func counts() -> [TaskState: Int] {
        index.withLock { index in
            var counts: [TaskState: Int] = [:]
            for record in index.records.values { counts[record.state, default: 0] += 1 }
            return counts
        }
    }
}
