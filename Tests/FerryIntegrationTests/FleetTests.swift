import Foundation
import XCTest

/// Two Ferry nodes behind a real nginx running the shipped `deploy/nginx/ferry-nodes.conf`:
/// uploads spread over both, and every request about a task or a tus upload reaches the
/// node that holds it, named in its id.
final class FleetTests: XCTestCase {
    private struct Accepted {
        var id: String
        var path: String
        var body: [UInt8]
    }

    /// What the concurrent clients got.
    private final class Collected: @unchecked Sendable {
        // `@unchecked`: every access is under the lock.
        private let lock = NSLock()
        private var accepted: [Accepted] = []
        private var failures: [String] = []

        func add(_ upload: Accepted) {
            lock.withLock { accepted.append(upload) }
        }

        func fail(_ reason: String) {
            lock.withLock { failures.append(reason) }
        }

        var snapshot: ([Accepted], [String]) { lock.withLock { (accepted, failures) } }
    }

    func testUploadsSpreadOverTheNodesAndEachTaskIsAnsweredByItsOwnNode() throws {
        let first = try FerryProcess(arguments: ["--node-id", "n1"])
        let second = try FerryProcess(arguments: ["--node-id", "n2"])
        let nginx = try Nginx(nodePorts: first.port, second.port)
        let directory = "/tmp/fleet-\(UInt32.random(in: 0...UInt32.max))"
        try Incus.run(["exec", "c1", "--", "mkdir", "-p", directory])

        // 200 uploads from 8 clients at once: least_conn spreads them.
        let results = Collected()
        let port = nginx.port
        DispatchQueue.concurrentPerform(iterations: 8) { client in
            for index in 0..<25 {
                let path = "\(directory)/f-\(client)-\(index)"
                let body = Array("\(path)\n".utf8) + randomBytes(Int.random(in: 1...4096))
                do {
                    let answer = try Uploads.postPort(
                        port, [("X-Container-Name", "c1"), ("X-File-Path", path)], body: body)
                    if answer.status == 202 {
                        results.add(Accepted(id: Uploads.taskID(answer), path: path, body: body))
                    } else {
                        results.fail("\(answer.status) \(answer.text)")
                    }
                } catch {
                    results.fail("\(error)")
                }
            }
        }
        let (accepted, failures) = results.snapshot
        XCTAssertEqual(failures, [])
        XCTAssertEqual(accepted.count, 200)
        let onFirst = accepted.filter { $0.id.hasPrefix("n1-") }.count
        let onSecond = accepted.filter { $0.id.hasPrefix("n2-") }.count
        XCTAssertEqual(onFirst + onSecond, 200, "every id names its node")
        XCTAssertGreaterThan(onFirst, 0, "n1 got uploads")
        XCTAssertGreaterThan(onSecond, 0, "n2 got uploads")

        // Through nginx, each task is answered by its node (the other does not know it).
        for task in accepted {
            let answer = try TaskAPI.requestPort(nginx.port, "GET", "/tasks/\(task.id)")
            XCTAssertEqual(answer.status, 200, "\(task.id): \(answer.text)")
            XCTAssertEqual(answer.json["path"] as? String, task.path)
        }
        let holder = accepted[0].id.hasPrefix("n1-") ? first : second
        let other = holder === first ? second : first
        XCTAssertEqual(try TaskAPI.request(holder, "GET", "/tasks/\(accepted[0].id)").status, 200)
        XCTAssertEqual(try TaskAPI.request(other, "GET", "/tasks/\(accepted[0].id)").status, 404)
        try waitUntil("every file is delivered", timeout: 120) {
            try accepted.allSatisfy {
                try TaskAPI.requestPort(nginx.port, "GET", "/tasks/\($0.id)").json["state"] as? String
                    == "delivered"
            }
        }
        let count = try Incus.run(["exec", "c1", "--", "sh", "-c", "ls \(directory) | wc -l"])
        XCTAssertEqual(
            String(decoding: count, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), "200")
        for task in accepted.shuffled().prefix(20) {
            XCTAssertEqual(try Incus.sha256(container: "c1", path: task.path), try Command.sha256(task.body))
        }
        // One node's console, whose API calls stay under its prefix.
        let console = try TaskAPI.requestPort(nginx.port, "GET", "/nodes/n2/ui/")
        XCTAssertEqual(console.status, 200)
        XCTAssertTrue(console.text.contains(#"src="console.js""#), "assets relative to the page's prefix")
        XCTAssertEqual(try TaskAPI.requestPort(nginx.port, "GET", "/nodes/n2/ui/console.js").status, 200)
        // One node's own listing, and an id naming no node of the site.
        let listed = try TaskAPI.requestPort(nginx.port, "GET", "/nodes/n2/tasks?limit=1000")
        XCTAssertEqual((listed.json["tasks"] as? [[String: Any]])?.count, onSecond, listed.text)
        let unknown = try TaskAPI.requestPort(
            nginx.port, "GET", "/tasks/n9-\(String(repeating: "0", count: 32))")
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual(unknown.json["error"] as? String, "unknown_task")
        try Incus.remove(container: "c1", path: directory)
    }

    func testATusUploadStartedThroughNginxIsResumedThroughNginxOnItsNode() throws {
        let first = try FerryProcess(arguments: ["--node-id", "n1"])
        let second = try FerryProcess(arguments: ["--node-id", "n2"])
        let nginx = try Nginx(nodePorts: first.port, second.port)
        let path = "/tmp/fleet-tus-\(UInt32.random(in: 0...UInt32.max))"
        let body = randomBytes(3 << 20)
        let location = try Tus.location(nginx, length: body.count, path: path)
        let id = Tus.id(location)
        XCTAssertTrue(id.hasPrefix("n1-") || id.hasPrefix("n2-"), id)
        XCTAssertEqual(try Tus.patch(nginx, location, offset: 0, Array(body[0..<(1 << 20)])).status, 204)
        // Other requests in between may go to either node; the upload's go to its own.
        for _ in 0..<4 { _ = try TaskAPI.requestPort(nginx.port, "GET", "/stats") }
        let offset = try Tus.offset(nginx, location)
        XCTAssertEqual(offset, 1 << 20)
        XCTAssertEqual(try Tus.patch(nginx, location, offset: offset, Array(body[offset...])).status, 204)
        try waitUntil("delivered", timeout: 60) {
            try TaskAPI.requestPort(nginx.port, "GET", "/tasks/\(id)").json["state"] as? String == "delivered"
        }
        XCTAssertEqual(try Incus.sha256(container: "c1", path: path), try Command.sha256(body))
        try Incus.remove(container: "c1", path: path)
    }

    /// Sends 20 uploads through `nginx` and asserts each was accepted by node n2.
    private func assertUploadsGoToN2(
        through nginx: Nginx, named prefix: String, _ message: String, line: UInt = #line
    ) throws {
        for index in 0..<20 {
            let answer = try Uploads.postPort(
                nginx.port, [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/\(prefix)-\(index)")],
                body: [2])
            XCTAssertEqual(answer.status, 202, answer.text, line: line)
            XCTAssertTrue(Uploads.taskID(answer).hasPrefix("n2-"), message, line: line)
        }
    }

    func testANodeThatIsNotReadyGetsNoNewUploadsUntilItIsReadyAgain() throws {
        // n1's spool on a small file system of its own: filling it takes n1's free disk
        // below its reserve (not ready), emptying it gives it back.
        let mountPoint = NSTemporaryDirectory() + "ferry-fleet-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try Command.run("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", mountPoint])
        defer {
            _ = try? Command.run("umount", ["-l", mountPoint])
            try? FileManager.default.removeItem(atPath: mountPoint)
        }
        let first = try FerryProcess(
            arguments: [
                "--node-id", "n1", "--close-when-unready", "--readiness-interval", "200ms", "--min-free-disk",
                "32M",
            ],
            spool: URL(fileURLWithPath: mountPoint).appendingPathComponent("spool"))
        let second = try FerryProcess(arguments: ["--node-id", "n2"])
        let nginx = try Nginx(nodePorts: first.port, second.port)
        try first.waitForLog(containing: "[FerryServer] ready")

        let filler = mountPoint + "/filler"
        try Data(count: 40 << 20).write(to: URL(fileURLWithPath: filler))
        try first.waitForLog(containing: "listener closed")
        try assertUploadsGoToN2(
            through: nginx, named: "fleet-unready", "a node that is not ready gets no new upload")

        try FileManager.default.removeItem(atPath: filler)
        try first.waitForLog(containing: "ready again: listening")
        // nginx leaves a failed node alone for fail_timeout (10 s), then sends it uploads again.
        var index = 0
        try waitUntil("n1 takes uploads again", timeout: 40) {
            index += 1
            let answer = try Uploads.postPort(
                nginx.port, [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/fleet-back-\(index)")],
                body: [5])
            XCTAssertEqual(answer.status, 202, answer.text)
            // One upload every 50 ms while waiting, not a flood.
            usleep(50_000)
            return Uploads.taskID(answer).hasPrefix("n1-")
        }
    }

    func testADrainingNodeGetsNoNewUploads() throws {
        let first = try FerryProcess(arguments: ["--node-id", "n1", "--shutdown-timeout", "20"])
        let second = try FerryProcess(arguments: ["--node-id", "n2"])
        let nginx = try Nginx(nodePorts: first.port, second.port)
        // nginx keeps idle connections to both nodes (requests spread by least_conn).
        for _ in 0..<20 { XCTAssertEqual(try TaskAPI.requestPort(nginx.port, "GET", "/stats").status, 200) }
        // n1 holds an upload in progress, so it drains (listener closed) rather than exits.
        let slow = try RawHTTPClient(port: first.port)
        try slow.sendHead(
            "POST", "/upload",
            [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/fleet-slow"), ("Content-Length", "10")])
        try slow.send([1])
        try waitUntil("n1 receives the body") {
            try TaskAPI.request(first, "GET", "/metrics").text.contains("ferry_uploads_in_flight 1")
        }
        kill(first.process.processIdentifier, SIGTERM)
        try first.waitForLog(containing: "stopping")
        try assertUploadsGoToN2(through: nginx, named: "fleet-drain", "a draining node gets no new upload")
        try slow.send(Array(repeating: 3, count: 9))
        let finished = try slow.readResponse()
        XCTAssertEqual(
            finished.status, 202,
            "the upload in progress on n1 completes: \(first.logLines(containing: "ferry").suffix(8).joined(separator: "\n"))"
        )
    }
}
