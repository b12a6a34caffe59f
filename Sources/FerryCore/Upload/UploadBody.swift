/// An upload's bytes as the HTTP side feeds them: a whole body (``IncomingUpload``) or one
/// request's part of a resumable upload (``ResumablePatch``). Used by one thread at a time
/// (the event loop of its connection).
public protocol UploadBody: AnyObject {
    /// What a completed body becomes.
    associatedtype Outcome: Sendable

    /// The task's id.
    var id: String { get }
    /// Where the bytes go.
    var request: UploadRequest { get }
    /// The token whose upload it is (nil without `--tokens`).
    var owner: String? { get }
    /// Body bytes counted so far in this request.
    var received: UInt64 { get }
    /// Whether bytes that arrived before the body was cut off are kept (tus), so that
    /// what is gathered for writing is still written.
    var keepsCutOffBytes: Bool { get }

    /// Counts `count` more body bytes against the limits; nil when the body may go on.
    func admit(_ count: Int) -> UploadRefusal?

    /// Writes `count` admitted bytes through `write`, which is given the file's descriptor
    /// and returns the bytes it wrote (to be hashed); nil when the body may go on.
    func write(_ count: Int, using write: (Int32) throws(SystemError) -> any HashableBytes) -> UploadRefusal?

    /// The body is complete: keeps it; `completion` gets the outcome from another thread.
    func commit(completion: @escaping @Sendable (Result<Outcome, UploadRefusal>) -> Void)

    /// The body ended early (refused, cut off): gives back what is held. Idempotent.
    func abandon()
}

extension IncomingUpload: UploadBody {
    public typealias Outcome = TaskRecord

    public var request: UploadRequest { plan.request }
    public var owner: String? { plan.owner }
    public var keepsCutOffBytes: Bool { false }
}
