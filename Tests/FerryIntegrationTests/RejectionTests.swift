import XCTest

/// Every refusal is decided from the head: a client that asked `Expect: 100-continue` gets
/// the final answer without sending a byte of body, and nothing is left behind.
final class RejectionTests: XCTestCase {
    private let valid: [(String, String)] = [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/rejected")]

    /// Sends a head announcing a body, never the body, and checks the answer and the aftermath.
    private func assertRefusedBeforeBody(
        _ ferry: FerryProcess, method: String = "POST", target: String = "/upload",
        _ headers: [(String, String)], status: Int, error: String?, file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> RawResponse {
        let client = try RawHTTPClient(port: ferry.port)
        var head = headers + [("Expect", "100-continue")]
        if !headers.contains(where: { $0.0 == "Content-Length" || $0.0 == "Transfer-Encoding" }) {
            head.append(("Content-Length", "4096"))
        }
        try client.sendHead(method, target, head)
        let response = try client.readResponse()
        XCTAssertEqual(
            response.status, status, "the first answer is final, not 100 Continue", file: file, line: line)
        XCTAssertEqual(response.header("Connection"), "close", file: file, line: line)
        if let error {
            XCTAssertEqual(response.json["error"] as? String, error, file: file, line: line)
            let detail = response.json["detail"] as? String ?? ""
            XCTAssertFalse(
                detail.isEmpty || detail.contains("\n"), "a one-line reason: \(detail)", file: file,
                line: line)
        }
        XCTAssertTrue(
            client.serverClosed(), "the unread body is never parsed as a request", file: file, line: line)
        XCTAssertEqual(try ferry.spoolContents(), [], "no file left", file: file, line: line)
        XCTAssertEqual(ferry.logLines(containing: "push").count, 0, "nothing pushed", file: file, line: line)
        return response
    }

    func testInvalidOrMissingHeadersGet400() throws {
        let ferry = try FerryProcess()
        let cases: [(String, [(String, String)])] = [
            ("missing container", [("X-File-Path", "/tmp/x")]),
            ("missing path", [("X-Container-Name", "c1")]),
            ("option-like container", [("X-Container-Name", "-c1"), ("X-File-Path", "/tmp/x")]),
            ("remote prefix", [("X-Container-Name", "remote:c1"), ("X-File-Path", "/tmp/x")]),
            ("all-digit container", [("X-Container-Name", "1234"), ("X-File-Path", "/tmp/x")]),
            ("relative path", [("X-Container-Name", "c1"), ("X-File-Path", "tmp/x")]),
            ("dot-dot segment", [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/../etc/passwd")]),
            ("directory without host path", [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/")]),
            (
                "directory with unusable host path",
                [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/"), ("X-Host-Path", "/home/..")]
            ),
            ("bad mode", valid + [("X-File-Mode", "0999")]),
            ("bad uid", valid + [("X-File-Uid", "-1")]),
            ("bad create-dirs", valid + [("X-Create-Dirs", "yes")]),
            ("duplicate container", valid + [("X-Container-Name", "c2")]),
        ]
        for (name, headers) in cases {
            XCTAssertNoThrow(try assertRefusedBeforeBody(ferry, headers, status: 400, error: nil), name)
        }
        _ = try assertRefusedBeforeBody(
            ferry, [("X-File-Path", "/tmp/x")], status: 400, error: "missing_header")
        _ = try assertRefusedBeforeBody(
            ferry, valid + [("X-File-Mode", "9")], status: 400, error: "invalid_header")
    }

    func testDuplicateContentLengthGets400() throws {
        let ferry = try FerryProcess()
        _ = try assertRefusedBeforeBody(
            ferry, valid + [("Content-Length", "10"), ("Content-Length", "4096")], status: 400,
            error: "bad_framing")
    }

    func testUnknownPathGets404() throws {
        let ferry = try FerryProcess()
        _ = try assertRefusedBeforeBody(ferry, target: "/uploads", valid, status: 404, error: "not_found")
    }

    func testOtherMethodOnUploadGets405WithAllow() throws {
        let ferry = try FerryProcess()
        let response = try assertRefusedBeforeBody(
            ferry, method: "PUT", valid, status: 405, error: "method_not_allowed")
        XCTAssertEqual(response.header("Allow"), "POST")
    }

    func testDeclaredBodyOverTheLimitGets413() throws {
        let ferry = try FerryProcess(arguments: ["--max-body-size", "1K"])
        _ = try assertRefusedBeforeBody(
            ferry, valid + [("Content-Length", "1025")], status: 413, error: "body_too_large")
    }

    func testStreamedBodyOverTheLimitGets413AndLeavesNothing() throws {
        let ferry = try FerryProcess(arguments: ["--max-body-size", "64K"])
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead("POST", "/upload", valid + [("Transfer-Encoding", "chunked")])
        try client.sendChunk(randomBytes(40_000))
        try client.sendChunk(randomBytes(40_000))
        let response = try client.readResponse()

        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(response.header("Connection"), "close")
        try ferry.waitForLog(containing: "upload aborted")
        XCTAssertEqual(try ferry.spoolContents(), [])
        XCTAssertEqual(ferry.logLines(containing: "push").count, 0)
    }

    func testFullQueueGets503WithRetryAfter() throws {
        let ferry = try FerryProcess(arguments: ["--queue-capacity", "1"])
        // The first upload holds the only place while its body is outstanding.
        let holder = try RawHTTPClient(port: ferry.port)
        try holder.sendHead(
            "POST", "/upload", valid + [("Content-Length", "1000"), ("Expect", "100-continue")])
        XCTAssertEqual(try holder.readResponse().status, 100)

        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead(
            "POST", "/upload", valid + [("Content-Length", "4096"), ("Expect", "100-continue")])
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 503)
        XCTAssertEqual(response.header("Retry-After"), "5")
        XCTAssertEqual(response.json["error"] as? String, "queue_full")
        XCTAssertEqual(response.header("Connection"), "close")
        XCTAssertTrue(client.serverClosed())

        holder.abort()
        try ferry.waitForLog(containing: "upload aborted")
        XCTAssertEqual(try ferry.spoolContents(), [])
    }

    func testSpoolByteBoundGets503BeforeTheBody() throws {
        let ferry = try FerryProcess(arguments: ["--spool-max-bytes", "10K"])
        let response = try assertRefusedBeforeBody(
            ferry, valid + [("Content-Length", "10241")], status: 503, error: "spool_full")
        XCTAssertEqual(response.header("Retry-After"), "5")
        XCTAssertEqual(
            try Uploads.post(to: ferry, valid, body: randomBytes(10240)).status, 202, "up to the bound")
    }

    func testClientLeavingMidBodyLeavesNoFileAndNoTask() throws {
        let ferry = try FerryProcess()
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead("POST", "/upload", valid + [("Content-Length", "10000000")])
        try client.send(randomBytes(600_000))
        try waitUntil("the body is arriving") { try ferry.openSpoolFiles().count == 1 }
        client.abort()

        try ferry.waitForLog(containing: "upload aborted")
        XCTAssertEqual(try ferry.spoolContents(), [])
        XCTAssertEqual(try ferry.openSpoolFiles(), [], "the unnamed file is closed, so its space is free")
        XCTAssertEqual(ferry.logLines(containing: "push").count, 0)
        XCTAssertEqual(ferry.logLines(containing: "upload accepted").count, 0)
        let health = try RawHTTPClient(port: ferry.port)
        try health.sendHead("GET", "/healthz", [])
        XCTAssertEqual(try health.readResponse().status, 200, "the server still serves")
    }

    func testConnectionsPastTheLimitAreRefusedPolitely() throws {
        let ferry = try FerryProcess(arguments: ["--max-connections", "3"])
        var idle = try (0..<3).map { _ in try RawHTTPClient(port: ferry.port) }
        // One answered request each: then every loop has surely accepted (and counted) them.
        for connection in idle {
            try connection.sendHead("GET", "/healthz", [])
            XCTAssertEqual(try connection.readResponse().status, 200)
        }
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead("GET", "/healthz", [])
        let refused = try client.readResponse()
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(refused.json["error"] as? String, "too_many_connections")
        XCTAssertEqual(refused.header("Retry-After"), "5")
        XCTAssertTrue(client.serverClosed())

        for connection in idle { connection.abort() }
        idle.removeAll()
        try waitUntil("a connection is served again") {
            let retry = try RawHTTPClient(port: ferry.port)
            try retry.sendHead("GET", "/healthz", [])
            return try retry.readResponse().status == 200
        }
    }

    func testHeadAnswersCarryALengthAndNoBody() throws {
        let ferry = try FerryProcess()
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead("HEAD", "/healthz", [])
        try client.sendHead("GET", "/healthz", [])
        let head = try client.readResponse(toHead: true)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("Content-Length"), "21")
        let get = try client.readResponse()
        XCTAssertEqual(get.status, 200, "the HEAD answer had no body to be taken for the next answer")
        XCTAssertEqual(get.body.count, 21)
    }

    func testHealthzAnswers200() throws {
        let ferry = try FerryProcess()
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead("GET", "/healthz", [])
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.json["status"] as? String, "serving")
    }
}
