import CSystem
import Foundation
import XCTest

/// A 202 means "will be delivered": across kill -9, SIGTERM and Incus outages.
final class DurabilityTests: XCTestCase {
    private func uniqueDirectory() -> String {
        "/tmp/durable-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// SHA-256 of every file in a container directory, by name.
    private func hashes(in directory: String) throws -> [String: String] {
        let output = try Incus.run(["exec", "c1", "--", "sh", "-c", "cd \(directory) && sha256sum *"])
        var result: [String: String] = [:]
        for line in String(decoding: output, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count == 2 { result[String(parts[1])] = String(parts[0]) }
        }
        return result
    }

    /// Uploads `body` to c1 as `directory/name` (directories created), checks the 202, and
    /// returns the body's SHA-256.
    private func uploadAccepted(
        to ferry: FerryProcess, _ directory: String, _ name: String, _ body: [UInt8],
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> String {
        let response = try Uploads.post(
            to: ferry,
            [("X-Container-Name", "c1"), ("X-File-Path", "\(directory)/\(name)"), ("X-Create-Dirs", "true")],
            body: body)
        XCTAssertEqual(response.status, 202, name, file: file, line: line)
        return try Command.sha256(body)
    }

    func testKill9WithABacklogLosesNoAcceptedUpload() throws {
        let directory = uniqueDirectory()
        try Incus.stopDaemon()
        var daemonUp = false
        defer { if !daemonUp { try? Incus.startDaemon() } }
        let first = try FerryProcess(arguments: [
            "--retry-base", "50ms", "--retry-max", "200ms", "--max-attempts", "100000",
        ])
        var expected: [String: String] = [:]
        for number in 0..<500 {
            let name = "file-\(number)"
            expected[name] = try uploadAccepted(
                to: first, directory, name, randomBytes(Int.random(in: 1...4096)))
        }
        XCTAssertEqual(first.end(with: SIGKILL).exitStatus, nil, "killed, not exited")

        try Incus.startDaemon()
        daemonUp = true
        let second = try FerryProcess(arguments: ["--retention", "0"], spool: first.spool)
        try second.waitForLog(containing: "spool recovered", "requeued=500")
        try waitUntil("all 500 are delivered", timeout: 300) {
            second.logLines(containing: "outcome=delivered").count >= 500
        }
        XCTAssertEqual(try hashes(in: directory), expected)
        try waitUntil("the spool is empty") { try second.spoolContents().isEmpty }
        try Incus.remove(container: "c1", path: directory)
    }

    func testARecordWithTheLongestDestinationIsKeptAndSurvivesKill9() throws {
        // 350 segments, 3,856 bytes: round 1 refused it (its record did not fit ext4's 4 KiB
        // attribute); a row holds it.
        let directory = "/tmp/long-path1" + String(repeating: "/abcdefghij", count: 349)
        let path = directory + "/f"
        XCTAssertEqual(path.utf8.count, 3_856)
        let gate = Gate()
        let first = try FerryProcess(arguments: ["--incus", Gate.incus], environment: gate.environment)
        let body = randomBytes(1000)
        let response = try Uploads.post(
            to: first, [("X-Container-Name", "c1"), ("X-File-Path", path), ("X-Create-Dirs", "true")],
            body: body)
        XCTAssertEqual(response.status, 202, "\(response.json)")
        let id = Uploads.taskID(response)
        XCTAssertEqual(try first.spoolContents(), ["\(id).data"], "its bytes, and no record file")
        XCTAssertEqual(try TaskAPI.get(first, id)["path"] as? String, path)
        XCTAssertEqual(first.end(with: SIGKILL).exitStatus, nil)

        let second = try FerryProcess(spool: first.spool)
        XCTAssertTrue(try second.waitForSettlement(of: id).contains("outcome=delivered"))
        XCTAssertEqual(try Incus.sha256(container: "c1", path: path), try Command.sha256(body))
        try Incus.remove(container: "c1", path: "/tmp/long-path1")
    }

    func testKill9MidBodyLosesOnlyThatUpload() throws {
        let directory = uniqueDirectory()
        try Incus.stopDaemon()
        var daemonUp = false
        defer { if !daemonUp { try? Incus.startDaemon() } }
        let first = try FerryProcess(arguments: ["--retry-base", "50ms", "--max-attempts", "100000"])
        var expected: [String: String] = [:]
        for name in ["a", "b", "c"] {
            expected[name] = try uploadAccepted(to: first, directory, name, randomBytes(10_000))
        }
        let partial = try RawHTTPClient(port: first.port)
        try partial.sendHead(
            "POST", "/upload",
            [
                ("X-Container-Name", "c1"), ("X-File-Path", "\(directory)/partial"),
                ("X-Create-Dirs", "true"),
                ("Content-Length", "1000000"),
            ])
        try partial.send(randomBytes(300_000))
        try waitUntil("the partial body has arrived") {
            try Self.bodyBytesArrived(at: first) >= 30_000 + 300_000
        }
        XCTAssertFalse(
            try first.spoolContents().contains { !$0.hasSuffix(".data") }, "nothing but the tasks' bytes")
        XCTAssertEqual(try first.spoolContents().count, 3, "a body still arriving has no name in the spool")
        _ = first.end(with: SIGKILL)

        try Incus.startDaemon()
        daemonUp = true
        let second = try FerryProcess(arguments: ["--retention", "0"], spool: first.spool)
        // The killed upload's file never had a name: nothing of it is left to find.
        try second.waitForLog(containing: "spool recovered", "requeued=3", "data_removed=0")
        try waitUntil("the three are delivered") {
            second.logLines(containing: "outcome=delivered").count >= 3
        }
        XCTAssertEqual(try hashes(in: directory), expected, "the partial upload is not delivered")
        try waitUntil("the spool is empty") { try second.spoolContents().isEmpty }
        try Incus.remove(container: "c1", path: directory)
    }

    func testSIGTERMFinishesUploadsInProgressAndExitsCleanly() throws {
        let directory = uniqueDirectory()
        let gate = Gate()
        let first = try FerryProcess(
            arguments: ["--incus", Gate.incus, "--shutdown-timeout", "3s"], environment: gate.environment)
        // One push in progress (held at the gate) ...
        let pushed = randomBytes(5000)
        let held = try Uploads.post(
            to: first,
            [("X-Container-Name", "c1"), ("X-File-Path", "\(directory)/pushed"), ("X-Create-Dirs", "true")],
            body: pushed)
        XCTAssertEqual(held.status, 202)
        try waitUntil("the push is in progress") {
            try TaskAPI.state(first, Uploads.taskID(held)) == "pushing"
        }
        // ... and one upload whose body is half sent.
        let late = randomBytes(200_000)
        let client = try RawHTTPClient(port: first.port)
        try client.sendHead(
            "POST", "/upload",
            [
                ("X-Container-Name", "c1"), ("X-File-Path", "\(directory)/late"), ("X-Create-Dirs", "true"),
                ("Content-Length", String(late.count)),
            ])
        try client.send(Array(late[..<100_000]))
        try waitUntil("the upload is in progress") {
            try Self.bodyBytesArrived(at: first) >= UInt64(pushed.count + 100_000)
        }

        kill(first.process.processIdentifier, SIGTERM)
        try first.waitForLog(containing: "stopping")
        XCTAssertThrowsError(try RawHTTPClient(port: first.port), "no new connections after SIGTERM")
        try client.send(Array(late[100_000...]))
        XCTAssertEqual(try client.readResponse().status, 202, "the upload in progress is finished")
        let ending = first.end(with: 0)
        XCTAssertEqual(ending.exitStatus, 0)
        XCTAssertLessThan(ending.seconds, 10, "within the shutdown deadline")
        XCTAssertGreaterThanOrEqual(
            first.logLines(containing: "push interrupted by shutdown").count, 1,
            first.logLines(containing: "").suffix(8).joined(separator: "\n"))

        let second = try FerryProcess(arguments: ["--retention", "0"], spool: first.spool)
        try second.waitForLog(containing: "spool recovered", "requeued=2")
        try waitUntil("both are delivered") { second.logLines(containing: "outcome=delivered").count >= 2 }
        XCTAssertEqual(
            try hashes(in: directory),
            ["pushed": try Command.sha256(pushed), "late": try Command.sha256(late)])
        try Incus.remove(container: "c1", path: directory)
    }

    /// Body bytes Ferry has received so far, all uploads together.
    static func bodyBytesArrived(at ferry: FerryProcess) throws -> UInt64 {
        UInt64(try Metrics.scrape(ferry)["ferry_http_request_bytes_total", default: 0])
    }
}
