import FerryCore
import FerryHTTP

/// `GET /stats`: what a console's overview shows, in one cheap answer. Counts by state (one
/// indexed count per state), the queue, uploads in flight, readiness (its last result), the
/// pauses, and received / delivered / failed per minute over the last hour (in memory).
/// A token sees its own tasks' figures only; readiness and pauses are the server's.
struct StatsRoute {
    let service: DeliveryService
    let readiness: Readiness
    let metrics: FerryMetrics

    static let path = "/stats"

    func route(_ head: HTTPRequestHead, rule: TokenRule?) -> Result<@Sendable () -> HTTPResponse, APIError> {
        if let refusal = ReadOnlyRoute.refusal(head) { return .failure(refusal) }
        let viewer = rule?.name
        return .success({ [service, readiness, metrics] in
            let counts: [TaskState: Int]
            do throws(StoreError) {
                counts = try service.store.counts(owner: viewer)
            } catch {
                return APIError.serverFault(error.description).response
            }
            let report = readiness.report
            return JSON.response(
                200,
                StatsView(
                    token: viewer,
                    tasks: Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }),
                    // A token's waiting tasks are its queued ones; the server's, the queue's.
                    queueDepth: viewer == nil ? service.queueDepth : counts[.queued] ?? 0,
                    uploadsInFlight: metrics.uploadsInFlight.count(viewer: viewer), ready: report.isReady,
                    checks: report.checks, paused: PausesView(service.pausedDeliveries),
                    history: HistoryView(service.events.history.series(viewer: viewer))))
        })
    }
}

/// The answer of `GET /stats`.
struct StatsView: Encodable {
    /// The token whose figures these are (null: everyone's, without `--tokens`).
    @NullWhenNil var token: String?
    var tasks: [String: Int]
    var queueDepth: Int
    var uploadsInFlight: Int
    var ready: Bool
    var checks: [String: Readiness.Check]
    var paused: PausesView
    var history: HistoryView

    enum CodingKeys: String, CodingKey {
        case token, tasks, ready, checks, paused, history
        case queueDepth = "queue_depth"
        case uploadsInFlight = "uploads_in_flight"
    }
}

/// The last hour, a bucket a minute, oldest first (the last is the current minute).
struct HistoryView: Encodable {
    var intervalSeconds = 60
    var start: String
    var received: [Int]
    var delivered: [Int]
    var failed: [Int]

    init(_ series: ActivityHistory.Series) {
        start = TaskView.timestamp(series.start)
        received = series.received
        delivered = series.delivered
        failed = series.failed
    }

    enum CodingKeys: String, CodingKey {
        case start, received, delivered, failed
        case intervalSeconds = "interval_seconds"
    }
}
