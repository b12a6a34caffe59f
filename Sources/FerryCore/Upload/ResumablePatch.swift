import Dispatch
import Glibc

/// One request's bytes for a tus upload: a PATCH, or the body of the creating POST. It
/// writes at the upload's offset while it is the upload's current request, and on its end
/// keeps what arrived (see ``abandon()``).
///
/// Used by one thread at a time (its connection's event loop); its commit runs on its
/// hasher's queue.
public final class ResumablePatch: UploadBody, @unchecked Sendable {
    public typealias Outcome = PatchOutcome

    public let upload: ResumableUpload
    public var id: String { upload.id }
    public var request: UploadRequest { upload.request }
    public var owner: String? { upload.owner }
    public private(set) var received: UInt64 = 0
    /// A creation's body is not kept when cut off; a PATCH's is (unless checksummed).
    public var keepsCutOffBytes: Bool { !isCreation && !checksPatch }

    /// The offset it began at, and the upload's hash there.
    let startOffset: UInt64
    let startSHA256: RunningDigest?
    /// Whether this is the creating POST: then the upload is not stored (nor known to
    /// anyone) until this request ends well, and nothing is kept if it does not.
    let isCreation: Bool
    /// Whether this request's own bytes are checked (`Upload-Checksum`, `Content-Digest`):
    /// then bytes that cannot be checked are never kept.
    var checksPatch: Bool { !patchDigests.isEmpty }

    private let service: DeliveryService
    private let descriptor: Int32
    private let limits: ResumableLimits
    /// The length known when it began (a PATCH may announce a deferred one).
    private let length: UInt64?
    private let patchDigests: ExpectedDigests
    /// `Repr-Digest` on this request: the whole upload, checked if this one completes it.
    private let reprDigests: ExpectedDigests
    /// The upload's SHA-256 first (when known), then one per algorithm `patchDigests` names.
    private let hasher: StreamHasher
    private let carriesSHA256: Bool
    private var ended = false

    init(
        upload: ResumableUpload, service: DeliveryService, descriptor: Int32, startOffset: UInt64,
        startSHA256: RunningDigest?, length: UInt64?, isCreation: Bool, limits: ResumableLimits,
        patchDigests: ExpectedDigests, reprDigests: ExpectedDigests
    ) {
        self.upload = upload
        self.service = service
        self.descriptor = descriptor
        self.startOffset = startOffset
        self.startSHA256 = startSHA256
        self.length = length
        self.isCreation = isCreation
        self.limits = limits
        self.patchDigests = patchDigests
        self.reprDigests = reprDigests
        carriesSHA256 = startSHA256 != nil
        hasher = StreamHasher(
            (startSHA256.map { [$0] } ?? []) + patchDigests.algorithms.map(RunningDigest.init))
    }

    /// The upload's SHA-256 with every byte this request wrote (nil when not known).
    func carriedSHA256() -> RunningDigest? {
        carriesSHA256 ? hasher.hashed()[0] : nil
    }

    // MARK: The body

    public func admit(_ count: Int) -> UploadRefusal? {
        received += UInt64(count)
        let total = startOffset + received
        if let length, total > length { return .beyondLength(length) }
        if total > limits.maxBodySize { return .bodyTooLarge(limit: limits.maxBodySize) }
        if let limit = limits.tokenLimit, total > limit.bytes { return .forbidden(limit.refusal) }
        guard length == nil else { return nil }
        // A deferred length reserves what arrives, while this request may still write (an
        // upload that ended gives back only what it held then).
        let (capacity, owner, quota) = (service.capacity, upload.owner, limits.quota)
        return upload.state.withLock { state -> UploadRefusal? in
            guard state.patch === self, !state.ended else { return .superseded }
            if let refusal = capacity.grow(by: UInt64(count), owner: owner, quota: quota) {
                return .capacity(refusal)
            }
            state.reservedBytes += UInt64(count)
            return nil
        }
    }

    public func write(_ count: Int, using write: (Int32) throws(SystemError) -> any HashableBytes)
        -> UploadRefusal?
    {
        let count = UInt64(count)
        let (descriptor, hasher, service) = (self.descriptor, self.hasher, self.service)
        let minFreeDisk = limits.minFreeDisk
        return upload.state.withLock { state -> UploadRefusal? in
            guard state.patch === self, !state.ended else { return .superseded }
            // Bytes no promise covers (a deferred length, or a restart that found too little
            // free disk to promise) are checked against --min-free-disk as they come.
            if state.promisedLeft < count,
                let reason = service.spool.refusalOfUnpromised(count, keeping: minFreeDisk)
            {
                return .insufficientStorage(reason)
            }
            do throws(SystemError) {
                hasher.feed(try write(descriptor))
            } catch {
                return UploadRefusal(error)
            }
            state.offset += count
            let kept = min(count, state.promisedLeft)
            state.promisedLeft -= kept
            service.spool.settle(kept)
            return nil
        }
    }

    // MARK: The end

    public func commit(completion: @escaping @Sendable (Result<PatchOutcome, UploadRefusal>) -> Void) {
        guard !ended else { return completion(.failure(.superseded)) }
        ended = true
        hasher.whenHashed { [self] digests in
            // Off the hasher's queue: the end takes the upload's lock, and a request taking
            // over holds that lock while it waits for this queue (for the hash so far).
            DispatchQueue.global().async { [self] in
                let outcome = service.finishPatch(self, digests: digests)
                Posix.close(descriptor)
                completion(outcome)
            }
        }
    }

    /// What this request computed of its own bytes, by algorithm (the upload's SHA-256
    /// apart).
    func patchDigests(of digests: [RunningDigest]) -> [DigestAlgorithm: [UInt8]] {
        Array(digests.dropFirst(carriesSHA256 ? 1 : 0)).finalized
    }

    /// The upload's SHA-256 after this request, from the hashes it computed.
    func sha256(of digests: [RunningDigest]) -> RunningDigest? {
        carriesSHA256 ? digests[0] : nil
    }

    /// The first of this request's checks that `computed` fails.
    func failedCheck(_ computed: [DigestAlgorithm: [UInt8]]) -> UploadRefusal? {
        guard let mismatch = patchDigests.mismatch(computed) else { return nil }
        if mismatch.field == "Upload-Checksum" { return .checksumMismatch(algorithm: mismatch.algorithm) }
        return .digestMismatch(field: mismatch.field, algorithm: mismatch.algorithm)
    }

    /// The digests of the whole upload announced at its creation and on this request.
    var wholeUploadDigests: ExpectedDigests {
        var all = upload.reprDigests
        all.values += reprDigests.values
        return all
    }

    /// The request ended before its body did (the client went, or a limit refused it).
    /// What it wrote stays, and becomes durable shortly (the next HEAD waits for that),
    /// unless the bytes carried a checksum that can now never be checked, or this was the
    /// creating request (its client never learnt where the upload is).
    public func abandon() {
        guard !ended else { return }
        ended = true
        defer { Posix.close(descriptor) }
        service.abandonPatch(self)
    }
}

/// What a PATCH (or a creating POST) achieved.
public struct PatchOutcome: Sendable {
    public var offset: UInt64
    public var length: UInt64?
    /// Wall-clock seconds after which the upload is removed if no PATCH comes.
    public var expiresAt: Double
    /// The task, when this request brought the last byte.
    public var completed: TaskRecord?
}

/// The bounds of a tus upload, from the head that created it or continues it.
public struct ResumableLimits: Sendable {
    /// `--max-body-size`: of the whole upload.
    public var maxBodySize: UInt64
    /// The token's own `max_upload`, and how to refuse an upload past it.
    public var tokenLimit: (bytes: UInt64, refusal: AccessRefusal)?
    /// The token's quota in the policy in force now (a deferred length grows against it).
    public var quota: Capacity.Quota?
    /// `--min-free-disk`.
    public var minFreeDisk: UInt64

    public init(
        maxBodySize: UInt64, tokenLimit: (bytes: UInt64, refusal: AccessRefusal)?, quota: Capacity.Quota?,
        minFreeDisk: UInt64
    ) {
        self.maxBodySize = maxBodySize
        self.tokenLimit = tokenLimit
        self.quota = quota
        self.minFreeDisk = minFreeDisk
    }
}
