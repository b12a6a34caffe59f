import FerryCore
import FerryHTTP
import Metrics
import Prometheus
import Synchronization

/// Ferry's Prometheus metrics: counters kept as things happen, gauges read from the
/// service when `/metrics` is scraped (cheaper than keeping them current on every change).
final class FerryMetrics: Sendable {
    /// The process's one registry; swift-metrics is bootstrapped with it on first use.
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // A push takes from milliseconds (a small file) to minutes (a large one).
        factory.durationHistogramBuckets["ferry_push_duration_seconds"] = [
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
            .seconds(10), .seconds(30), .seconds(60), .seconds(300),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    private let registry = FerryMetrics.registry
    private let requestCounters = Mutex<[String: Metrics.Counter]>([:])
    let bytesReceived = Metrics.Counter(label: "ferry_http_request_bytes_total")
    /// Upload body bytes by protocol: `upload` (POST /upload) and `tus`.
    private let uploadBytesByProtocol = Dictionary(
        uniqueKeysWithValues: ["upload", "tus"].map {
            ($0, Metrics.Counter(label: "ferry_upload_bytes_received_total", dimensions: [("protocol", $0)]))
        })
    let uploadsInFlight = UploadsInFlight()
    private let uploadsInFlightGauge = Metrics.Gauge(label: "ferry_uploads_in_flight")
    private let queueDepth = Metrics.Gauge(label: "ferry_queue_depth")
    private let taskGauges = Dictionary(
        uniqueKeysWithValues: TaskState.allCases.map {
            ($0, Metrics.Gauge(label: "ferry_tasks", dimensions: [("state", $0.rawValue)]))
        })
    private let spoolBytes = Metrics.Gauge(label: "ferry_spool_bytes")
    private let connectionsOpen = Metrics.Gauge(label: "ferry_connections_open")
    private let ready = Metrics.Gauge(label: "ferry_ready")
    /// 1 while every delivery is paused; the containers paused one by one.
    private let pausedAll = Metrics.Gauge(label: "ferry_deliveries_paused_all")
    private let pausedContainers = Metrics.Gauge(label: "ferry_deliveries_paused_containers")
    /// Per allowed remote: 1 when its last check passed.
    private let remoteReady = Mutex<[String: Metrics.Gauge]>([:])
    /// Clients reading `/events`.
    private let eventListeners = Metrics.Gauge(label: "ferry_event_listeners")
    /// Kept by the HTTP layer as plain counts; each scrape adds what came since the last.
    private let connectionsRefused = MirroredCounter(label: "ferry_connections_refused_total")
    private let headTimeouts = MirroredCounter(label: "ferry_header_timeouts_total")
    private let socketReads = MirroredCounter(label: "ferry_socket_reads_total")
    private let socketBytes = MirroredCounter(label: "ferry_socket_read_bytes_total")
    /// Failed `accept` calls (descriptors or memory ran out).
    let acceptFailures = Metrics.Counter(label: "ferry_accept_failures_total")

    init() {}

    /// The counter of upload body bytes received over `protocolName` (`upload` or `tus`).
    func uploadBytes(_ protocolName: String) -> Metrics.Counter {
        uploadBytesByProtocol[protocolName] ?? bytesReceived
    }

    /// Counts one answered request.
    func countRequest(route: String, status: Int) {
        let key = "\(route) \(status)"
        let counter = requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Metrics.Counter(
                label: "ferry_http_requests_total",
                dimensions: [("route", route), ("status", String(status))])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// The Prometheus text exposition, with the gauges read from `service` now.
    func exposition(service: DeliveryService, readiness: Readiness, eventListeners listening: Int) -> [UInt8]
    {
        uploadsInFlightGauge.record(uploadsInFlight.count(viewer: nil))
        queueDepth.record(service.queueDepth)
        // A store that cannot be read leaves the gauges as they were (its error is logged
        // where it matters: on writes).
        if let counts = try? service.store.counts() {
            for (state, gauge) in taskGauges { gauge.record(counts[state] ?? 0) }
        }
        spoolBytes.record(Double(service.capacity.usage.bytes))
        connectionsOpen.record(HTTPServer.connectionsOpen)
        let report = readiness.report
        ready.record(report.isReady ? 1 : 0)
        for (remote, check) in report.remotes {
            let gauge = remoteReady.withLock { gauges in
                if let gauge = gauges[remote] { return gauge }
                let gauge = Metrics.Gauge(label: "ferry_remote_ready", dimensions: [("remote", remote)])
                gauges[remote] = gauge
                return gauge
            }
            gauge.record(check.ok ? 1 : 0)
        }
        let pauses = service.pausedDeliveries
        pausedAll.record(pauses.all ? 1 : 0)
        pausedContainers.record(pauses.containers.count)
        eventListeners.record(listening)
        connectionsRefused.catchUp(to: HTTPServer.connectionsRefused)
        headTimeouts.catchUp(to: HTTPServer.headsTimedOut)
        socketReads.catchUp(to: HTTPServer.socketReads)
        socketBytes.catchUp(to: HTTPServer.socketBytes)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8192)
        registry.emit(into: &buffer)
        return buffer
    }
}
