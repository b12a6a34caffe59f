import Dispatch
import Synchronization

/// Makes accepted uploads durable in groups: everything that arrives while one group is
/// being committed goes into the next, sharing its directory sync and its one transaction.
///
/// One commit: the bytes of every upload in the group are synced (in parallel: the file
/// system shares journal commits), the directory once, and then all the group's tasks are
/// stored in one transaction, itself synced once. Only then is each caller told (and may
/// answer 202). The two steps are a pipeline: one group's transaction runs while the next
/// group's files are synced. Runs on its own queue, never on an event loop. Without `durable` the steps
/// are the same but nothing waits for the disk.
public final class GroupCommitter: Sendable {
    public typealias Completion = @Sendable (Result<Void, UploadRefusal>) -> Void

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
    private let store: any TaskStore
    private let durable: Bool
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "ferry.group-commit")
    private let storeQueue = DispatchQueue(label: "ferry.group-commit.store")

    /// - Parameter durable: whether to sync (`--fsync`); without it the steps are the same
    ///   but nothing waits for the disk.
    public init(spool: Spool, store: any TaskStore, durable: Bool) {
        self.spool = spool
        self.store = store
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
        let outcomes = Mutex([UploadRefusal?](repeating: nil, count: group.count))
        if durable {
            DispatchQueue.concurrentPerform(iterations: group.count) { index in
                let refusal = finish(group[index])
                outcomes.withLock { $0[index] = refusal }
            }
        } else {
            for index in group.indices {
                let refusal = finish(group[index])
                outcomes.withLock { $0[index] = refusal }
            }
        }
        let refusals = outcomes.withLock { $0 }
        let kept = group.indices.filter { refusals[$0] == nil }
        guard !kept.isEmpty else { return finishAll(group, refusals) }
        // The names of the data files are durable before the tasks that point at them.
        if durable {
            do {
                try spool.syncDirectory()
            } catch {
                return fail(group, kept, refusals, UploadRefusal(error))
            }
        }
        let storeGroup: @Sendable () -> Void = { [self] in
            do throws(StoreError) {
                try store.insert(kept.map { group[$0].record }, durable: durable)
            } catch {
                return fail(group, kept, refusals, UploadRefusal(error))
            }
            finishAll(group, refusals)
        }
        // Durable: the transaction on a queue of its own, so that while it waits for its
        // sync the next group's files are synced (groups are stored in the order they were
        // synced). Without syncs nothing waits, and the hop would only add a thread switch
        // to every 202.
        if durable { storeQueue.async(execute: storeGroup) } else { storeGroup() }
    }

    /// Refuses the `kept` uploads of `group` with `refusal` and removes their bytes.
    private func fail(
        _ group: [Pending], _ kept: [Int], _ refusals: [UploadRefusal?], _ refusal: UploadRefusal
    ) {
        var refusals = refusals
        for index in kept {
            refusals[index] = refusal
            try? spool.removeData(id: group[index].record.id)
        }
        finishAll(group, refusals)
    }

    private func finishAll(_ group: [Pending], _ refusals: [UploadRefusal?]) {
        for (pending, refusal) in zip(group, refusals) {
            pending.completion(refusal.map { .failure($0) } ?? .success(()))
        }
    }

    /// Closes one upload's file (synced with `durable`); on failure leaves nothing behind.
    private func finish(_ pending: Pending) -> UploadRefusal? {
        do {
            try spool.finish(pending.file, durable: durable)
            return nil
        } catch {
            pending.file.discard()
            return UploadRefusal(error)
        }
    }
}
