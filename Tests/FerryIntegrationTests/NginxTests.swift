import XCTest

/// Ferry behind a real nginx that runs the shipped `deploy/nginx` configuration: bodies stream
/// through without a temp file, and Ferry's answers reach the client as Ferry sent them.
final class NginxTests: XCTestCase {
    private static let size = 1 << 30
    /// As in MemoryTests: a flat 40 MiB, whatever the size.
    private static let memoryLimit = 40 << 20

    func testOneGiBUploadStreamsThroughNginxWithoutATempFile() throws {
        let ferry = try FerryProcess(arguments: ["--max-body-size", "2G"])
        let nginx = try Nginx(upstreamPort: ferry.port)
        let path = "/root/big"
        let client = try RawHTTPClient(port: nginx.port, timeout: 300)
        try client.sendHead(
            "POST", "/upload",
            [
                ("X-Container-Name", "c1"), ("X-File-Path", path), ("X-Host-Path", "big"),
                ("Content-Length", String(Self.size)),
            ])
        // Generated, not stored: 1 MiB of random bytes sent 1024 times, each time stamped with
        // its number (a lost, doubled or swapped MiB changes the digest).
        var block = randomBytes(1 << 20)
        let digest = try StreamingSHA256()
        var tempFiles = Set<String>()
        let started = Date()
        for index in 0..<(Self.size / block.count) {
            block.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(index).littleEndian, Array.init))
            try client.send(block)
            try digest.update(block)
            if index % 16 == 0 { tempFiles.formUnion(nginx.clientBodyTempFiles()) }
        }
        let response = try client.readResponse()
        let seconds = Date().timeIntervalSince(started)
        let expected = try digest.finish()

        XCTAssertEqual(response.status, 202, String(decoding: response.body, as: UTF8.self))
        XCTAssertEqual(response.json["bytes"] as? Int, Self.size)
        XCTAssertEqual(tempFiles, [], "nginx wrote the body to a temp file during the upload")
        XCTAssertEqual(nginx.clientBodyTempFiles(), [], "nginx left a temp file")
        XCTAssertEqual(nginx.errorLogLines(containing: "buffered to a temporary file"), [])
        let peak = try ferry.peakResidentBytes()
        XCTAssertLessThanOrEqual(peak, Self.memoryLimit, "Ferry's peak RSS \(peak >> 20) MiB")
        print(
            "1 GiB through nginx in \(String(format: "%.1f", seconds)) s "
                + "(\(Int(Double(Self.size >> 20) / seconds)) MiB/s); Ferry's peak RSS \(peak >> 10) KiB")
        XCTAssertTrue(
            try ferry.waitForSettlement(of: Uploads.taskID(response), timeout: 300).contains(
                "outcome=delivered"))
        XCTAssertEqual(try Incus.sha256(container: "c1", path: path), expected)
        try Incus.remove(container: "c1", path: path)
    }

    func testATusUploadCutOffThroughNginxResumesThroughNginx() throws {
        let ferry = try FerryProcess()
        let nginx = try Nginx(upstreamPort: ferry.port)
        let path = "/tmp/tus-nginx-\(UInt32.random(in: 0...UInt32.max))"
        let block = randomBytes(1 << 20)
        let body = block + block + block
        let location = try Tus.location(nginx, length: body.count, path: path)
        XCTAssertTrue(location.hasPrefix("/files/"), location)
        XCTAssertEqual(try Tus.patch(nginx, location, offset: 0, Array(body[0..<(1 << 20)])).status, 204)
        // The second PATCH is cut off mid-body at the client: nginx (not buffering) has
        // passed on what came, and closes its connection to Ferry.
        let client = try RawHTTPClient(port: nginx.port)
        try client.sendHead(
            "PATCH", location,
            [
                Tus.resumable, Tus.patchType, ("Upload-Offset", String(1 << 20)),
                ("Content-Length", String(2 << 20)),
            ])
        try client.send(Array(body[(1 << 20)..<(3 << 19)]))
        try waitUntil("Ferry has bytes of the second PATCH") {
            try Metrics.scrape(ferry)["ferry_upload_bytes_received_total{protocol=\"tus\"}"] ?? 0
                > Double(1 << 20)
        }
        client.abort()
        try ferry.waitForLog(containing: "upload aborted", "task=\(Tus.id(location))")
        let offset = try Tus.offset(nginx, location)
        XCTAssertGreaterThan(offset, 1 << 20, "what reached Ferry is kept")
        let rest = try Tus.patch(nginx, location, offset: offset, Array(body[offset...]))
        XCTAssertEqual(rest.status, 204)
        XCTAssertEqual(nginx.clientBodyTempFiles(), [], "nginx buffered no PATCH to disk")
        try waitUntil("delivered", timeout: 60) { try TaskAPI.state(ferry, Tus.id(location)) == "delivered" }
        XCTAssertEqual(try Incus.sha256(container: "c1", path: path), try Command.sha256(body))
        try Incus.remove(container: "c1", path: path)
    }

    /// A refusal Ferry decides from the head, and what it answers.
    private struct Refusal {
        var name: String
        var headers: [(String, String)]
        var status: Int
        var error: String
    }

    /// With `--max-body-size 1M`; every declared body here is larger.
    private let refusals = [
        Refusal(
            name: "missing X-Container-Name", headers: [("X-File-Path", "/root/refused")], status: 400,
            error: "missing_header"),
        Refusal(
            name: "relative X-File-Path", headers: [("X-Container-Name", "c1"), ("X-File-Path", "relative")],
            status: 400, error: "invalid_header"),
        Refusal(
            name: "Content-Length above --max-body-size",
            headers: [("X-Container-Name", "c1"), ("X-File-Path", "/root/refused")], status: 413,
            error: "body_too_large"),
    ]

    /// POSTs through nginx a head that announces `declared` bytes, sends `sent` of them (as
    /// long as the connection takes them), then reads the answer.
    private func post(_ refusal: Refusal, to nginx: Nginx, declared: Int, sending sent: Int) throws
        -> RawResponse
    {
        let client = try RawHTTPClient(port: nginx.port, timeout: 60)
        try client.sendHead("POST", "/upload", refusal.headers + [("Content-Length", String(declared))])
        let piece = [UInt8](repeating: 0x5a, count: 1 << 20)
        var remaining = sent
        while remaining > 0 {
            let count = min(remaining, piece.count)
            // Whoever answered early may stop reading: then the answer is what counts.
            guard (try? client.send(Array(piece[0..<count]))) != nil else { break }
            remaining -= count
        }
        return try client.readResponse()
    }

    private func assertNothingLeft(_ ferry: FerryProcess, file: StaticString = #filePath, line: UInt = #line)
        throws
    {
        XCTAssertEqual(try ferry.spoolContents(), [], "no file left", file: file, line: line)
        XCTAssertEqual(ferry.logLines(containing: "push").count, 0, "nothing pushed", file: file, line: line)
    }

    func testRefusalsFromTheHeadReachTheClientThroughNginx() throws {
        let ferry = try FerryProcess(arguments: ["--max-body-size", "1M"])
        let nginx = try Nginx(upstreamPort: ferry.port)
        for refusal in refusals {
            let response = try post(refusal, to: nginx, declared: 8 << 20, sending: 4096)
            XCTAssertEqual(response.status, refusal.status, refusal.name)
            XCTAssertEqual(response.json["error"] as? String, refusal.error, refusal.name)
            XCTAssertFalse(
                (response.json["detail"] as? String ?? "").isEmpty, "\(refusal.name): Ferry's reason")
            XCTAssertEqual(response.header("Content-Type"), "application/json", refusal.name)
        }
        try assertNothingLeft(ferry)
    }

    /// Ferry answers from the head and closes the connection while nginx is still passing the
    /// body on: the client must still get Ferry's answer, never nginx's 502.
    func testRefusalsReachTheClientWhileItSendsAMultiMiBBody() throws {
        let ferry = try FerryProcess(arguments: ["--max-body-size", "1M"])
        let nginx = try Nginx(upstreamPort: ferry.port)
        let rounds = 8
        var wrong: [String] = []
        for round in 1...rounds {
            for refusal in refusals {
                let outcome: String
                do {
                    let response = try post(refusal, to: nginx, declared: 16 << 20, sending: 16 << 20)
                    guard
                        response.status != refusal.status
                            || response.json["error"] as? String != refusal.error
                    else { continue }
                    outcome =
                        "\(response.status) \(response.json["error"] as? String ?? "(not Ferry's JSON)")"
                } catch {
                    outcome = "no answer: \(error)"
                }
                wrong.append("round \(round), \(refusal.name): \(outcome)")
            }
        }
        XCTAssertEqual(
            wrong.count, 0,
            """
            \(wrong.count) of \(rounds * refusals.count) refusals did not reach the client as Ferry sent them, \
            e.g. \(wrong.prefix(3)); nginx's error log says:
            \(nginx.errorLogLines(containing: "upstream").suffix(2).joined(separator: "\n"))
            """)
        try assertNothingLeft(ferry)
    }

    /// The shipped site serves `/metrics`, `/readyz` and `/healthz` to loopback only: from
    /// 127.0.0.1 they are Ferry's answers, from 127.0.0.2 (any other peer) nginx's own 403,
    /// however the path is spelled, while `/upload` and `/tasks` still reach Ferry.
    func testProbesAnswerLoopbackOnlyWhileUploadsAndTasksReachFerryFromAnyPeer() throws {
        let ferry = try FerryProcess()
        let nginx = try Nginx(upstreamPort: ferry.port)
        func get(_ target: String, from source: String? = nil) throws -> RawResponse {
            try RawHTTPClient(port: nginx.port, from: source).exchange("GET", target, [], body: [])
        }

        let metrics = try get("/metrics")
        XCTAssertEqual(metrics.status, 200, "/metrics from 127.0.0.1")
        let exposition = String(decoding: metrics.body, as: UTF8.self)
        XCTAssertTrue(
            exposition.contains("\nferry_spool_bytes "), "Ferry's metrics: \(exposition.prefix(300))")
        try waitUntil("/readyz through nginx says ready") { try get("/readyz").status == 200 }
        let ready = try get("/readyz")
        XCTAssertEqual(ready.json["status"] as? String, "ready", "Ferry's readiness JSON")
        XCTAssertNotNil(ready.json["checks"], "Ferry's readiness JSON")
        let health = try get("/healthz")
        XCTAssertEqual(health.status, 200, "/healthz from 127.0.0.1")
        XCTAssertEqual(health.json["status"] as? String, "serving", "Ferry's liveness JSON")

        let outsider = "127.0.0.2"
        // nginx matches the normalized path: query, doubled slashes and escapes change nothing.
        let spellings = [
            "/metrics", "/readyz", "/healthz", "/metrics?format=text", "//metrics", "/%6detrics",
            "/./readyz",
        ]
        for target in spellings {
            let denied = try get(target, from: outsider)
            XCTAssertEqual(denied.status, 403, "\(target) from \(outsider)")
            XCTAssertNotEqual(denied.header("Content-Type"), "application/json", "\(target): nginx's 403")
            XCTAssertFalse(
                String(decoding: denied.body, as: UTF8.self).contains("ferry_"), "\(target): no metrics")
        }

        let client = try RawHTTPClient(port: nginx.port, from: outsider)
        try client.sendHead(
            "POST", "/upload",
            [("X-Container-Name", "c1"), ("X-File-Path", "/root/outsider"), ("Content-Length", "5")])
        try client.send(Array("hello".utf8))
        let accepted = try client.readResponse()
        XCTAssertEqual(accepted.status, 202, String(decoding: accepted.body, as: UTF8.self))
        let id = Uploads.taskID(accepted)
        try client.sendHead("GET", "/tasks", [])
        let listed = try client.readResponse()
        XCTAssertEqual(listed.status, 200, "/tasks from \(outsider)")
        let ids = (listed.json["tasks"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        XCTAssertEqual(ids, [id], "Ferry's task list")
        try client.sendHead("GET", "/tasks/\(id)", [])
        XCTAssertEqual(try client.readResponse().json["id"] as? String, id, "/tasks/{id} from \(outsider)")

        XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("outcome=delivered"))
        // Ferry itself (scraped directly) saw only the loopback probe: none of the outsider's.
        let counted = try Metrics.scrape(ferry)
        XCTAssertEqual(counted[#"ferry_http_requests_total{route="/healthz",status="200"}"#], 1)
        XCTAssertEqual(
            counted.keys.filter { $0.contains(#"route="other""#) }, [], "no spelling reached Ferry")
        try Incus.remove(container: "c1", path: "/root/outsider")
    }

    func testEventsAndTheConsoleReachTheClientThroughNginxAtOnce() throws {
        let ferry = try FerryProcess()
        let nginx = try Nginx(upstreamPort: ferry.port)
        // Held by a pause, the upload's "queued" is the only event until the resume: were
        // nginx buffering the stream, it would not arrive.
        let paused = try RawHTTPClient(port: nginx.port)
        try paused.sendHead("POST", "/deliveries/pause?container=c1", [])
        XCTAssertEqual(try paused.readResponse().status, 200)
        let events = try EventStream(port: nginx.port)
        defer { events.close() }
        let id = Uploads.taskID(
            try Uploads.post(
                to: ferry, [("X-Container-Name", "c1"), ("X-File-Path", "/root/nginx-events")], body: [1, 2]))
        try waitUntil("the queued event arrives through nginx") { events.states(of: id) == ["queued"] }
        let resume = try RawHTTPClient(port: nginx.port)
        try resume.sendHead("POST", "/deliveries/resume", [])
        XCTAssertEqual(try resume.readResponse().status, 200)
        try waitUntil("the delivery is heard") { events.states(of: id).last == "delivered" }
        XCTAssertEqual(events.states(of: id), ["queued", "pushing", "delivered"])

        let console = try RawHTTPClient(port: nginx.port)
        try console.sendHead("GET", "/ui/", [])
        let page = try console.readResponse()
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.header("Content-Security-Policy")?.contains("script-src 'self'") ?? false)
    }

    func testAcceptedAnswerAndItsTaskPassThroughNginxUnchanged() throws {
        let ferry = try FerryProcess()
        let nginx = try Nginx(upstreamPort: ferry.port)
        let body = randomBytes(300_000)
        let client = try RawHTTPClient(port: nginx.port)
        try client.sendHead(
            "POST", "/upload",
            [
                ("X-Container-Name", "c1"), ("X-File-Path", "/root/"), ("X-Host-Path", "/home/ana/notes.txt"),
                ("X-Request-Id", "nginx-test-1"), ("Content-Length", String(body.count)),
            ])
        try client.send(body)
        let accepted = try client.readResponse()

        XCTAssertEqual(accepted.status, 202, String(decoding: accepted.body, as: UTF8.self))
        let id = Uploads.taskID(accepted)
        XCTAssertEqual(accepted.header("Location"), "/tasks/\(id)", "Location names the task of the body")
        XCTAssertEqual(accepted.header("Content-Type"), "application/json")
        XCTAssertEqual(accepted.json["bytes"] as? Int, body.count)
        XCTAssertEqual(accepted.json["container"] as? String, "c1")
        XCTAssertEqual(accepted.json["path"] as? String, "/root/notes.txt")
        XCTAssertEqual(accepted.json["status"] as? String, "queued")
        XCTAssertEqual(accepted.header("X-Request-Id"), "nginx-test-1", "the client's request id comes back")

        // The Location, followed through nginx on the same client connection.
        let location = accepted.header("Location") ?? "/tasks/?"
        try client.sendHead("GET", location, [])
        let task = try client.readResponse()
        XCTAssertEqual(task.status, 200)
        XCTAssertEqual(task.json["id"] as? String, id)
        XCTAssertEqual(task.json["container"] as? String, "c1")
        XCTAssertEqual(task.json["path"] as? String, "/root/notes.txt")
        XCTAssertEqual(task.json["bytes"] as? Int, body.count)
        XCTAssertEqual(
            task.header("X-Request-Id")?.count, 32, "nginx names a request that came without an id")

        XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("outcome=delivered"))
        XCTAssertEqual(try Incus.sha256(container: "c1", path: "/root/notes.txt"), try Command.sha256(body))
        try client.sendHead("GET", location, [])
        XCTAssertEqual(try client.readResponse().json["state"] as? String, "delivered")

        // Keep-alive to Ferry: another client's upload goes over nginx's same connection to Ferry.
        let other = try RawHTTPClient(port: nginx.port)
        try other.sendHead(
            "POST", "/upload",
            [("X-Container-Name", "c1"), ("X-File-Path", "/root/second"), ("Content-Length", "5")])
        try other.send(Array("hello".utf8))
        let second = try other.readResponse()
        XCTAssertEqual(second.status, 202)
        XCTAssertTrue(try ferry.waitForSettlement(of: Uploads.taskID(second)).contains("outcome=delivered"))
        let peers = ferry.logLines(containing: "upload accepted").compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("peer=") }.map(String.init)
        }
        XCTAssertEqual(peers.count, 2)
        XCTAssertEqual(Set(peers).count, 1, "both uploads came over one upstream connection: \(peers)")
        try Incus.remove(container: "c1", path: "/root/notes.txt")
        try Incus.remove(container: "c1", path: "/root/second")
    }
}
