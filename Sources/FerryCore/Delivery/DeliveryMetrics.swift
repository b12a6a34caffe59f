import Metrics

/// What the workers report through swift-metrics: attempts by outcome, their duration,
/// and retries. Whoever bootstraps `MetricsSystem` decides where they go (Prometheus in
/// the `ferry` binary; nowhere in unit tests).
struct DeliveryMetrics: Sendable {
    let delivered = Counter(label: "ferry_push_attempts_total", dimensions: [("outcome", "delivered")])
    let transient = Counter(label: "ferry_push_attempts_total", dimensions: [("outcome", "transient")])
    let permanent = Counter(label: "ferry_push_attempts_total", dimensions: [("outcome", "permanent")])
    let retries = Counter(label: "ferry_push_retries_total")
    let duration = Timer(label: "ferry_push_duration_seconds")
    /// `incus file push` calls that carried more than one file.
    let batches = Counter(label: "ferry_push_batches_total")

    func attempt(_ result: PushResult, seconds: Double, files: Int = 1) {
        switch result {
        case .delivered: delivered.increment(by: files)
        case .failed(let failure) where failure.kind != .permanent: transient.increment(by: files)
        case .failed: permanent.increment(by: files)
        }
        duration.recordNanoseconds(Int64(seconds * 1e9))
    }
}
