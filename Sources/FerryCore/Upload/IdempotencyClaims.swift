import Synchronization

/// `Idempotency-Key`s of uploads being received: held from the head until the task is
/// stored or the upload given up, so two uploads with one key cannot both be accepted.
///
/// A key belongs to the token that first used it (or, without `--tokens`, to the server):
/// another token's equal key is simply another key. Keys of accepted tasks are the
/// store's; this holds only those in flight, so memory follows the uploads in progress.
final class IdempotencyClaims: Sendable {
    /// What a key refers to.
    enum Claim: Equatable {
        /// New: the key is held for this upload until it is stored or given up.
        case claimed
        /// A task was already accepted with this key.
        case existing(TaskRecord)
        /// Another upload with this key is being received right now.
        case inProgress
    }

    private struct ScopedKey: Hashable {
        var owner: String?
        var key: String
    }

    private let store: any TaskStore
    private let inFlight = Mutex(Set<ScopedKey>())

    init(store: any TaskStore) {
        self.store = store
    }

    /// Claims `key` for an upload of `owner`.
    func claim(_ key: String, owner: String?) throws(StoreError) -> Claim {
        let scoped = ScopedKey(owner: owner, key: key)
        // The look-up happens under the lock: a commit stores the task before it lets go
        // of the key, so no second upload can slip between the two.
        return try inFlight.withLock { inFlight throws(StoreError) -> Claim in
            if inFlight.contains(scoped) { return .inProgress }
            if let record = try store.record(idempotencyKey: key, owner: owner) { return .existing(record) }
            inFlight.insert(scoped)
            return .claimed
        }
    }

    /// Lets go of a claimed key: its task is stored, or its upload given up.
    func release(_ key: String, owner: String?) {
        _ = inFlight.withLock { $0.remove(ScopedKey(owner: owner, key: key)) }
    }
}
