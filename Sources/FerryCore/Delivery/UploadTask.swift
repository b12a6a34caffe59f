/// An accepted upload waiting for delivery.
public struct UploadTask: Sendable, Equatable {
    public let id: String
    public let request: UploadRequest
    /// The complete spool file holding the bytes.
    public let sourcePath: String
    public let bytes: UInt64
    /// Push attempts made so far.
    public var attempts: Int
    /// The token whose upload this is (nil without `--tokens`); its quota counts the task.
    public let owner: String?
    /// Tasks with equal keys can be delivered by one `incus file push` call: same
    /// container, directory, owner, mode and `-p`. Computed once: the queue compares it
    /// often.
    public let batchKey: String
    /// The file this task writes: no two tasks for it are pushed at once.
    let destinationKey: String

    public init(
        id: String, request: UploadRequest, sourcePath: String, bytes: UInt64, attempts: Int = 0,
        owner: String? = nil
    ) {
        self.id = id
        self.owner = owner
        self.request = request
        self.sourcePath = sourcePath
        self.bytes = bytes
        self.attempts = attempts
        let directory = Self.directory(of: request.path)
        batchKey =
            "\(request.container)\u{0}\(directory)\u{0}\(request.uid):\(request.gid):\(request.mode):\(request.createDirectories)"
        destinationKey = "\(request.container)\u{0}\(request.path)"
    }

    /// The directory the file goes into, with a trailing `/`.
    public var destinationDirectory: String {
        Self.directory(of: request.path)
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "/" }
        return String(path[...slash])
    }
}
