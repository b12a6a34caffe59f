import Synchronization

/// Upload bodies being received now (`/upload` bodies and tus requests), in all and per
/// token: `/stats` shows a token only its own. Holds one entry per token with an upload in
/// flight, nothing more.
final class UploadsInFlight: Sendable {
    private struct Counts {
        var all = 0
        var byOwner: [String: Int] = [:]
    }

    private let counts = Mutex(Counts())

    func started(owner: String?) {
        counts.withLock { counts in
            counts.all += 1
            if let owner { counts.byOwner[owner, default: 0] += 1 }
        }
    }

    func ended(owner: String?) {
        counts.withLock { counts in
            counts.all -= 1
            guard let owner, let count = counts.byOwner[owner] else { return }
            counts.byOwner[owner] = count > 1 ? count - 1 : nil
        }
    }

    /// `viewer`'s uploads in flight (nil: everyone's).
    func count(viewer: String?) -> Int {
        counts.withLock { counts in viewer.map { counts.byOwner[$0] ?? 0 } ?? counts.all }
    }
}
