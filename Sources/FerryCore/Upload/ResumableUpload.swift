import Glibc
import Synchronization

/// A tus upload between its creation and its last byte: where it is, who may write to it
/// now, and what it holds. One per upload in progress, kept in memory (a few hundred bytes
/// each; their number is bounded by the queue's capacity, since each takes a place).
///
/// At most one request writes at a time: a newer PATCH or HEAD takes over from an older
/// PATCH still open (its client lost the network and came back before the server noticed,
/// as tusd does it), and the older one may write no more. The bytes it wrote stay, unless
/// its checksum can no longer be checked.
///
/// Every field is behind one lock, also held while an offset is made durable, so that
/// offsets on disk never go back; only requests for this one upload ever wait for it.
public final class ResumableUpload: Sendable {
    public let id: String
    public let request: UploadRequest
    /// The token that created it (nil without `--tokens`): the only one that sees it.
    public let owner: String?
    /// tus's `Upload-Metadata` as sent, shown back on HEAD.
    public let metadata: String?
    /// RFC 9530 digests of the whole upload announced at creation (`Repr-Digest`).
    let reprDigests: ExpectedDigests
    let sequence: UInt64
    let requestID: String?

    struct State {
        /// Bytes in the file, in order (what the next PATCH must start at).
        var offset: UInt64
        /// Bytes stored in the task store (and synced, with `--fsync`).
        var durableOffset: UInt64
        /// The announced length; nil while deferred.
        var length: UInt64?
        /// SHA-256 of the first `offset` bytes; nil after a restart (computed again from
        /// the file at completion).
        var sha256: RunningDigest?
        /// The request that may write now.
        var patch: ResumablePatch?
        /// Terminated, expired or complete: no request may touch it any more.
        var ended = false
        /// Wall-clock seconds of the creation or the last PATCH: it expires from here.
        var touchedAt: Double
        /// Bytes reserved in the queue's capacity (grows with a deferred length).
        var reservedBytes: UInt64
        /// Free disk promised and not written yet.
        var promisedLeft: UInt64
    }

    let state: Mutex<State>

    init(
        id: String, request: UploadRequest, owner: String?, metadata: String?,
        reprDigests: ExpectedDigests, sequence: UInt64, requestID: String?, state: State
    ) {
        self.id = id
        self.request = request
        self.owner = owner
        self.metadata = metadata
        self.reprDigests = reprDigests
        self.sequence = sequence
        self.requestID = requestID
        self.state = Mutex(state)
    }

    /// Where the upload stands, as HEAD shows it.
    public struct Position: Sendable, Equatable {
        public var offset: UInt64
        public var length: UInt64?
        /// Wall-clock seconds after which it is removed if no PATCH comes.
        public var expiresAt: Double
    }
}

extension ResumableUpload.State {
    /// Ends the PATCH that may write now, if there is one: its bytes are kept (the hash
    /// takes them in) unless it carried a checksum, which can no longer be checked; then
    /// the upload goes back to where that PATCH began.
    mutating func takeOver(file path: String) {
        guard let patch else { return }
        self.patch = nil
        if patch.checksPatch {
            rollBack(to: patch.startOffset, sha256: patch.startSHA256, file: path)
        } else {
            sha256 = patch.carriedSHA256()
        }
    }

    /// Forgets the bytes from `start` on.
    mutating func rollBack(to start: UInt64, sha256 saved: RunningDigest?, file path: String) {
        offset = start
        sha256 = saved
        _ = truncate(path, off_t(start))
    }
}
