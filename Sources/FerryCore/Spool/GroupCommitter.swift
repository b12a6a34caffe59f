import Dispatch
import Synchronization

/// Makes accepted uploads durable in groups: everything that arrives while one group is
/// being synced is synced together in the next, sharing its directory sync and letting the
/// file system share journal commits.
///
/// One commit: the record is set (see ``Spool``), bytes and record are synced in parallel
/// across the group, and the directory is synced once for the group. Only then is the caller told (and may answer 202). Runs on its own queue,
/// never on an event loop. Without syncs there is nothing to overlap, and the group is
/// committed in order on one thread: threads creating and renaming in one directory only
/// contend for its lock.
public final class GroupCommitter: Sendable {
    public typealias Completion = @Sendable (Result<Void, SystemError>) -> Void

    private struct Pending: Sendable {
        let file: SpoolFile
        let record: TaskRecord
        let completion: Completion
    }

    private struct State {
        var pending: [Pending] = []
        var draining = false
    }

    private let spool: Spool
    private let durable: Bool
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "ferry.group-commit")

    /// - Parameter durable: whether to sync (`--fsync`); without it the steps are the same
    ///   but nothing waits for the disk.
    public init(spool: Spool, durable: Bool) {
        self.spool = spool
        self.durable = durable
    }

    /// Commits `file` (its body completely written) with `record`; calls `completion` once
    /// both are on stable storage, from the committer's queue.
    public func commit(_ file: SpoolFile, record: TaskRecord, completion: @escaping Completion) {
        let startDrain = state.withLock { state -> Bool in
            state.pending.append(Pending(file: file, record: record, completion: completion))
            if state.draining { return false }
            state.draining = true
            return true
        }
        if startDrain { queue.async { self.drain() } }
    }

    private func drain() {
        while true {
            let group = state.withLock { state -> [Pending] in
                let taken = state.pending
                state.pending.removeAll()
                if taken.isEmpty { state.draining = false }
                return taken
            }
            if group.isEmpty { return }
            commitGroup(group)
        }
    }

    private func commitGroup(_ group: [Pending]) {
        let outcomes = Mutex([Result<Void, SystemError>](repeating: .success(()), count: group.count))
        if durable {
            DispatchQueue.concurrentPerform(iterations: group.count) { index in
                let result = prepare(group[index])
                outcomes.withLock { $0[index] = result }
            }
        } else {
            for index in group.indices {
                let result = prepare(group[index])
                outcomes.withLock { $0[index] = result }
            }
        }
        var results = outcomes.withLock { $0 }
        if durable && results.contains(where: { if case .success = $0 { true } else { false } }) {
            do {
                try spool.syncDirectory()
            } catch {
                for index in results.indices where (try? results[index].get()) != nil {
                    results[index] = .failure(error)
                    try? spool.removeTask(id: group[index].record.id)
                }
            }
        }
        for (pending, result) in zip(group, results) { pending.completion(result) }
    }

    /// Syncs one upload's bytes and writes its record; on failure leaves nothing behind.
    private func prepare(_ pending: Pending) -> Result<Void, SystemError> {
        let id = pending.record.id
        do {
            try spool.commit(pending.file, record: pending.record, durable: durable)
            return .success(())
        } catch {
            pending.file.discard()
            try? spool.removeTask(id: id)
            return .failure(error)
        }
    }
}
