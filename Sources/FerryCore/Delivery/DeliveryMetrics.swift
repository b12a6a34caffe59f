import Metrics
import Synchronization

/// What the workers report through swift-metrics: attempts by outcome, their duration,
/// and retries. Whoever bootstraps `MetricsSystem` decides where they go (Prometheus in
/// the `ferry` binary; nowhere in unit tests).
final class DeliveryMetrics: Sendable {
    /// Attempts into remotes, by remote and outcome (the families above count them too):
    /// a counter per remote and outcome, made on first use; `--remote` bounds them.
    private let remoteAttempts = Mutex<[String: Counter]>([:])

    let delivered = Counter(label: "ferry_push_attempts_total", dimensions: [("outcome", "delivered")])
    let transient = Counter(label: "ferry_push_attempts_total", dimensions: [("outcome", "transient")])
    let permanent = Counter(label: "ferry_push_attempts_total", dimensions: [("outcome", "permanent")])
    let retries = Counter(label: "ferry_push_retries_total")
    let duration = Timer(label: "ferry_push_duration_seconds")
    /// `incus file push` calls that carried more than one file.
    let batches = Counter(label: "ferry_push_batches_total")

    func attempt(_ result: PushResult, seconds: Double, files: Int = 1, remote: String? = nil) {
        let outcome: String
        switch result {
        case .delivered:
            delivered.increment(by: files)
            outcome = "delivered"
        case .failed(let failure) where failure.kind != .permanent:
            transient.increment(by: files)
            outcome = "transient"
        case .failed:
            permanent.increment(by: files)
            outcome = "permanent"
        }
        duration.recordNanoseconds(Int64(seconds * 1e9))
        guard let remote else { return }
        let counter = remoteAttempts.withLock { counters in
            let key = "\(remote) \(outcome)"
            if let counter = counters[key] { return counter }
            let counter = Counter(
                label: "ferry_remote_push_attempts_total",
                dimensions: [("remote", remote), ("outcome", outcome)])
            counters[key] = counter
            return counter
        }
        counter.increment(by: files)
    }
}
