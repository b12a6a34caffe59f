import Foundation
import XCTest

/// Uploads that are accepted end in the container, as asked.
final class DeliveryTests: XCTestCase {
    func testAcceptedUploadArrivesWithSameContentModeAndOwner() throws {
        let ferry = try FerryProcess()
        let body = randomBytes(300_000)
        let path = "/tmp/delivery-\(UInt32.random(in: 0...UInt32.max)).bin"
        let response = try Uploads.post(
            to: ferry,
            [
                ("X-Container-Name", "c1"), ("X-File-Path", path), ("X-File-Mode", "0640"),
                ("X-File-Uid", "1000"), ("X-File-Gid", "1001"),
            ], body: body)

        XCTAssertEqual(response.status, 202)
        XCTAssertEqual(response.json["status"] as? String, "queued")
        XCTAssertEqual(response.json["bytes"] as? Int, body.count)
        XCTAssertEqual(response.json["path"] as? String, path)
        let id = Uploads.taskID(response)
        XCTAssertEqual(response.header("Location"), "/tasks/\(id)")
        let name = String(path.split(separator: "/").last!)
        XCTAssertEqual(
            response.json["message"] as? String, "File '\(name)' queued for processing on container 'c1'.")

        XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("outcome=delivered"))
        XCTAssertEqual(try Incus.sha256(container: "c1", path: path), try Command.sha256(body))
        XCTAssertEqual(try Incus.stat(container: "c1", path: path), "640 1000 1001 \(body.count)")
        XCTAssertEqual(
            try ferry.spoolContents(), [], "the bytes are removed after delivery; no file per task")
        XCTAssertEqual(try TaskAPI.state(ferry, id), "delivered", "the task is kept as a row")
        for name in ["tasks.db", "tasks.db-wal"] {
            let store = try FileManager.default.attributesOfItem(
                atPath: ferry.spool.appendingPathComponent(name).path)
            XCTAssertEqual(store[.posixPermissions] as? Int, 0o600, "the task store is private: \(name)")
        }
    }

    func testTrailingSlashDeliversIntoTheDirectoryUnderTheHostFileName() throws {
        let ferry = try FerryProcess()
        let body = randomBytes(1000)
        let response = try Uploads.post(
            to: ferry,
            [
                ("X-Container-Name", "c1"), ("X-File-Path", "/root/"),
                ("X-Host-Path", "/home/ana/report 1.txt"),
            ],
            body: body)

        XCTAssertEqual(response.status, 202)
        XCTAssertEqual(response.json["path"] as? String, "/root/report 1.txt")
        try ferry.waitForSettlement(of: Uploads.taskID(response))
        XCTAssertEqual(
            try Incus.sha256(container: "c1", path: "/root/report 1.txt"), try Command.sha256(body))
        XCTAssertEqual(try Incus.stat(container: "c1", path: "/root/report 1.txt"), "644 0 0 1000")
    }

    func testCreateDirsMakesMissingParentDirectories() throws {
        let ferry = try FerryProcess()
        let body = randomBytes(2000)
        let directory = "/srv/created-\(UInt32.random(in: 0...UInt32.max))"
        let response = try Uploads.post(
            to: ferry,
            [
                ("X-Container-Name", "c1"), ("X-File-Path", "\(directory)/a/b/file"),
                ("X-Create-Dirs", "true"),
            ],
            body: body)

        XCTAssertEqual(response.status, 202)
        XCTAssertTrue(try ferry.waitForSettlement(of: Uploads.taskID(response)).contains("outcome=delivered"))
        XCTAssertEqual(
            try Incus.sha256(container: "c1", path: "\(directory)/a/b/file"), try Command.sha256(body))
        try Incus.remove(container: "c1", path: directory)
    }

    func testChunkedBodyIsDeliveredWhole() throws {
        let ferry = try FerryProcess()
        let pieces = (0..<20).map { _ in randomBytes(Int.random(in: 1...50_000)) }
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead(
            "POST", "/upload",
            [
                ("X-Container-Name", "c2"), ("X-File-Path", "/tmp/chunked.bin"),
                ("Transfer-Encoding", "chunked"),
            ])
        for piece in pieces { try client.sendChunk(piece) }
        try client.sendLastChunk()
        let response = try client.readResponse()

        XCTAssertEqual(response.status, 202)
        XCTAssertEqual(response.json["bytes"] as? Int, pieces.map(\.count).reduce(0, +))
        try ferry.waitForSettlement(of: Uploads.taskID(response))
        XCTAssertEqual(
            try Incus.sha256(container: "c2", path: "/tmp/chunked.bin"),
            try Command.sha256(pieces.flatMap { $0 }))
    }

    func testWorkersRunThatManyPushesAtOnce() throws {
        let rendezvous = NSTemporaryDirectory() + "ferry-rendezvous-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: rendezvous, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: rendezvous) }
        let fixture = URL(fileURLWithPath: Gate.incus).deletingLastPathComponent()
            .appendingPathComponent("rendezvous-incus").path
        // Each push succeeds only if all four run at once; 4 is twice the cores here.
        let ferry = try FerryProcess(
            arguments: ["--workers", "4", "--incus", fixture, "--max-attempts", "1"],
            environment: ["FERRY_TEST_RENDEZVOUS": rendezvous, "FERRY_TEST_RENDEZVOUS_COUNT": "4"])
        let ids = try (0..<4).map { index in
            // Four directories: four pushes, not one batch.
            Uploads.taskID(
                try Uploads.post(
                    to: ferry,
                    [
                        ("X-Container-Name", "c1"), ("X-File-Path", "/tmp/workers-\(index)/file"),
                        ("X-Create-Dirs", "true"),
                    ], body: [UInt8(index)]))
        }
        for id in ids {
            let settled = try ferry.waitForSettlement(of: id)
            XCTAssertTrue(settled.contains("outcome=delivered"), settled)
        }
        for index in 0..<4 { try Incus.remove(container: "c1", path: "/tmp/workers-\(index)") }
    }

    func testMissingInstanceFailsAfterOneAttemptAsADeadLetter() throws {
        let ferry = try FerryProcess(arguments: ["--retry-base", "10ms", "--max-attempts", "5"])
        let response = try Uploads.post(
            to: ferry, [("X-Container-Name", "no-such-instance"), ("X-File-Path", "/tmp/x")],
            body: randomBytes(100))

        XCTAssertEqual(response.status, 202)
        let id = Uploads.taskID(response)
        let final = try ferry.waitForSettlement(of: id)
        XCTAssertTrue(final.contains("delivery failed"), final)
        XCTAssertTrue(final.contains("attempts=1"), final)
        XCTAssertTrue(final.contains("Instance not found"), final)
        XCTAssertEqual(ferry.logLines(containing: "task=\(id)", "push").count, 1, "one attempt only")
        let status = try TaskAPI.get(ferry, id)
        XCTAssertEqual(status["state"] as? String, "failed")
        XCTAssertEqual(status["attempts"] as? Int, 1)
        XCTAssertTrue((status["last_error"] as? String ?? "").contains("Instance not found"))
    }

    func testPushesRetryWhileTheDaemonIsDownAndDeliverWhenItReturns() throws {
        let ferry = try FerryProcess(arguments: [
            "--retry-base", "100ms", "--retry-max", "500ms", "--max-attempts", "1000",
        ])
        try Incus.stopDaemon()
        var restarted = false
        defer { if !restarted { try? Incus.startDaemon() } }
        let body = randomBytes(50_000)
        let response = try Uploads.post(
            to: ferry, [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/after-outage.bin")], body: body)
        XCTAssertEqual(response.status, 202)
        let id = Uploads.taskID(response)

        // Two failed attempts prove the failure is classified transient and retried.
        try ferry.waitForLog(containing: "task=\(id)", "outcome=retry", "attempt=2")
        // Said by the symlink check (which cannot reach the daemon either) or by incus.
        XCTAssertTrue(
            ferry.logLines(containing: "task=\(id)", "outcome=retry").first?.lowercased().contains(
                "incus daemon")
                ?? false)
        try Incus.startDaemon()
        restarted = true

        XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("outcome=delivered"))
        XCTAssertEqual(
            try Incus.sha256(container: "c1", path: "/tmp/after-outage.bin"), try Command.sha256(body))
        XCTAssertEqual(try ferry.spoolContents(), [], "the bytes are removed after delivery")
    }
}
