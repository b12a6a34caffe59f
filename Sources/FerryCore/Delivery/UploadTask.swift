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

    /// The directory the file goes into, with a trailing `/`.
    public var destinationDirectory: String {
        let path = request.path
        guard let slash = path.lastIndex(of: "/") else { return "/" }
        return String(path[...slash])
    }

    /// Tasks with equal keys can be delivered by one `incus file push` call: same
    /// container, directory, owner, mode and `-p`.
    public var batchKey: String {
        let request = request
        return
            "\(request.container)\u{0}\(destinationDirectory)\u{0}\(request.uid):\(request.gid):\(request.mode):\(request.createDirectories)"
    }

    /// The file this task writes: no two tasks for it are pushed at once.
    var destinationKey: String {
        "\(request.container)\u{0}\(request.path)"
    }
}
