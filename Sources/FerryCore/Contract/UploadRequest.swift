/// A validated upload: where the bytes go and with which owner and mode.
public struct UploadRequest: Sendable, Equatable, Codable {
    /// The Incus instance (`IsHostname` rules), or `REMOTE:INSTANCE` for an instance on an
    /// allowed remote: the name as the client gave it, which is also what `incus file push`
    /// takes.
    public var container: String
    /// The full absolute destination path, file name included.
    public var path: String
    /// Permission bits, at most `0o7777`.
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// Whether missing parent directories are created (`incus file push -p`).
    public var createDirectories: Bool

    public init(
        container: String, path: String, mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
        createDirectories: Bool = false
    ) {
        self.container = container
        self.path = path
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.createDirectories = createDirectories
    }

    /// The base name of ``path``: the file's name in the container.
    public var fileName: String {
        String(path.split(separator: "/").last ?? "")
    }

    /// The remote of ``container`` (nil: this host's daemon).
    public var remote: String? { Self.split(container).remote }

    /// The instance of ``container``, without its remote.
    public var instance: String { Self.split(container).instance }

    /// `REMOTE:INSTANCE` as its two parts (no remote: this host's daemon).
    public static func split(_ container: String) -> (remote: String?, instance: String) {
        guard let colon = container.firstIndex(of: ":") else { return (nil, container) }
        return (String(container[..<colon]), String(container[container.index(after: colon)...]))
    }

    /// ``mode`` as four octal digits (`0644`), the form `incus --mode` takes.
    public var octalMode: String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
