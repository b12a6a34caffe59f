/// Why an upload was refused or given up, before or while its body arrived, or at commit.
public enum UploadRefusal: Error, Sendable, Equatable {
    /// The body passed `--max-body-size`.
    case bodyTooLarge(limit: UInt64)
    /// The token's own rules (its `max_upload`, say).
    case forbidden(AccessRefusal)
    /// No room in the queue or the spool, in all or for this owner.
    case capacity(Capacity.Refusal)
    /// The disk is full, or would eat into `--min-free-disk`.
    case insufficientStorage(String)
    /// The spool or the store failed otherwise.
    case storage(String)
    /// The `Idempotency-Key` names an upload to another destination, or of another size.
    case idempotencyKeyMismatch(id: String)
    /// Another upload with this `Idempotency-Key` is being received right now.
    case idempotencyKeyInProgress
    /// The bytes are not those a digest field (`Content-Digest`, `Repr-Digest`) announced.
    case digestMismatch(field: String, algorithm: DigestAlgorithm)
    /// A tus PATCH's bytes do not match its `Upload-Checksum` (tus answers 460).
    case checksumMismatch(algorithm: DigestAlgorithm)
    /// A tus PATCH went past the upload's announced length.
    case beyondLength(UInt64)
    /// A newer request for the same tus upload took over; this one may write no more.
    case superseded

    /// The refusal for a failed write to the spool: a full disk is the client's 507.
    init(_ error: SystemError) {
        self = error.isNoSpace ? .insufficientStorage(error.description) : .storage(error.description)
    }

    /// The refusal for a failed write to the store: a full disk is the client's 507.
    init(_ error: StoreError) {
        self = error.isNoSpace ? .insufficientStorage(error.description) : .storage(error.description)
    }
}
