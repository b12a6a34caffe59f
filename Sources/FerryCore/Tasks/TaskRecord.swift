/// Where a task is in its life.
public enum TaskState: String, Codable, Sendable, CaseIterable {
    /// A resumable (tus) upload whose bytes are still arriving: ``TaskRecord/bytes`` is
    /// the offset stored so far. It becomes `queued` when the last byte is in.
    case receiving
    case queued, pushing, retrying, delivered, failed

    /// Whether the task will not be pushed again unless someone asks.
    public var isFinished: Bool { self == .delivered || self == .failed }
}

/// Everything known about one accepted upload; persisted as `ID.json` in the spool.
public struct TaskRecord: Codable, Sendable, Equatable {
    public var id: String
    /// Acceptance order: recovery queues tasks again in this order.
    public var sequence: UInt64
    public var state: TaskState
    public var attempts: Int
    public var lastError: String?
    public var request: UploadRequest
    public var bytes: UInt64
    /// Seconds since 1970.
    public var createdAt: Double
    public var updatedAt: Double
    public var idempotencyKey: String?
    /// The request id of the upload that created the task, for following it through logs.
    public var requestID: String?
    /// The name of the token that uploaded it (nil without `--tokens`); a token sees only
    /// its own tasks.
    public var owner: String?
    /// The SHA-256 of the bytes, in hex (nil for tasks accepted before Ferry computed it,
    /// and while receiving).
    public var sha256: String?
    /// While receiving: the length the upload announced (nil: not announced yet).
    public var length: UInt64?
    /// While receiving: tus's `Upload-Metadata` as the client sent it, to be shown back.
    public var uploadMetadata: String?

    public init(
        id: String, sequence: UInt64, request: UploadRequest, bytes: UInt64, createdAt: Double,
        idempotencyKey: String? = nil, requestID: String? = nil, owner: String? = nil
    ) {
        self.id = id
        self.sequence = sequence
        self.state = .queued
        self.attempts = 0
        self.lastError = nil
        self.request = request
        self.bytes = bytes
        self.createdAt = createdAt
        self.updatedAt = createdAt
        self.idempotencyKey = idempotencyKey
        self.requestID = requestID
        self.owner = owner
    }
}
