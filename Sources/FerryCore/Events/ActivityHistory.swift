import Synchronization

/// Tasks received, delivered and failed per minute over the last hour, in memory: what a
/// console draws without asking the store. Kept for everyone together and for each token
/// apart (a token sees only its own), each a ring of ``minutes`` buckets, so memory is
/// fixed per token whatever the traffic.
public final class ActivityHistory: Sendable {
    /// How many minutes are kept.
    public static let minutes = 60

    /// What is counted.
    public enum Kind: Sendable {
        case received, delivered, failed
    }

    /// The counts of the last ``minutes`` minutes, oldest first; the last is the current
    /// (incomplete) minute.
    public struct Series: Sendable, Equatable {
        /// The first minute, in seconds since 1970 (a multiple of 60).
        public var start: Double
        public var received: [Int]
        public var delivered: [Int]
        public var failed: [Int]
    }

    private struct Bucket {
        /// Minutes since 1970 this bucket counts; a bucket of an older minute is stale.
        var minute: Int64 = -1
        var received = 0
        var delivered = 0
        var failed = 0
    }

    private struct Ring {
        var buckets = [Bucket](repeating: Bucket(), count: ActivityHistory.minutes)

        mutating func add(_ kind: Kind, minute: Int64, count: Int) {
            let slot = Int(minute % Int64(ActivityHistory.minutes))
            if buckets[slot].minute != minute { buckets[slot] = Bucket(minute: minute) }
            switch kind {
            case .received: buckets[slot].received += count
            case .delivered: buckets[slot].delivered += count
            case .failed: buckets[slot].failed += count
            }
        }

        func series(endingAt minute: Int64) -> Series {
            var series = Series(
                start: Double(minute - Int64(ActivityHistory.minutes) + 1) * 60, received: [], delivered: [],
                failed: [])
            for wanted in (minute - Int64(ActivityHistory.minutes) + 1)...minute {
                let bucket = buckets[Int(wanted % Int64(ActivityHistory.minutes))]
                let current = bucket.minute == wanted
                series.received.append(current ? bucket.received : 0)
                series.delivered.append(current ? bucket.delivered : 0)
                series.failed.append(current ? bucket.failed : 0)
            }
            return series
        }
    }

    private struct Rings {
        var everyone = Ring()
        var byOwner: [String: Ring] = [:]
    }

    private let rings = Mutex(Rings())

    public init() {}

    /// Counts `count` tasks of `owner` (nil without `--tokens`) as `kind` at `time`.
    public func record(_ kind: Kind, owner: String?, count: Int = 1, at time: Double = WallClock.now()) {
        let minute = Self.minute(of: time)
        rings.withLock { rings in
            rings.everyone.add(kind, minute: minute, count: count)
            if let owner { rings.byOwner[owner, default: Ring()].add(kind, minute: minute, count: count) }
        }
    }

    /// The last hour up to `time`, of `viewer`'s tasks (nil: everyone's).
    public func series(viewer: String?, at time: Double = WallClock.now()) -> Series {
        let minute = Self.minute(of: time)
        return rings.withLock { rings in
            guard let viewer else { return rings.everyone.series(endingAt: minute) }
            return (rings.byOwner[viewer] ?? Ring()).series(endingAt: minute)
        }
    }

    private static func minute(of time: Double) -> Int64 {
        Int64((time / 60).rounded(.down))
    }
}
