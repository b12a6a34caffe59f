/// An accepted upload waiting for delivery.
public struct UploadTask: Sendable, Equatable {
    public let id: String
    public let request: UploadRequest
    /// The complete spool file holding the bytes.
    public let sourcePath: String
    public let bytes: UInt64
    /// Push attempts made so far.
    public var attempts: Int

    public init(id: String, request: UploadRequest, sourcePath: String, bytes: UInt64, attempts: Int = 0) {
        self.id = id
        self.request = request
        self.sourcePath = sourcePath
        self.bytes = bytes
        self.attempts = attempts
    }
}
