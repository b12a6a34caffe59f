import CSystem
import Foundation
import XCTest

/// `/tasks`: status, dead letters, idempotency.
final class TaskAPITests: XCTestCase {
    func testStatusMovesThroughQueuedPushingRetryingDelivered() throws {
        let gate = Gate()
        let ferry = try FerryProcess(
            arguments: [
                "--incus", Gate.incus, "--workers", "1", "--retry-base", "100ms", "--retry-max", "200ms",
                "--max-attempts", "1000",
            ], environment: gate.environment)
        let first = Uploads.taskID(
            try Uploads.post(
                to: ferry, [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/states-1")], body: [1]))
        try waitUntil("the first push is in progress") { try TaskAPI.state(ferry, first) == "pushing" }
        let second = Uploads.taskID(
            try Uploads.post(
                to: ferry, [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/states-2")], body: [2]))
        let waiting = try TaskAPI.get(ferry, second)
        XCTAssertEqual(waiting["state"] as? String, "queued", "the only worker is busy")
        XCTAssertEqual(waiting["attempts"] as? Int, 0)
        XCTAssertTrue(waiting["last_error"] is NSNull)
        XCTAssertEqual(waiting["container"] as? String, "c1")
        XCTAssertEqual(waiting["path"] as? String, "/tmp/states-2")
        XCTAssertEqual(waiting["bytes"] as? Int, 1)
        XCTAssertNotNil(waiting["created_at"] as? String)

        try Incus.stopDaemon()
        var daemonUp = false
        defer { if !daemonUp { try? Incus.startDaemon() } }
        gate.open()
        try waitUntil("the first push failed and waits to retry") {
            try TaskAPI.state(ferry, first) == "retrying"
        }
        let retrying = try TaskAPI.get(ferry, first)
        XCTAssertGreaterThanOrEqual(retrying["attempts"] as? Int ?? 0, 1)
        // Said by incus, or by the symlink check when a retry finds the daemon still down.
        XCTAssertTrue(
            (retrying["last_error"] as? String ?? "").lowercased().contains("incus daemon"), "\(retrying)")

        try Incus.startDaemon()
        daemonUp = true
        try waitUntil("both are delivered") {
            try TaskAPI.state(ferry, first) == "delivered" && TaskAPI.state(ferry, second) == "delivered"
        }
        XCTAssertTrue(try TaskAPI.get(ferry, first)["last_error"] is NSNull)
    }

    func testDeadLettersAreRetriedAndDeletedInBulkAndFoundById() throws {
        let missing = [
            "gone-\(UInt32.random(in: 0...UInt32.max))", "lost-\(UInt32.random(in: 0...UInt32.max))",
        ]
        let ferry = try FerryProcess(arguments: ["--max-attempts", "1"])
        var ids: [String: [String]] = [:]
        for (index, container) in [missing[0], missing[0], missing[0], missing[1], missing[1]].enumerated() {
            let response = try Uploads.post(
                to: ferry, [("X-Container-Name", container), ("X-File-Path", "/root/f\(index)")],
                body: [UInt8(index)])
            ids[container, default: []].append(Uploads.taskID(response))
        }
        let all = ids.values.flatMap { $0 }
        try waitUntil("all five are dead letters", timeout: 60) {
            try all.allSatisfy { try TaskAPI.state(ferry, $0) == "failed" }
        }
        // A search by id.
        let one = all[0]
        let found = try TaskAPI.request(ferry, "GET", "/tasks?id_prefix=\(one.prefix(8))")
        XCTAssertEqual(found.status, 200)
        XCTAssertTrue(
            ((found.json["tasks"] as? [[String: Any]]) ?? []).contains { $0["id"] as? String == one })
        XCTAssertEqual(try TaskAPI.request(ferry, "GET", "/tasks?id_prefix=XYZ").status, 400)

        // Bulk actions name dead letters, and nothing else.
        XCTAssertEqual(
            try TaskAPI.request(ferry, "DELETE", "/tasks").status, 400, "never 'delete everything'")
        XCTAssertEqual(try TaskAPI.request(ferry, "POST", "/tasks/retry?state=queued").status, 400)
        XCTAssertEqual(try TaskAPI.request(ferry, "DELETE", "/tasks?state=failed&limit=2").status, 400)

        let deleted = try TaskAPI.request(ferry, "DELETE", "/tasks?state=failed&container=\(missing[1])")
        XCTAssertEqual(deleted.status, 200)
        XCTAssertEqual(deleted.json["deleted"] as? Int, 2)
        for id in ids[missing[1]] ?? [] {
            XCTAssertEqual(try TaskAPI.request(ferry, "GET", "/tasks/\(id)").status, 404)
        }
        let retried = try TaskAPI.request(ferry, "POST", "/tasks/retry?state=failed")
        XCTAssertEqual(retried.status, 200)
        XCTAssertEqual(retried.json["retried"] as? Int, 3, "the three of the other container")
        // The log is read from Ferry's stderr as it comes: it may trail the answer.
        try waitUntil("three retries are logged") { ferry.logLines(containing: "task retried").count >= 3 }
        XCTAssertEqual(ferry.logLines(containing: "task retried").count, 3)
        try waitUntil("they were pushed again and failed again", timeout: 60) {
            try (ids[missing[0]] ?? []).allSatisfy {
                let task = try TaskAPI.get(ferry, $0)
                return task["state"] as? String == "failed" && task["attempts"] as? Int == 1
            }
        }
        XCTAssertEqual(
            try ferry.spoolContents().filter { $0.hasSuffix(".data") }.count, 3,
            "the deleted ones' bytes are gone")
    }

    func testFailedUploadIsADeadLetterThatCanBeRetriedOrDeleted() throws {
        let instance = "late-\(UInt32.random(in: 0...UInt32.max))"
        let ferry = try FerryProcess(arguments: ["--max-attempts", "3", "--retry-base", "10ms"])
        let body = randomBytes(3000)
        let kept = Uploads.taskID(
            try Uploads.post(
                to: ferry, [("X-Container-Name", instance), ("X-File-Path", "/root/kept")], body: body))
        let dropped = Uploads.taskID(
            try Uploads.post(
                to: ferry, [("X-Container-Name", instance), ("X-File-Path", "/root/gone")], body: [7]))
        try waitUntil("both failed") {
            try TaskAPI.state(ferry, kept) == "failed" && TaskAPI.state(ferry, dropped) == "failed"
        }
        XCTAssertTrue(
            (try TaskAPI.get(ferry, kept)["last_error"] as? String ?? "").contains("Instance not found"))
        XCTAssertTrue(try ferry.spoolContents().contains("\(kept).data"), "a dead letter keeps its bytes")
        let manager = FileManager.default
        XCTAssertEqual(
            try manager.attributesOfItem(atPath: ferry.spool.path)[.posixPermissions] as? Int, 0o700)
        let data = ferry.spool.appendingPathComponent("\(kept).data").path
        XCTAssertEqual(try manager.attributesOfItem(atPath: data)[.posixPermissions] as? Int, 0o600)
        XCTAssertEqual(
            Set(try ferry.spoolContents()), ["\(kept).data", "\(dropped).data"],
            "their records are rows, not files")

        // Listing failed tasks, one per page.
        let page = try TaskAPI.request(ferry, "GET", "/tasks?state=failed&limit=1")
        XCTAssertEqual(page.status, 200)
        let tasks = page.json["tasks"] as? [[String: Any]] ?? []
        XCTAssertEqual(tasks.map { $0["id"] as? String }, [kept])
        let next = try XCTUnwrap(page.json["next"] as? String)
        let rest = try TaskAPI.request(ferry, "GET", "/tasks?state=failed&limit=1&after=\(next)")
        XCTAssertEqual((rest.json["tasks"] as? [[String: Any]])?.map { $0["id"] as? String }, [dropped])
        XCTAssertTrue(rest.json["next"] is NSNull || rest.json["next"] == nil)
        XCTAssertEqual(try TaskAPI.request(ferry, "GET", "/tasks?state=lost").status, 400)

        try Incus.run(["launch", "ferry-busybox", instance])
        defer { _ = try? Incus.run(["delete", "--force", instance]) }
        let retried = try TaskAPI.request(ferry, "POST", "/tasks/\(kept)/retry")
        XCTAssertEqual(retried.status, 202)
        XCTAssertEqual(retried.json["state"] as? String, "queued")
        try waitUntil("the retried task is delivered") { try TaskAPI.state(ferry, kept) == "delivered" }
        XCTAssertEqual(try Incus.sha256(container: instance, path: "/root/kept"), try Command.sha256(body))
        XCTAssertEqual(try TaskAPI.request(ferry, "POST", "/tasks/\(kept)/retry").status, 409, "not failed")
        XCTAssertEqual(try TaskAPI.request(ferry, "DELETE", "/tasks/\(kept)").status, 409, "delivered")

        XCTAssertEqual(try TaskAPI.request(ferry, "DELETE", "/tasks/\(dropped)").status, 204)
        XCTAssertEqual(try TaskAPI.request(ferry, "GET", "/tasks/\(dropped)").status, 404)
        XCTAssertFalse(
            try ferry.spoolContents().contains { $0.hasPrefix(dropped) }, "data and record removed")
        XCTAssertEqual(try TaskAPI.request(ferry, "DELETE", "/tasks/\(dropped)").status, 404)
        XCTAssertEqual(try TaskAPI.request(ferry, "POST", "/tasks/nosuchtask/retry").status, 404)
    }

    func testRepeatedIdempotencyKeyMakesOneTaskAndOnePush() throws {
        let ferry = try FerryProcess()
        let key = UUID().uuidString
        let headers = [
            ("X-Container-Name", "c1"), ("X-File-Path", "/tmp/idempotent"), ("Idempotency-Key", key),
        ]
        let first = try Uploads.post(to: ferry, headers, body: randomBytes(1000))
        XCTAssertEqual(first.status, 202)
        let id = Uploads.taskID(first)
        try ferry.waitForSettlement(of: id)
        let again = try Uploads.post(to: ferry, headers, body: randomBytes(1000))
        XCTAssertEqual(again.status, 202)
        XCTAssertEqual(Uploads.taskID(again), id, "the first task's answer")
        XCTAssertEqual(again.body, first.body)

        let all = try TaskAPI.request(ferry, "GET", "/tasks")
        XCTAssertEqual((all.json["tasks"] as? [[String: Any]])?.count, 1, "one task")
        XCTAssertEqual(ferry.logLines(containing: "push", "outcome=").count, 1, "one push")
    }

    func testFinishedTasksAreForgottenWithTheirBytesAfterTheRetention() throws {
        let ferry = try FerryProcess(arguments: ["--retention", "1s"])
        let failed = Uploads.taskID(
            try Uploads.post(
                to: ferry, [("X-Container-Name", "no-such-instance"), ("X-File-Path", "/x")],
                body: randomBytes(100)))
        try waitUntil("it failed") { try TaskAPI.state(ferry, failed) == "failed" }
        XCTAssertTrue(try ferry.spoolContents().contains("\(failed).data"))
        try waitUntil("the retention passed") {
            try TaskAPI.request(ferry, "GET", "/tasks/\(failed)").status == 404
        }
        XCTAssertEqual(try ferry.spoolContents(), [], "record and bytes are gone")
    }
}
