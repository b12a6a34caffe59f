import Dispatch
import Glibc
import Logging
import Metrics

/// tus uploads: created, continued, asked after, terminated, expired and resumed after a
/// restart. An upload in progress is a task in state `receiving` (its id is the task's id)
/// whose file is named from the start; its last byte makes it `queued` like any upload.
extension DeliveryService {
    /// What a tus creation asks for, as decided from its head.
    public struct ResumablePlan: Sendable {
        public var request: UploadRequest
        /// `Upload-Length`; nil with `Upload-Defer-Length: 1`.
        public var length: UInt64?
        public var metadata: String?
        public var owner: String?
        public var quota: Capacity.Quota?
        public var limits: ResumableLimits
        /// `Repr-Digest` on the creation: the whole upload.
        public var reprDigests: ExpectedDigests
        /// Checks of the creation's own body (creation-with-upload).
        public var patchDigests: ExpectedDigests
        public var requestID: String?

        public init(
            request: UploadRequest, length: UInt64?, metadata: String?, owner: String?,
            quota: Capacity.Quota?,
            limits: ResumableLimits, reprDigests: ExpectedDigests, patchDigests: ExpectedDigests,
            requestID: String?
        ) {
            self.request = request
            self.length = length
            self.metadata = metadata
            self.owner = owner
            self.quota = quota
            self.limits = limits
            self.reprDigests = reprDigests
            self.patchDigests = patchDigests
            self.requestID = requestID
        }
    }

    /// Why a PATCH may not begin.
    public enum PatchRefusal: Error, Sendable, Equatable {
        /// Terminated, expired or complete in the meantime.
        case gone
        /// `Upload-Offset` is not the upload's offset; `current` when it is durable.
        case offsetMismatch(current: UInt64?)
        /// `Upload-Length` conflicts with the upload's.
        case badLength(String)
        /// Another request holds the upload while it stores its end (tusd answers 423).
        case busy
        case refused(UploadRefusal)
    }

    static let resumableCreated = Counter(
        label: "ferry_tus_uploads_total", dimensions: [("event", "created")])
    static let resumableCompleted = Counter(
        label: "ferry_tus_uploads_total", dimensions: [("event", "completed")])
    static let resumableTerminated = Counter(
        label: "ferry_tus_uploads_total", dimensions: [("event", "terminated")])
    static let resumableExpired = Counter(
        label: "ferry_tus_uploads_total", dimensions: [("event", "expired")])

    // MARK: Creation

    /// Begins a tus upload whose head was judged acceptable: reserves its place and its
    /// announced bytes, promises it free disk and creates its file. The returned request
    /// takes the creation's body (maybe none); the upload is stored, and known, when it
    /// commits.
    public func createResumable(_ plan: ResumablePlan) throws(UploadRefusal) -> ResumablePatch {
        let id = TaskID.make(node: settings.nodeID)
        let announced = plan.length ?? 0
        try promiseDisk(announced, keeping: plan.limits.minFreeDisk)
        do {
            try capacity.reserve(bytes: announced, owner: plan.owner, quota: plan.quota)
        } catch {
            spool.settle(announced)
            throw .capacity(error)
        }
        let descriptor: Int32
        do {
            descriptor = try spool.createResumable(id: id)
        } catch {
            spool.settle(announced)
            capacity.cancel(bytes: announced, owner: plan.owner)
            throw UploadRefusal(error)
        }
        let sequence = nextSequence.withLock { next in
            defer { next += 1 }
            return next
        }
        let upload = ResumableUpload(
            id: id, request: plan.request, owner: plan.owner, metadata: plan.metadata,
            reprDigests: plan.reprDigests, sequence: sequence, requestID: plan.requestID,
            state: .init(
                offset: 0, durableOffset: 0, length: plan.length, sha256: RunningDigest(.sha256),
                touchedAt: WallClock.now(), reservedBytes: announced, promisedLeft: announced))
        let patch = ResumablePatch(
            upload: upload, service: self, descriptor: descriptor, startOffset: 0,
            startSHA256: RunningDigest(.sha256), length: plan.length, isCreation: true, limits: plan.limits,
            patchDigests: plan.patchDigests, reprDigests: ExpectedDigests())
        upload.state.withLock { $0.patch = patch }
        return patch
    }

    // MARK: Look-ups

    /// tus upload `id` as `viewer` may see it: a token sees only its own (nil: all).
    public func resumable(id: String, viewer: String?) -> ResumableUpload? {
        guard let upload = resumables.withLock({ $0[id] }), viewer == nil || upload.owner == viewer else {
            return nil
        }
        return upload
    }

    /// Where `upload` stands, for HEAD: an older PATCH still open is ended, and the offset
    /// shown is on stable storage first.
    ///
    /// - Returns: nil when it ended in the meantime.
    public func position(of upload: ResumableUpload) throws(UploadRefusal) -> ResumableUpload.Position? {
        try settle(upload, takingOver: true)
    }

    /// Stores (and with `--fsync` syncs) what `upload`'s requests wrote, unless a request
    /// is writing now (it stores its own at its end) and `takingOver` is false.
    @discardableResult
    func settle(_ upload: ResumableUpload, takingOver: Bool) throws(UploadRefusal) -> ResumableUpload
        .Position?
    {
        let path = spool.dataPath(id: upload.id)
        return try upload.state.withLock { state throws(UploadRefusal) -> ResumableUpload.Position? in
            guard !state.ended else { return nil }
            if takingOver { state.takeOver(file: path) }
            let position = ResumableUpload.Position(
                offset: state.offset, length: state.length, expiresAt: state.touchedAt + settings.uploadExpiry
            )
            guard state.patch == nil else { return position }
            if state.offset == state.length {
                // Every byte is in, but the request that brought the last one did not end
                // the upload (it was taken over, cut off, or storing its end failed): a
                // client that sees its whole length would wait forever. It ends here.
                do throws(UploadRefusal) {
                    _ = try complete(upload, &state, checking: upload.reprDigests, rollingBackTo: nil)
                } catch .digestMismatch {
                    // Not the bytes the creation's Repr-Digest named, and no request's bytes
                    // to take back: the upload cannot succeed.
                    try removeStored(upload, &state)
                    logger.error(
                        "tus upload removed: its bytes do not match the creation's Repr-Digest",
                        metadata: ["task": "\(upload.id)"])
                }
                return nil
            }
            if state.durableOffset < state.offset {
                try store(state.offset, length: state.length, of: upload)
                state.durableOffset = state.offset
            }
            return position
        }
    }

    /// Makes `offset` bytes of `upload` durable: its file synced (with `--fsync`), then
    /// the offset stored.
    private func store(_ offset: UInt64, length: UInt64?, of upload: ResumableUpload) throws(UploadRefusal) {
        guard try store(UploadProgress(offset: offset, length: length), of: upload) != nil else {
            throw .storage("upload \(upload.id) is no longer receiving")
        }
    }

    /// Syncs `upload`'s file (with `--fsync`, unless `bytesSynced`: a creation has just
    /// synced it with its name), then stores `progress`.
    ///
    /// - Returns: the record after it; nil when the upload is no longer receiving.
    private func store(_ progress: UploadProgress, of upload: ResumableUpload, bytesSynced: Bool = false)
        throws(UploadRefusal) -> TaskRecord?
    {
        if durable && !bytesSynced {
            do throws(SystemError) {
                try spool.syncData(id: upload.id)
            } catch {
                throw UploadRefusal(error)
            }
        }
        do throws(StoreError) {
            return try store.advance(id: upload.id, progress, durable: durable)
        } catch {
            throw UploadRefusal(error)
        }
    }

    // MARK: PATCH

    /// Begins a PATCH of `upload` at `offset`: an older PATCH still open is ended first.
    ///
    /// - Parameters:
    ///   - length: `Upload-Length` on this PATCH (for a deferred length).
    ///   - announced: the PATCH's `Content-Length` (nil: chunked).
    public func beginPatch(
        _ upload: ResumableUpload, at offset: UInt64, length: UInt64?, announced: UInt64?,
        limits: ResumableLimits,
        patchDigests: ExpectedDigests, reprDigests: ExpectedDigests
    ) throws(PatchRefusal) -> ResumablePatch {
        let path = spool.dataPath(id: upload.id)
        // Never waits on the loop: the lock is held while an end is stored (a sync).
        let begun = try upload.state.withLockIfAvailable { state throws(PatchRefusal) -> ResumablePatch in
            guard !state.ended else { throw .gone }
            // The offset first: a PATCH at the wrong one changes nothing, not even an older
            // PATCH still open.
            let current = state.patch.map { $0.checksPatch ? $0.startOffset : state.offset } ?? state.offset
            guard offset == current else {
                throw .offsetMismatch(current: state.durableOffset == current ? current : nil)
            }
            state.takeOver(file: path)
            if let length {
                if let known = state.length, known != length {
                    throw .badLength("Upload-Length \(length) differs from the upload's \(known)")
                }
                guard length >= state.offset else {
                    throw .badLength(
                        "Upload-Length \(length) is less than the \(state.offset) bytes received")
                }
                guard length <= limits.maxBodySize else {
                    throw .refused(.bodyTooLarge(limit: limits.maxBodySize))
                }
            }
            if let announced, let total = length ?? state.length, offset + announced > total {
                throw .refused(.beyondLength(total))
            }
            // A deferred length, announced now: its bytes are reserved and its disk promised
            // as a creation's would have been.
            var reserved: UInt64 = 0
            var promised: UInt64 = 0
            if let length, state.length == nil {
                reserved = length > state.reservedBytes ? length - state.reservedBytes : 0
                if let refusal = capacity.grow(by: reserved, owner: upload.owner, quota: limits.quota) {
                    throw .refused(.capacity(refusal))
                }
                do throws(UploadRefusal) {
                    try promiseDisk(length - state.offset, keeping: limits.minFreeDisk)
                } catch {
                    capacity.releaseBytes(reserved, owner: upload.owner)
                    throw .refused(error)
                }
                promised = length - state.offset
            }
            let descriptor: Int32
            do throws(SystemError) {
                descriptor = try spool.openResumable(id: upload.id, at: state.offset)
            } catch {
                capacity.releaseBytes(reserved, owner: upload.owner)
                spool.settle(promised)
                throw .refused(UploadRefusal(error))
            }
            if let length { state.length = length }
            state.reservedBytes += reserved
            state.promisedLeft += promised
            let patch = ResumablePatch(
                upload: upload, service: self, descriptor: descriptor, startOffset: state.offset,
                startSHA256: state.sha256, length: state.length, isCreation: false, limits: limits,
                patchDigests: patchDigests, reprDigests: reprDigests)
            state.patch = patch
            state.touchedAt = WallClock.now()
            return patch
        }
        guard let begun else { throw .busy }
        return begun
    }

    /// The end of a request's body: its checks, its bytes made durable, and the upload
    /// stored (a creation) or moved on, or made a task (its last byte). Runs on the
    /// request's hasher queue, with every byte hashed.
    func finishPatch(_ patch: ResumablePatch, digests: [RunningDigest]) -> Result<PatchOutcome, UploadRefusal>
    {
        let upload = patch.upload
        let path = spool.dataPath(id: upload.id)
        return upload.state.withLock { state -> Result<PatchOutcome, UploadRefusal> in
            guard state.patch === patch, !state.ended else { return .failure(.superseded) }
            state.patch = nil
            if let refusal = patch.failedCheck(patch.patchDigests(of: digests)) {
                if patch.isCreation {
                    discardCreated(upload, &state)
                } else {
                    state.rollBack(to: patch.startOffset, sha256: patch.startSHA256, file: path)
                }
                return .failure(refusal)
            }
            state.sha256 = patch.sha256(of: digests)
            state.touchedAt = WallClock.now()
            var stored = !patch.isCreation
            do throws(UploadRefusal) {
                if patch.isCreation {
                    try storeCreated(upload, state)
                    stored = true
                    state.durableOffset = state.offset
                    resumables.withLock { $0[upload.id] = upload }
                    Self.resumableCreated.increment()
                }
                if state.offset == state.length {
                    return try complete(
                        upload, &state, checking: patch.wholeUploadDigests,
                        rollingBackTo: (patch.startOffset, patch.startSHA256), bytesSynced: patch.isCreation
                    ).map { .success($0) } ?? .failure(.storage("upload \(upload.id) is no longer receiving"))
                }
                if !patch.isCreation {
                    try store(state.offset, length: state.length, of: upload)
                    state.durableOffset = state.offset
                }
            } catch {
                // A creation that fails leaves nothing: its client never learnt the upload's
                // name. Once stored, it goes as a termination would.
                if patch.isCreation {
                    if stored {
                        try? removeStored(upload, &state)
                    } else {
                        discardCreated(upload, &state)
                    }
                }
                return .failure(error)
            }
            return .success(
                PatchOutcome(
                    offset: state.offset, length: state.length,
                    expiresAt: state.touchedAt + settings.uploadExpiry, completed: nil))
        }
    }

    /// Stores a new upload, with the bytes its creation brought (synced with its name).
    private func storeCreated(_ upload: ResumableUpload, _ state: ResumableUpload.State) throws(UploadRefusal)
    {
        if durable {
            do throws(SystemError) {
                try spool.syncData(id: upload.id)
                try spool.syncDirectory()
            } catch {
                throw UploadRefusal(error)
            }
        }
        var record = TaskRecord(
            id: upload.id, sequence: upload.sequence, request: upload.request, bytes: state.offset,
            createdAt: state.touchedAt, requestID: upload.requestID, owner: upload.owner)
        record.state = .receiving
        record.length = state.length
        record.uploadMetadata = upload.metadata
        do throws(StoreError) {
            try store.insert([record], durable: durable)
        } catch {
            throw UploadRefusal(error)
        }
        events.publish(TaskEvent(record))
    }

    /// The last byte is in: checks the whole upload's digests and makes it a queued task.
    /// A mismatch takes back the bytes from `rollingBackTo` (the last request's start).
    ///
    /// - Returns: the outcome; nil when the store no longer knows the upload.
    private func complete(
        _ upload: ResumableUpload, _ state: inout ResumableUpload.State, checking expected: ExpectedDigests,
        rollingBackTo start: (offset: UInt64, sha256: RunningDigest?)?, bytesSynced: Bool = false
    ) throws(UploadRefusal) -> PatchOutcome? {
        var computed: [DigestAlgorithm: [UInt8]] = [:]
        if let sha256 = state.sha256, !expected.algorithms.contains(.sha512) {
            computed[.sha256] = sha256.finalize()
        } else {
            // The hash was lost with a restart (or SHA-512 was asked for only now): read
            // the file once.
            do throws(SystemError) {
                computed = try spool.digests(id: upload.id, expected.algorithms.union([.sha256]))
            } catch {
                throw UploadRefusal(error)
            }
        }
        if let mismatch = expected.mismatch(computed) {
            if let start {
                state.rollBack(to: start.offset, sha256: start.sha256, file: spool.dataPath(id: upload.id))
            }
            throw .digestMismatch(field: mismatch.field, algorithm: mismatch.algorithm)
        }
        let progress = UploadProgress(
            offset: state.offset, length: state.length, completedWith: computed[.sha256]?.hexString)
        guard let record = try store(progress, of: upload, bytesSynced: bytesSynced) else { return nil }
        state.ended = true
        resumables.withLock { $0[upload.id] = nil }
        spool.settle(state.promisedLeft)
        state.promisedLeft = 0
        // The task holds its size from now on: a deferred length may have reserved more
        // (bytes sent again after a checksum failed), and never less.
        if state.reservedBytes > record.bytes {
            capacity.releaseBytes(state.reservedBytes - record.bytes, owner: upload.owner)
        } else if state.reservedBytes < record.bytes {
            capacity.adopt(tasks: 0, bytes: record.bytes - state.reservedBytes, owner: upload.owner)
        }
        events.publish(TaskEvent(record), accepted: true)
        queue.enqueue(Self.task(for: record, in: spool))
        Self.resumableCompleted.increment()
        return PatchOutcome(
            offset: state.offset, length: record.bytes, expiresAt: state.touchedAt + settings.uploadExpiry,
            completed: record)
    }

    /// A request ended early (see ``ResumablePatch/abandon()``).
    func abandonPatch(_ patch: ResumablePatch) {
        let upload = patch.upload
        // What arrived is kept, and stored off the loop (a HEAD meanwhile waits for it). The
        // loop does not wait for the lock either: whoever holds it may be syncing.
        let settleLater = { @Sendable [self] in _ = try? settle(upload, takingOver: false) }
        switch upload.state.withLockIfAvailable({ end(abandoned: patch, &$0) }) {
        case true?: DispatchQueue.global().async(execute: settleLater)
        case false?: break
        case nil:
            DispatchQueue.global().async { [self] in
                if upload.state.withLock({ end(abandoned: patch, &$0) }) { settleLater() }
            }
        }
    }

    /// Ends `patch`, which stopped before its body's end, if it is still the upload's
    /// current request.
    ///
    /// - Returns: whether the upload has bytes to store (or to complete with) now.
    private func end(abandoned patch: ResumablePatch, _ state: inout ResumableUpload.State) -> Bool {
        let upload = patch.upload
        guard state.patch === patch, !state.ended else { return false }
        state.patch = nil
        if patch.isCreation {
            discardCreated(upload, &state)
            return false
        }
        if patch.checksPatch {
            state.rollBack(
                to: patch.startOffset, sha256: patch.startSHA256, file: spool.dataPath(id: upload.id))
        } else {
            state.sha256 = patch.carriedSHA256()
        }
        state.touchedAt = WallClock.now()
        // Every byte may be in: settling then completes the upload.
        return state.durableOffset < state.offset || state.offset == state.length
    }

    /// Forgets a creation that did not complete: nothing of it was stored.
    private func discardCreated(_ upload: ResumableUpload, _ state: inout ResumableUpload.State) {
        state.ended = true
        try? Posix.unlink(spool.dataPath(id: upload.id))
        capacity.cancel(bytes: state.reservedBytes, owner: upload.owner)
        spool.settle(state.promisedLeft)
        state.promisedLeft = 0
    }

    // MARK: Termination, expiry, recovery

    /// Removes `upload`, its bytes and its row (tus termination).
    ///
    /// - Returns: false when it had ended already.
    public func terminate(_ upload: ResumableUpload) throws(UploadRefusal) -> Bool {
        let removed = try remove(upload)
        if removed { Self.resumableTerminated.increment() }
        return removed
    }

    private func remove(_ upload: ResumableUpload) throws(UploadRefusal) -> Bool {
        try upload.state.withLock { state throws(UploadRefusal) -> Bool in
            guard !state.ended else { return false }
            try removeStored(upload, &state)
            return true
        }
    }

    /// Removes a stored upload's row and bytes and gives back what it holds (with its lock
    /// held).
    private func removeStored(_ upload: ResumableUpload, _ state: inout ResumableUpload.State)
        throws(UploadRefusal)
    {
        var unlinkFailure: SystemError?
        let removal: TaskUpdate
        do throws(StoreError) {
            removal = try store.remove(
                id: upload.id, if: { $0.state == .receiving },
                beforeCommit: { [spool] record in spool.removeData(id: record.id, failure: &unlinkFailure) })
        } catch {
            throw UploadRefusal(error)
        }
        if let unlinkFailure { throw UploadRefusal(unlinkFailure) }
        if let removed = removal.updated { events.publish(TaskEvent(removed, .deleted)) }
        state.patch = nil
        state.ended = true
        resumables.withLock { $0[upload.id] = nil }
        capacity.cancel(bytes: state.reservedBytes, owner: upload.owner)
        spool.settle(state.promisedLeft)
        state.promisedLeft = 0
    }

    /// Removes tus uploads that no request touched for `--upload-expiry`.
    ///
    /// - Returns: how many.
    @discardableResult
    public func expireResumables(now: Double = WallClock.now()) -> Int {
        let cutoff = now - settings.uploadExpiry
        // The uploads' locks are taken after the registry's is let go: an upload's end takes
        // them the other way round.
        let stale = resumables.withLock { Array($0.values) }.filter { upload in
            upload.state.withLock { $0.patch == nil && $0.touchedAt < cutoff }
        }
        var expired = 0
        for upload in stale {
            do {
                if try remove(upload) {
                    expired += 1
                    Self.resumableExpired.increment()
                    logger.info("tus upload expired", metadata: ["task": "\(upload.id)"])
                }
            } catch {
                logger.error(
                    "cannot expire tus upload", metadata: ["task": "\(upload.id)", "error": "\(error)"])
            }
        }
        return expired
    }

    /// Takes back a tus upload found in the store at start-up. Bytes past the stored
    /// offset were never acknowledged: they are cut off. A file shorter than the offset (a
    /// damaged disk) resumes from what it holds: the client sends the rest again.
    func resume(_ record: TaskRecord, size: UInt64?) -> Bool {
        guard let size else { return false }
        var record = record
        if size < record.bytes {
            logger.error(
                "tus upload's file is shorter than its stored offset; it resumes from the file",
                metadata: ["task": "\(record.id)", "offset": "\(record.bytes)", "file": "\(size)"])
            record.bytes = size
            _ = try? store.advance(
                id: record.id, UploadProgress(offset: size, length: record.length), durable: durable)
        } else if size > record.bytes {
            _ = truncate(spool.dataPath(id: record.id), off_t(record.bytes))
        }
        let reserved = max(record.length ?? record.bytes, record.bytes)
        capacity.adopt(tasks: 1, bytes: reserved, owner: record.owner)
        // Free disk for the rest, if there is any to promise (a restart refuses nothing).
        let rest = record.length.map { $0 - record.bytes } ?? 0
        let promised: UInt64
        do throws(SystemError) {
            promised = try spool.promise(rest, keeping: 0) == nil ? rest : 0
        } catch {
            promised = 0
        }
        let upload = ResumableUpload(
            id: record.id, request: record.request, owner: record.owner,
            metadata: record.uploadMetadata, reprDigests: ExpectedDigests(), sequence: record.sequence,
            requestID: record.requestID,
            state: .init(
                offset: record.bytes, durableOffset: record.bytes, length: record.length,
                sha256: record.bytes == 0 ? RunningDigest(.sha256) : nil, touchedAt: record.updatedAt,
                reservedBytes: reserved, promisedLeft: promised))
        resumables.withLock { $0[record.id] = upload }
        return true
    }
}
