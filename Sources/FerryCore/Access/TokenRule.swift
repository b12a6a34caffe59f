/// What one token may do. Tokens are known only by the SHA-256 of their value.
public struct TokenRule: Sendable, Equatable {
    public var name: String
    /// SHA-256 of the token, 32 bytes.
    public var digest: [UInt8]
    /// Instance names or `*`/`?` globs the token may write (on this host, and on its
    /// ``remotes``).
    public var containers: [String]
    /// Incus remotes whose instances the token may write (`REMOTE:INSTANCE`); none: this
    /// host's daemon only.
    public var remotes: [String]
    /// Destination prefixes (absolute). `/srv/app` admits `/srv/app` and what lies under
    /// `/srv/app/`, not `/srv/application`.
    public var pathPrefixes: [String]
    /// The largest upload, in bytes (nil: only the server's limit).
    public var maxUpload: UInt64?
    /// Whether modes with setuid/setgid bits may be set.
    public var allowSetID: Bool
    /// Whether owners other than the default (0:0) may be set.
    public var allowOwner: Bool
    /// The most unfinished tasks (received and not yet delivered or failed) the token may
    /// have at once (`max_queued`; nil: only the server's `--queue-capacity`).
    public var maxQueued: Int?
    /// The most spool bytes the token's tasks may hold, failed ones included
    /// (`max_spool_bytes`; nil: only the server's `--spool-max-bytes`).
    public var maxSpoolBytes: UInt64?

    public init(
        name: String, digest: [UInt8], containers: [String], pathPrefixes: [String], maxUpload: UInt64? = nil,
        allowSetID: Bool = false, allowOwner: Bool = false, maxQueued: Int? = nil,
        maxSpoolBytes: UInt64? = nil, remotes: [String] = []
    ) {
        self.remotes = remotes
        self.maxQueued = maxQueued
        self.maxSpoolBytes = maxSpoolBytes
        self.name = name
        self.digest = digest
        self.containers = containers
        self.pathPrefixes = pathPrefixes
        self.maxUpload = maxUpload
        self.allowSetID = allowSetID
        self.allowOwner = allowOwner
    }

    /// The rule of this token that refuses `request` of `size` bytes, if any.
    ///
    /// - Parameter size: the announced size (nil for a chunked body; then the limit is
    ///   enforced while the body streams).
    public func refusal(of request: UploadRequest, size: UInt64?) -> AccessRefusal? {
        if let refusal = refusal(ofPlace: request) { return refusal }
        if let maxUpload, let size, size > maxUpload {
            return AccessRefusal(
                token: name, rule: "max_upload", detail: "\(size) bytes (limit \(maxUpload))")
        }
        if !allowSetID && request.mode & 0o6000 != 0 {
            return AccessRefusal(token: name, rule: "allow_setid", detail: "mode \(request.octalMode)")
        }
        if !allowOwner && (request.uid != 0 || request.gid != 0) {
            return AccessRefusal(
                token: name, rule: "allow_owner", detail: "owner \(request.uid):\(request.gid)")
        }
        return nil
    }

    /// The rule that keeps this token from steering deliveries (pausing, resuming) to
    /// `container`, or to every container when nil (that needs `containers: ["*"]`).
    public func refusal(ofSteering container: String?) -> AccessRefusal? {
        guard let container else {
            return containers.contains("*")
                ? nil : AccessRefusal(token: name, rule: "containers", detail: "all containers (needs \"*\")")
        }
        return refusal(ofContainer: container)
    }

    /// The rule that keeps this token away from `container` (`INSTANCE` or
    /// `REMOTE:INSTANCE`): its remote must be in ``remotes``, its instance match
    /// ``containers``.
    private func refusal(ofContainer container: String) -> AccessRefusal? {
        let (remote, instance) = UploadRequest.split(container)
        if let remote, !remotes.contains(remote) {
            return AccessRefusal(token: name, rule: "remotes", detail: "remote '\(remote)'")
        }
        return containers.contains(where: { Glob.matches($0, instance) })
            ? nil : AccessRefusal(token: name, rule: "containers", detail: "container '\(container)'")
    }

    /// The rule that keeps this token away from `request`'s container or path, if any: what
    /// deleting one of its own tasks needs (sizes, modes and owners do not matter there).
    public func refusal(ofPlace request: UploadRequest) -> AccessRefusal? {
        if let refusal = refusal(ofContainer: request.container) { return refusal }
        // The destination is already normalised: absolute, no '.', '..' or empty segments.
        if !pathPrefixes.contains(where: { Self.path(request.path, isUnder: $0) }) {
            return AccessRefusal(token: name, rule: "paths", detail: "path '\(request.path)'")
        }
        return nil
    }

    /// What the token's tasks may hold in the spool and the queue.
    public var quota: Capacity.Quota {
        Capacity.Quota(maxTasks: maxQueued, maxBytes: maxSpoolBytes)
    }

    /// Whether `path` is `prefix` or lies under it, comparing UTF-8 bytes: Swift's `String`
    /// comparison treats canonically equivalent text as equal (`e` + U+0301 and `é`, the
    /// Kelvin sign and `K`), but in the container those are different names.
    static func path(_ path: String, isUnder prefix: String) -> Bool {
        let slash = UInt8(ascii: "/")
        var base = Array(prefix.utf8)
        if base == [slash] { return true }
        if base.last == slash { base.removeLast() }
        let bytes = Array(path.utf8)
        guard bytes.count >= base.count, bytes.prefix(base.count).elementsEqual(base) else { return false }
        return bytes.count == base.count || bytes[base.count] == slash
    }
}

/// Which rule of which token refused a request.
public struct AccessRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var token: String
    public var rule: String
    public var detail: String

    public init(token: String, rule: String, detail: String) {
        self.token = token
        self.rule = rule
        self.detail = detail
    }

    public var description: String { "token '\(token)' may not write \(detail) (rule: \(rule))" }
}

/// `*` (any run of characters) and `?` (one character) matching for container names,
/// byte by byte (names and patterns are ASCII; bytes keep equivalent Unicode apart anyway).
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let pattern = Array(pattern.utf8)
        let text = Array(text.utf8)
        var p = 0
        var t = 0
        var star: Int?
        var resume = 0
        while t < text.count {
            if p < pattern.count && (pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t]) {
                p += 1
                t += 1
            } else if p < pattern.count && pattern[p] == UInt8(ascii: "*") {
                star = p
                resume = t
                p += 1
            } else if let star {
                p = star + 1
                resume += 1
                t = resume
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}
