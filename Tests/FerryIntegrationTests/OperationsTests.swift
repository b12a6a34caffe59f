import XCTest

/// What operators run Ferry with: metrics, readiness, request ids, JSON logs, environment
/// configuration, several event loops.
final class OperationsTests: XCTestCase {
    private let target: [(String, String)] = [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/")]

    func testMetricsParseAsPrometheusTextAndCountersMoveWithRealUploads() throws {
        let ferry = try FerryProcess()
        let before = try Metrics.scrape(ferry)
        var ids: [String] = []
        for index in 0..<3 {
            let response = try Uploads.post(
                to: ferry, target + [("X-Host-Path", "metrics-\(index)-\(UUID().uuidString)")],
                body: randomBytes(1000))
            XCTAssertEqual(response.status, 202)
            ids.append(Uploads.taskID(response))
        }
        let refused = try Uploads.post(to: ferry, [("X-File-Path", "/tmp/x")], body: randomBytes(10))
        XCTAssertEqual(refused.status, 400)
        for id in ids { try ferry.waitForSettlement(of: id) }
        let after = try Metrics.scrape(ferry)

        let accepted = #"ferry_http_requests_total{route="/upload",status="202"}"#
        let rejected = #"ferry_http_requests_total{route="/upload",status="400"}"#
        let delivered = #"ferry_push_attempts_total{outcome="delivered"}"#
        XCTAssertEqual(after[accepted, default: 0] - before[accepted, default: 0], 3)
        XCTAssertEqual(after[rejected, default: 0] - before[rejected, default: 0], 1)
        XCTAssertEqual(after["ferry_http_request_bytes_total", default: 0], 3000)
        XCTAssertEqual(after[delivered, default: 0] - before[delivered, default: 0], 3)
        // One observation per incus call: three, or fewer if two went out as one batch.
        XCTAssertTrue((1...3).contains(after["ferry_push_duration_seconds_count", default: 0]))
        XCTAssertEqual(after[#"ferry_tasks{state="delivered"}"#], 3)
        XCTAssertEqual(after["ferry_queue_depth"], 0)
        XCTAssertEqual(after["ferry_uploads_in_flight"], 0)
        XCTAssertEqual(after["ferry_spool_bytes"], 0)
        XCTAssertGreaterThanOrEqual(after["ferry_connections_open", default: 0], 1, "the scrape's own")
        for name in ["ferry_push_retries_total", #"ferry_tasks{state="failed"}"#] {
            XCTAssertNotNil(after[name], "\(name) is exported")
        }
    }

    func testReadyzTurnsUnavailableWhileIncusIsDownAndBackWhenItReturns() throws {
        let ferry = try FerryProcess(arguments: ["--readiness-interval", "200ms"])
        try waitUntil("ready") { try TaskAPI.request(ferry, "GET", "/readyz").status == 200 }
        let ready = try TaskAPI.request(ferry, "GET", "/readyz").json
        XCTAssertEqual(ready["status"] as? String, "ready")

        try Incus.stopDaemon()
        var daemonUp = false
        defer { if !daemonUp { try? Incus.startDaemon() } }
        try waitUntil("not ready") { try TaskAPI.request(ferry, "GET", "/readyz").status == 503 }
        let down = try TaskAPI.request(ferry, "GET", "/readyz").json
        XCTAssertEqual(down["status"] as? String, "not_ready")
        let checks = down["checks"] as? [String: [String: Any]] ?? [:]
        XCTAssertEqual(checks["incus"]?["ok"] as? Bool, false)
        XCTAssertEqual(checks["spool"]?["ok"] as? Bool, true)
        XCTAssertEqual(checks["disk"]?["ok"] as? Bool, true)
        XCTAssertEqual(try TaskAPI.request(ferry, "GET", "/healthz").status, 200, "still serving")

        try Incus.startDaemon()
        daemonUp = true
        try waitUntil("ready again") { try TaskAPI.request(ferry, "GET", "/readyz").status == 200 }
    }

    func testRequestIdIsEchoedOrMadeAndRecordedWithTheTask() throws {
        let ferry = try FerryProcess()
        let sent = "req-\(UUID().uuidString)"
        let response = try Uploads.post(
            to: ferry, target + [("X-Host-Path", "rid-\(UUID().uuidString)"), ("X-Request-Id", sent)],
            body: randomBytes(100))
        XCTAssertEqual(response.header("X-Request-Id"), sent)
        let id = Uploads.taskID(response)
        XCTAssertEqual(try TaskAPI.get(ferry, id)["request_id"] as? String, sent)
        try ferry.waitForLog(containing: "upload accepted", "request_id=\(sent)")

        let refused = try Uploads.post(to: ferry, [("X-Request-Id", "bad id with spaces")], body: [])
        let made = try XCTUnwrap(refused.header("X-Request-Id"))
        XCTAssertEqual(made.count, 16, "an unusable id is replaced by a new one")
        try ferry.waitForLog(containing: "upload refused", "request_id=\(made)")
    }

    func testJSONLogsParseLineByLine() throws {
        let ferry = try FerryProcess(arguments: ["--log-format", "json"])
        let response = try Uploads.post(
            to: ferry,
            target + [("X-Host-Path", "json-\(UUID().uuidString)"), ("X-Request-Id", "json-log-1")],
            body: randomBytes(100))
        XCTAssertEqual(response.status, 202)
        try ferry.waitForLog(containing: "\"message\":\"push\"", Uploads.taskID(response))
        ferry.stop()

        let lines = ferry.logLines()
        XCTAssertGreaterThan(lines.count, 4)
        var accepted: [String: Any]?
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            let event = try XCTUnwrap(object, "not a JSON object: \(line)")
            for field in ["time", "level", "message"] { XCTAssertNotNil(event[field], "\(field) in \(line)") }
            if event["message"] as? String == "upload accepted" { accepted = event }
        }
        XCTAssertEqual(accepted?["request_id"] as? String, "json-log-1")
        XCTAssertEqual(accepted?["task"] as? String, Uploads.taskID(response))
        XCTAssertEqual(accepted?["status"] as? String, "202")
    }

    func testEnvironmentConfiguresEveryOptionAndTheCommandLineWins() throws {
        let fromEnvironment = try FerryProcess(environment: [
            "FERRY_MAX_BODY_SIZE": "100", "FERRY_BATCH_MAX": "7",
        ])
        try fromEnvironment.waitForLog(containing: "listening", "batch_max=7")
        let tooLarge = try Uploads.post(
            to: fromEnvironment, target + [("X-Host-Path", "env-too-large")], body: randomBytes(200))
        XCTAssertEqual(tooLarge.status, 413)

        let overridden = try FerryProcess(
            arguments: ["--max-body-size", "1K"], environment: ["FERRY_MAX_BODY_SIZE": "100"])
        let fits = try Uploads.post(
            to: overridden, target + [("X-Host-Path", "env-\(UUID().uuidString)")], body: randomBytes(200))
        XCTAssertEqual(fits.status, 202)

        let flags = try FerryProcess(environment: ["FERRY_FSYNC": "false", "FERRY_LOG_FORMAT": "json"])
        try flags.waitForLog(containing: "\"message\":\"listening\"", "\"fsync\":\"false\"")
    }

    func testVersionAndHelpNameTheEnvironmentMapping() throws {
        let binary = try XCTUnwrap(ProcessInfo.processInfo.environment["FERRY_BIN"])
        let version = String(decoding: try Command.run(binary, ["--version"]), as: UTF8.self)
        XCTAssertTrue(version.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, version)
        let help = String(decoding: try Command.run(binary, ["--help"]), as: UTF8.self)
        XCTAssertTrue(help.contains("FERRY_MAX_BODY_SIZE"), help)
    }

    func testTrustedProxyNamesTheClientFromXForwardedFor() throws {
        let trusting = try FerryProcess(arguments: ["--trusted-proxy", "127.0.0.0/8"])
        let forwarded = [("X-Forwarded-For", "198.51.100.9, 203.0.113.7")]
        _ = try Uploads.post(to: trusting, forwarded, body: [])
        try trusting.waitForLog(containing: "upload refused", "client=203.0.113.7")

        let untrusting = try FerryProcess()
        _ = try Uploads.post(to: untrusting, forwarded, body: [])
        try untrusting.waitForLog(containing: "upload refused", "client=127.0.0.1")
    }

    func testSeveralEventLoopsShareOnePortAndServeConcurrentUploads() throws {
        let ferry = try FerryProcess(arguments: ["--threads", "4"])
        try ferry.waitForLog(containing: "listening", "threads=4")
        let loops = try FileManager.default.contentsOfDirectory(
            atPath: "/proc/\(ferry.process.processIdentifier)/task"
        )
        .filter { task in
            let name = try? String(
                contentsOfFile: "/proc/\(ferry.process.processIdentifier)/task/\(task)/comm", encoding: .utf8)
            return name?.hasPrefix("ferry-loop") == true
        }
        XCTAssertEqual(loops.count, 3, "three loops beside the main thread's")

        let statuses = Statuses()
        let port = ferry.port
        DispatchQueue.concurrentPerform(iterations: 64) { index in
            let body = randomBytes(4096)
            let response = try? RawHTTPClient(port: port).exchange(
                "POST", "/upload",
                [
                    ("X-Container-Name", "c1"), ("X-File-Path", "/tmp/loops-\(index)-\(UUID().uuidString)"),
                    ("Content-Length", String(body.count)),
                ], body: body)
            statuses.add(response?.status ?? 0)
        }
        XCTAssertEqual(statuses.all.filter { $0 == 202 }.count, 64, "\(statuses.all)")
    }
}

/// Prometheus text, parsed: `name{labels}` → value.
enum Metrics {
    static func scrape(_ ferry: FerryProcess) throws -> [String: Double] {
        let response = try TaskAPI.request(ferry, "GET", "/metrics")
        guard response.status == 200 else { throw TestSetupError("/metrics answered \(response.status)") }
        XCTAssertTrue(response.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        var samples: [String: Double] = [:]
        for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") {
            if line.hasPrefix("#") {
                XCTAssertTrue(line.hasPrefix("# TYPE ") || line.hasPrefix("# HELP "), "comment: \(line)")
                continue
            }
            // A sample is NAME[{LABELS}] VALUE; label values here never hold spaces.
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]),
                parts[0].range(of: #"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?$"#, options: .regularExpression)
                    != nil
            else { throw TestSetupError("not a Prometheus sample: \(line)") }
            samples[String(parts[0])] = value
        }
        return samples
    }
}

/// Statuses collected from several threads.
final class Statuses: @unchecked Sendable {
    private let lock = NSLock()
    private var statuses: [Int] = []

    func add(_ status: Int) {
        lock.lock()
        statuses.append(status)
        lock.unlock()
    }

    var all: [Int] {
        lock.lock()
        defer { lock.unlock() }
        return statuses
    }
}
