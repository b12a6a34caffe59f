/// What an upload is, and the bounds its body must keep, as decided from its head.
public struct UploadPlan: Sendable {
    public var request: UploadRequest
    /// The announced `Content-Length`; nil for a chunked body.
    public var announcedLength: UInt64?
    public var idempotencyKey: String?
    /// The token uploading (nil without `--tokens`): its quota counts the upload.
    public var owner: String?
    public var quota: Capacity.Quota?
    /// `--max-body-size`.
    public var maxBodySize: UInt64
    /// The token's own `max_upload`, and how to refuse a body past it.
    public var tokenLimit: (bytes: UInt64, refusal: AccessRefusal)?
    /// `--min-free-disk`: free space no upload may use.
    public var minFreeDisk: UInt64
    /// The `X-Request-Id`, kept with the task.
    public var requestID: String?
    /// Digests the client announced for the body (RFC 9530), checked at its end.
    public var expectedDigests: ExpectedDigests

    public init(
        request: UploadRequest, announcedLength: UInt64?, idempotencyKey: String?, owner: String?,
        quota: Capacity.Quota?, maxBodySize: UInt64, tokenLimit: (bytes: UInt64, refusal: AccessRefusal)?,
        minFreeDisk: UInt64, requestID: String?, expectedDigests: ExpectedDigests = ExpectedDigests()
    ) {
        self.expectedDigests = expectedDigests
        self.request = request
        self.announcedLength = announcedLength
        self.idempotencyKey = idempotencyKey
        self.owner = owner
        self.quota = quota
        self.maxBodySize = maxBodySize
        self.tokenLimit = tokenLimit
        self.minFreeDisk = minFreeDisk
        self.requestID = requestID
    }
}

/// What ``DeliveryService/begin(_:)`` decided.
public enum UploadAdmission: Sendable {
    /// The body may come: feed it to this upload.
    case receiving(IncomingUpload)
    /// The `Idempotency-Key` was used for this very upload already: its task, unchanged.
    case repeated(TaskRecord)
}
