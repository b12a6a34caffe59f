import FerryCore
import Foundation
import XCTest

/// What the web console stands on: pausing deliveries, `/events`, `/stats`, and `/ui/`
/// itself, against a real Ferry and a real Incus.
final class ConsoleAPITests: XCTestCase {
    private let operatorToken = "ops-\(UUID().uuidString)"
    private let aliceToken = "alice-\(UUID().uuidString)"
    private let bobToken = "bob-\(UUID().uuidString)"

    private func policyFile() throws -> String {
        let text = """
            tokens:
              - name: ops
                sha256: \(AccessPolicy.digest(ofToken: operatorToken))
                containers: ["*"]
                paths: [/]
              - name: alice
                sha256: \(AccessPolicy.digest(ofToken: aliceToken))
                containers: [c1]
                paths: [/]
              - name: bob
                sha256: \(AccessPolicy.digest(ofToken: bobToken))
                containers: [c1, c2, "gone-*"]
                paths: [/]
            """
        let path = NSTemporaryDirectory() + "ferry-console-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func call(_ ferry: FerryProcess, _ method: String, _ target: String, token: String? = nil) throws
        -> RawResponse
    {
        try TaskAPI.request(ferry, method, target, token: token)
    }

    private func upload(_ ferry: FerryProcess, _ container: String, _ path: String, token: String? = nil)
        throws -> String
    {
        let response = try Uploads.post(
            to: ferry,
            [("X-Container-Name", container), ("X-File-Path", path)]
                + (token.map { [("Authorization", "Bearer \($0)")] } ?? []),
            body: Array(path.utf8))
        XCTAssertEqual(response.status, 202, response.text)
        return Uploads.taskID(response)
    }

    // MARK: Pauses

    func testAPausedContainerKeepsItsUploadsQueuedAcrossARestartUntilResumed() throws {
        let ferry = try FerryProcess()
        let paused = try call(ferry, "POST", "/deliveries/pause?container=c1")
        XCTAssertEqual(paused.status, 200, paused.text)
        XCTAssertEqual((paused.json["containers"] as? [[String: Any]])?.first?["container"] as? String, "c1")
        let held = try upload(ferry, "c1", "/root/paused-\(UUID().uuidString)")
        // A later upload to a running container is delivered: the workers are free, and
        // still the paused one waits.
        let other = try upload(ferry, "c2", "/root/running-\(UUID().uuidString)")
        try waitUntil("the running container's upload is delivered") {
            try TaskAPI.state(ferry, other) == "delivered"
        }
        XCTAssertEqual(try TaskAPI.state(ferry, held), "queued")
        let ready = try call(ferry, "GET", "/readyz")
        XCTAssertEqual(ready.status, 200, "a pause is no failure: \(ready.text)")
        let check = (ready.json["checks"] as? [String: Any])?["deliveries"] as? [String: Any]
        XCTAssertEqual(check?["ok"] as? Bool, true)
        XCTAssertTrue((check?["detail"] as? String ?? "").contains("paused for c1"), "\(ready.text)")
        XCTAssertTrue(
            try call(ferry, "GET", "/metrics").text.contains("ferry_deliveries_paused_containers 1"))

        // The pause is stored: a new process holds the task too.
        ferry.stop()
        let again = try FerryProcess(spool: ferry.spool)
        XCTAssertEqual(
            (try call(again, "GET", "/deliveries").json["containers"] as? [[String: Any]])?.count, 1)
        let second = try upload(again, "c2", "/root/running-\(UUID().uuidString)")
        try waitUntil("the running container's upload is delivered") {
            try TaskAPI.state(again, second) == "delivered"
        }
        XCTAssertEqual(try TaskAPI.state(again, held), "queued")

        let resumed = try call(again, "POST", "/deliveries/resume?container=c1")
        XCTAssertEqual(resumed.status, 200, resumed.text)
        XCTAssertEqual((resumed.json["containers"] as? [[String: Any]])?.count, 0)
        try waitUntil("the held upload is delivered") { try TaskAPI.state(again, held) == "delivered" }
        XCTAssertTrue(try again.waitForLog(containing: "deliveries resumed").contains("paused=none"))
    }

    func testPausingEverythingHoldsAllAndResumeAllLetsThemGo() throws {
        let ferry = try FerryProcess()
        XCTAssertEqual(try call(ferry, "POST", "/deliveries/pause").json["all"] as? Bool, true)
        // Pausing one container as well, then resuming everything, ends both.
        XCTAssertEqual(try call(ferry, "POST", "/deliveries/pause?container=c2").status, 200)
        let ids = [
            try upload(ferry, "c1", "/root/all-\(UUID().uuidString)"),
            try upload(ferry, "c2", "/root/all-\(UUID().uuidString)"),
        ]
        // Resuming c2 alone does not let it go while everything is paused.
        let partly = try call(ferry, "POST", "/deliveries/resume?container=c2")
        XCTAssertEqual(partly.json["all"] as? Bool, true, partly.text)
        let stats = try call(ferry, "GET", "/stats").json
        XCTAssertEqual((stats["tasks"] as? [String: Int])?["queued"], 2, "\(stats)")
        XCTAssertEqual(stats["queue_depth"] as? Int, 2)
        for id in ids { XCTAssertEqual(try TaskAPI.state(ferry, id), "queued") }
        let resumed = try call(ferry, "POST", "/deliveries/resume")
        XCTAssertEqual(resumed.json["all"] as? Bool, false, resumed.text)
        XCTAssertTrue(resumed.json["all_since"] is NSNull)
        try waitUntil("both are delivered") {
            try ids.allSatisfy { try TaskAPI.state(ferry, $0) == "delivered" }
        }
    }

    func testATokenSteersOnlyTheContainersItsRuleAdmits() throws {
        let ferry = try FerryProcess(arguments: ["--tokens", try policyFile()])
        XCTAssertEqual(try call(ferry, "POST", "/deliveries/pause?container=c1").status, 401)
        XCTAssertEqual(
            try call(ferry, "POST", "/deliveries/pause?container=c1", token: aliceToken).status, 200)
        let other = try call(ferry, "POST", "/deliveries/pause?container=c2", token: aliceToken)
        XCTAssertEqual(other.status, 403, other.text)
        XCTAssertEqual(other.json["error"] as? String, "forbidden")
        let all = try call(ferry, "POST", "/deliveries/pause", token: aliceToken)
        XCTAssertEqual(all.status, 403, "pausing every container needs containers: [\"*\"]: \(all.text)")
        XCTAssertEqual(try call(ferry, "POST", "/deliveries/pause", token: operatorToken).status, 200)
        XCTAssertEqual(try call(ferry, "POST", "/deliveries/resume", token: operatorToken).status, 200)
        let bad = try call(ferry, "POST", "/deliveries/pause?container=-bad-", token: operatorToken)
        XCTAssertEqual(bad.status, 400, bad.text)
        XCTAssertEqual(try call(ferry, "POST", "/deliveries/pause?path=/x", token: operatorToken).status, 400)
        XCTAssertEqual(try call(ferry, "GET", "/deliveries/pause", token: operatorToken).status, 405)
        XCTAssertEqual(try call(ferry, "DELETE", "/deliveries", token: operatorToken).status, 405)
        XCTAssertEqual(try call(ferry, "GET", "/deliveries/elsewhere", token: operatorToken).status, 404)
    }

    // MARK: Events

    func testEventsTellEachStateChangeInOrderAndOnlyToTheTaskOwner() throws {
        let ferry = try FerryProcess(arguments: ["--tokens", try policyFile(), "--max-attempts", "1"])
        XCTAssertEqual(try call(ferry, "GET", "/events").status, 401, "a stranger hears nothing")
        let alice = try EventStream(port: ferry.port, token: aliceToken)
        let bob = try EventStream(port: ferry.port, token: bobToken)
        let everyone = try EventStream(port: ferry.port, token: operatorToken)
        defer { for stream in [alice, bob, everyone] { stream.close() } }

        let delivered = try upload(ferry, "c1", "/root/events-\(UUID().uuidString)", token: aliceToken)
        let missing = "gone-\(UInt32.random(in: 0...UInt32.max))"
        let failed = try upload(ferry, missing, "/root/events", token: bobToken)
        try waitUntil("alice hears her upload delivered") { alice.states(of: delivered).last == "delivered" }
        XCTAssertEqual(alice.states(of: delivered), ["queued", "pushing", "delivered"])
        try waitUntil("bob hears his upload fail") { bob.states(of: failed).last == "failed" }
        XCTAssertEqual(bob.states(of: failed), ["queued", "pushing", "failed"])
        let failure = bob.taskEvents.last { $0["id"] as? String == failed }
        XCTAssertEqual(failure?["container"] as? String, missing)
        XCTAssertEqual(failure?["attempts"] as? Int, 1)
        XCTAssertFalse((failure?["error"] as? String ?? "").isEmpty, "\(failure ?? [:])")

        // A deletion is told too.
        XCTAssertEqual(try call(ferry, "DELETE", "/tasks/\(failed)", token: bobToken).status, 204)
        try waitUntil("bob hears the deletion") { bob.states(of: failed).last == "deleted" }
        // Each token heard only its own tasks; the operator's token is a token like another.
        XCTAssertTrue(alice.states(of: failed).isEmpty, "alice heard bob's task")
        XCTAssertTrue(bob.states(of: delivered).isEmpty, "bob heard alice's task")
        XCTAssertTrue(everyone.taskEvents.isEmpty, "ops heard others' tasks: \(everyone.taskEvents)")

        // Pauses are the server's: every listener hears them.
        XCTAssertEqual(
            try call(ferry, "POST", "/deliveries/pause?container=c1", token: aliceToken).status, 200)
        try waitUntil("bob hears the pause") { !bob.events(ofType: "pause").isEmpty }
        let pause = bob.events(ofType: "pause").last
        XCTAssertEqual((pause?["containers"] as? [[String: Any]])?.first?["container"] as? String, "c1")
        XCTAssertTrue(try ferry.waitForLog(containing: "deliveries paused").contains("paused=c1"))
    }

    func testAStreamEndsCleanlyAtShutdownAndAClientThatLeftIsForgotten() throws {
        let ferry = try FerryProcess(arguments: ["--shutdown-timeout", "20"])
        let leaving = try EventStream(port: ferry.port)
        let staying = try EventStream(port: ferry.port)
        XCTAssertTrue(try call(ferry, "GET", "/metrics").text.contains("ferry_event_listeners 2"))
        leaving.close()
        // The next events written to it fail, and the server lets it go.
        var uploads = 0
        try waitUntil("the server forgets the client that left") {
            _ = try upload(ferry, "c1", "/root/leave-\(uploads)")
            uploads += 1
            return try call(ferry, "GET", "/metrics").text.contains("ferry_event_listeners 1")
        }
        let (status, seconds) = ferry.end(with: SIGTERM)
        XCTAssertEqual(status, 0)
        XCTAssertLessThan(seconds, 15, "an open stream must not hold the shutdown until its deadline")
        try waitUntil("curl saw the stream end") { staying.exitStatus != nil }
        XCTAssertEqual(staying.exitStatus, 0, "the stream ended with its last chunk")
    }

    // MARK: Stats

    func testStatsCountATokensOwnTasksAndTheLastHourByMinute() throws {
        let ferry = try FerryProcess(arguments: ["--tokens", try policyFile(), "--max-attempts", "1"])
        XCTAssertEqual(try call(ferry, "GET", "/stats").status, 401)
        let alice = [
            try upload(ferry, "c1", "/root/stats-a1", token: aliceToken),
            try upload(ferry, "c1", "/root/stats-a2", token: aliceToken),
        ]
        let bob = try upload(
            ferry, "gone-\(UInt32.random(in: 0...UInt32.max))", "/root/stats-b", token: bobToken)
        try waitUntil("all are finished") {
            try alice.allSatisfy { try TaskAPI.state(ferry, $0, token: aliceToken) == "delivered" }
                && TaskAPI.state(ferry, bob, token: bobToken) == "failed"
        }
        let mine = try call(ferry, "GET", "/stats", token: aliceToken)
        XCTAssertEqual(mine.status, 200, mine.text)
        XCTAssertEqual(mine.json["token"] as? String, "alice")
        XCTAssertEqual((mine.json["tasks"] as? [String: Int])?["delivered"], 2)
        XCTAssertEqual((mine.json["tasks"] as? [String: Int])?["failed"], 0, "bob's failure is not alice's")
        let history = mine.json["history"] as? [String: Any] ?? [:]
        XCTAssertEqual(history["interval_seconds"] as? Int, 60)
        let received = history["received"] as? [Int] ?? []
        XCTAssertEqual(received.count, 60)
        XCTAssertEqual(received.reduce(0, +), 2)
        XCTAssertEqual((history["delivered"] as? [Int] ?? []).reduce(0, +), 2)
        XCTAssertEqual((history["failed"] as? [Int] ?? []).reduce(0, +), 0)
        XCTAssertNotNil(ISO8601DateFormatter.withFractions.date(from: history["start"] as? String ?? ""))

        let all = try call(ferry, "GET", "/stats", token: bobToken).json
        XCTAssertEqual(((all["history"] as? [String: Any])?["failed"] as? [Int] ?? []).reduce(0, +), 1)
        XCTAssertEqual(all["ready"] as? Bool, true, "\(all)")
        XCTAssertNotNil((all["checks"] as? [String: Any])?["incus"])
        XCTAssertEqual(all["uploads_in_flight"] as? Int, 0)
        XCTAssertEqual(try call(ferry, "GET", "/stats?x=1", token: bobToken).status, 400)
        XCTAssertEqual(try call(ferry, "POST", "/stats", token: bobToken).status, 405)
    }

    // MARK: The console

    func testTheConsoleIsServedFromTheBinaryWithAStrictPolicyAndNoToken() throws {
        let ferry = try FerryProcess(arguments: ["--tokens", try policyFile()])
        let page = try call(ferry, "GET", "/ui/")
        XCTAssertEqual(page.status, 200, page.text)
        XCTAssertEqual(page.header("Content-Type"), "text/html; charset=utf-8")
        let policy = page.header("Content-Security-Policy") ?? ""
        for directive in [
            "default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
        ] {
            XCTAssertTrue(policy.contains(directive), policy)
        }
        XCTAssertFalse(policy.contains("unsafe"), policy)
        XCTAssertEqual(page.header("X-Content-Type-Options"), "nosniff")
        XCTAssertTrue(page.text.contains("console.js"), "the page loads its script")
        let script = try call(ferry, "GET", "/ui/console.js")
        XCTAssertEqual(script.status, 200)
        XCTAssertEqual(script.header("Content-Type"), "text/javascript; charset=utf-8")
        XCTAssertEqual(
            try call(ferry, "GET", "/ui/console.css").header("Content-Type"), "text/css; charset=utf-8")
        let bare = try call(ferry, "GET", "/ui")
        XCTAssertEqual(bare.status, 301)
        XCTAssertEqual(bare.header("Location"), "/ui/")
        XCTAssertEqual(try call(ferry, "GET", "/ui/missing.js").status, 404)
        XCTAssertEqual(try call(ferry, "GET", "/ui/../tasks").status, 404)
        XCTAssertEqual(try call(ferry, "POST", "/ui/").status, 405)
    }
}

extension ISO8601DateFormatter {
    /// Ferry's timestamps: internet date-time with fractional seconds.
    static var withFractions: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
