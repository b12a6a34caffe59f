import Metrics
import Synchronization

/// A Prometheus counter that follows a plain count kept elsewhere (the HTTP layer's C
/// hooks count without knowing of swift-metrics): each ``catchUp(to:)`` adds what came
/// since the last one.
final class MirroredCounter: Sendable {
    private let counter: Metrics.Counter
    private let seen = Mutex(0)

    init(label: String) {
        counter = Metrics.Counter(label: label)
    }

    /// Adds `count` minus the count seen last. Under one lock: two scrapes at once must
    /// not both add, nor one subtract (the counter traps on a negative step).
    func catchUp(to count: Int) {
        let step = seen.withLock { seen in
            defer { seen = max(seen, count) }
            return max(0, count - seen)
        }
        counter.increment(by: step)
    }
}
