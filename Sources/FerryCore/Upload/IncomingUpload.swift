import Synchronization

/// One upload while its body arrives: everything it holds, and the only place that gives
/// it back.
///
/// Begun by ``DeliveryService/begin(_:)``, which takes, in order, the idempotency claim,
/// the promise of free disk, the place and bytes in the queue's capacity, and the spool
/// file. The HTTP side feeds it bytes (``admit(_:)``, ``write(_:using:)``) and ends it
/// with ``commit(completion:)`` or ``abandon()``. Whatever it holds when it is abandoned
/// (at any step, also half-way through beginning) goes back in ``abandon()``, once.
///
/// Used by one thread at a time (the event loop of its connection); the commit completes
/// on the committer's queue.
public final class IncomingUpload: @unchecked Sendable {
    public let id: String
    public let plan: UploadPlan
    /// Body bytes counted so far.
    public private(set) var received: UInt64 = 0

    private let service: DeliveryService
    /// SHA-256 of the body (kept with the task), and whatever the client's digests need.
    private let hasher: StreamHasher
    private var file: SpoolFile?
    private var claimedKey = false
    /// Of the free space promised to the announced body, what is not written yet.
    private var promisedLeft: UInt64 = 0
    /// Bytes reserved in the capacity: the announced length, or what a chunked body has
    /// brought so far.
    private var reservedBytes: UInt64 = 0
    private var reservedPlace = false
    private var ended = false

    init(id: String, plan: UploadPlan, service: DeliveryService) {
        self.id = id
        self.plan = plan
        self.service = service
        let algorithms = plan.expectedDigests.algorithms.union([.sha256])
        hasher = StreamHasher(algorithms.map(RunningDigest.init))
    }

    // MARK: Beginning (by the service)

    func holdClaim() { claimedKey = true }

    func holdPromise(_ bytes: UInt64) { promisedLeft = bytes }

    func holdReservation(_ bytes: UInt64) {
        reservedPlace = true
        reservedBytes = bytes
    }

    func holdFile(_ file: SpoolFile) { self.file = file }

    // MARK: The body

    /// Counts `count` more body bytes against the limits; a chunked body reserves them as
    /// they come.
    ///
    /// - Returns: why the body may not go on, or nil.
    public func admit(_ count: Int) -> UploadRefusal? {
        let count = UInt64(count)
        received += count
        if received > plan.maxBodySize { return .bodyTooLarge(limit: plan.maxBodySize) }
        if let limit = plan.tokenLimit, received > limit.bytes { return .forbidden(limit.refusal) }
        if plan.announcedLength == nil {
            if let refusal = service.capacity.grow(by: count, owner: plan.owner, quota: plan.quota) {
                return .capacity(refusal)
            }
            reservedBytes += count
        }
        return nil
    }

    /// Writes `count` admitted bytes through `write`, which is given the spool file's
    /// descriptor and returns the bytes it wrote, to be hashed. A chunked body is first checked against `--min-free-disk`, counting
    /// what other uploads were promised.
    ///
    /// - Returns: why the body may not go on, or nil.
    public func write(_ count: Int, using write: (Int32) throws(SystemError) -> any HashableBytes)
        -> UploadRefusal?
    {
        guard let file else { return .storage("the upload has ended") }
        let count = UInt64(count)
        if plan.announcedLength == nil,
            let reason = service.spool.refusalOfUnpromised(count, keeping: plan.minFreeDisk)
        {
            return .insufficientStorage(reason)
        }
        do {
            hasher.feed(try write(file.descriptor))
        } catch {
            return UploadRefusal(error)
        }
        file.wrote(Int(count), durable: service.durable)
        let kept = min(count, promisedLeft)
        promisedLeft -= kept
        service.spool.settle(kept)
        return nil
    }

    // MARK: The end

    /// Makes the upload a task: its bytes and record durable (with `--fsync`), then queued.
    /// `completion` gets the task from the committer's queue, or why it could not be kept
    /// (then nothing of it is left): also when the bytes do not match a digest the client
    /// announced. The hash is finished off the loop, on its own queue.
    public func commit(completion: @escaping @Sendable (Result<TaskRecord, UploadRefusal>) -> Void) {
        guard !ended, let file else { return completion(.failure(.storage("the upload has ended"))) }
        ended = true
        // All written: whatever of the promise is left was never needed.
        service.spool.settle(promisedLeft)
        promisedLeft = 0
        self.file = nil
        let (owner, reservedBytes, key) = (plan.owner, reservedBytes, claimedKey ? plan.idempotencyKey : nil)
        let (plan, received) = (plan, received)
        let giveBack: @Sendable () -> Void = { [service] in
            // The task is stored (or not): either way the key is free again, the store
            // answers for it from now on.
            if let key { service.claims.release(key, owner: owner) }
        }
        hasher.whenHashed { [service] digests in
            let computed = digests.finalized
            if let mismatch = plan.expectedDigests.mismatch(computed) {
                file.discard()
                giveBack()
                service.capacity.cancel(bytes: reservedBytes, owner: owner)
                return completion(
                    .failure(.digestMismatch(field: mismatch.field, algorithm: mismatch.algorithm)))
            }
            service.accept(file, plan: plan, bytes: received, sha256: computed[.sha256]?.hexString) {
                result in
                giveBack()
                switch result {
                case .success(let record):
                    completion(.success(record))
                case .failure(let error):
                    service.capacity.cancel(bytes: reservedBytes, owner: owner)
                    completion(.failure(error))
                }
            }
        }
    }

    /// Gives back everything the upload holds and deletes its partial file. Idempotent:
    /// the second call, or one after ``commit(completion:)``, does nothing.
    public func abandon() {
        guard !ended else { return }
        ended = true
        service.spool.settle(promisedLeft)
        promisedLeft = 0
        file?.discard()
        file = nil
        if reservedPlace { service.capacity.cancel(bytes: reservedBytes, owner: plan.owner) }
        if claimedKey, let key = plan.idempotencyKey { service.claims.release(key, owner: plan.owner) }
    }
}
