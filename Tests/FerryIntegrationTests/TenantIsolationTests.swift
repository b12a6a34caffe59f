import FerryCore
import Foundation
import XCTest

/// One tenant cannot write past a revoked rule, take the whole server's room, slip past a
/// path rule with equivalent Unicode, or learn about another's tasks from a cursor.
final class TenantIsolationTests: XCTestCase {
    private let alice = "alice-\(UUID().uuidString)"
    private let bob = "bob-\(UUID().uuidString)"

    private func policy(aliceRule: String = "containers: [c1]\n    paths: [/]") -> String {
        """
        tokens:
          - name: alice
            sha256: \(AccessPolicy.digest(ofToken: alice))
            \(aliceRule)
          - name: bob
            sha256: \(AccessPolicy.digest(ofToken: bob))
            containers: [c1, c2]
            paths: [/]
        """
    }

    private func writePolicy(_ text: String, to path: String? = nil) throws -> String {
        let path = path ?? NSTemporaryDirectory() + "ferry-tenants-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func call(
        _ ferry: FerryProcess, _ method: String, _ target: String, token: String,
        _ headers: [(String, String)] = [], body: [UInt8]? = nil
    ) throws -> RawResponse {
        let client = try RawHTTPClient(port: ferry.port)
        var all = headers + [("Authorization", "Bearer \(token)")]
        if let body { all.append(("Content-Length", String(body.count))) }
        try client.sendHead(method, target, all)
        if let body { try client.send(body) }
        return try client.readResponse()
    }

    private func upload(
        _ ferry: FerryProcess, token: String, container: String = "c1", path: String, size: Int = 3
    )
        throws -> RawResponse
    {
        try call(
            ferry, "POST", "/upload", token: token, [("X-Container-Name", container), ("X-File-Path", path)],
            body: randomBytes(size))
    }

    /// A task that fails for good: its parent is a regular file.
    private func deadLetter(_ ferry: FerryProcess, token: String) throws -> String {
        let response = try upload(ferry, token: token, path: "/etc/passwd/dead-\(UUID().uuidString)")
        XCTAssertEqual(response.status, 202)
        let id = Uploads.taskID(response)
        XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("delivery failed"))
        return id
    }

    func testARevokedRuleCanNoLongerRetryOrDeleteItsDeadLetters() throws {
        let file = try writePolicy(policy())
        let ferry = try FerryProcess(arguments: ["--tokens", file])
        let id = try deadLetter(ferry, token: alice)

        _ = try writePolicy(policy(aliceRule: "containers: [c2]\n    paths: [/]"), to: file)
        kill(ferry.process.processIdentifier, SIGHUP)
        try ferry.waitForLog(containing: "token policy reloaded")
        XCTAssertEqual(try upload(ferry, token: alice, path: "/tmp/new").status, 403, "new uploads to c1")
        let retry = try call(ferry, "POST", "/tasks/\(id)/retry", token: alice)
        XCTAssertEqual(retry.status, 403)
        XCTAssertTrue((retry.json["detail"] as? String ?? "").contains("rule: containers"), "\(retry.json)")
        XCTAssertEqual(try call(ferry, "DELETE", "/tasks/\(id)", token: alice).status, 403)
        XCTAssertEqual(try TaskAPI.state(ferry, id, token: alice), "failed", "seen, untouched")

        _ = try writePolicy(policy(), to: file)
        kill(ferry.process.processIdentifier, SIGHUP)
        try ferry.waitForLog(containing: "token policy reloaded", "tokens=2")
        waitForReloads(ferry, 2)
        XCTAssertEqual(
            try call(ferry, "POST", "/tasks/\(id)/retry", token: alice).status, 202, "allowed again")
    }

    private func waitForReloads(_ ferry: FerryProcess, _ count: Int) {
        try? waitUntil("\(count) reloads") {
            ferry.logLines(containing: "token policy reloaded").count >= count
        }
    }

    func testQuotasBoundEachTokenAndLeaveTheRestToOthers() throws {
        let gate = Gate()
        let file = try writePolicy(
            policy(aliceRule: "containers: [c1]\n    paths: [/]\n    max_queued: 2\n    max_spool_bytes: 1K"))
        let ferry = try FerryProcess(
            arguments: ["--tokens", file, "--incus", Gate.incus, "--shutdown-timeout", "1"],
            environment: gate.environment)
        XCTAssertEqual(try upload(ferry, token: alice, path: "/tmp/q1", size: 600).status, 202)
        let bytes = try upload(ferry, token: alice, path: "/tmp/q2", size: 600)
        XCTAssertEqual(bytes.status, 503)
        XCTAssertEqual(bytes.json["error"] as? String, "quota_exceeded")
        XCTAssertTrue((bytes.json["detail"] as? String ?? "").contains("max_spool_bytes"), "\(bytes.json)")
        XCTAssertNotNil(bytes.header("Retry-After"))

        let chunked = try RawHTTPClient(port: ferry.port)
        try chunked.sendHead(
            "POST", "/upload",
            [
                ("X-Container-Name", "c1"), ("X-File-Path", "/tmp/q-chunked"),
                ("Authorization", "Bearer \(alice)"),
                ("Transfer-Encoding", "chunked"),
            ])
        try chunked.sendChunk(randomBytes(300))
        try chunked.sendChunk(randomBytes(300))
        let grown = try chunked.readResponse()
        XCTAssertEqual(grown.status, 503, "a chunked body is held to the quota as it grows")
        XCTAssertEqual(grown.json["error"] as? String, "quota_exceeded")

        XCTAssertEqual(try upload(ferry, token: alice, path: "/tmp/q3", size: 10).status, 202)
        let places = try upload(ferry, token: alice, path: "/tmp/q4", size: 10)
        XCTAssertEqual(places.status, 503)
        XCTAssertTrue((places.json["detail"] as? String ?? "").contains("max_queued"), "\(places.json)")
        for index in 0..<5 {
            XCTAssertEqual(
                try upload(ferry, token: bob, path: "/tmp/bob-\(index)", size: 600).status, 202,
                "another tenant is not held to alice's quota")
        }
        gate.open()
        try waitUntil("alice's uploads are delivered") {
            ferry.logLines(containing: "outcome=delivered").count >= 7
        }
        XCTAssertEqual(try upload(ferry, token: alice, path: "/tmp/q5", size: 600).status, 202, "room again")
    }

    func testPathRulesCompareBytesNotEquivalentUnicode() throws {
        let file = try writePolicy(
            policy(aliceRule: "containers: [c1]\n    paths: [\"/tmp/caf\u{e9}\", /tmp/K8s]"))
        let ferry = try FerryProcess(arguments: ["--tokens", file])
        for path in ["/tmp/cafe\u{301}/x", "/tmp/\u{212a}8s/x", "/tmp/K8sx"] {
            let response = try upload(ferry, token: alice, path: path)
            XCTAssertEqual(
                response.status, 403, path.unicodeScalars.map { String($0.value, radix: 16) }.joined())
            XCTAssertTrue((response.json["detail"] as? String ?? "").contains("rule: paths"))
        }
        for path in ["/tmp/caf\u{e9}/x", "/tmp/K8s/x"] {
            let response = try call(
                ferry, "POST", "/upload", token: alice,
                [("X-Container-Name", "c1"), ("X-File-Path", path), ("X-Create-Dirs", "true")], body: [1])
            XCTAssertEqual(response.status, 202, path)
            XCTAssertTrue(
                try ferry.waitForSettlement(of: Uploads.taskID(response)).contains("outcome=delivered"))
            try Incus.remove(container: "c1", path: String(path.dropLast(2)))
        }
    }

    func testACursorThatIsGoneOrForeignIsRefusedAlikeAndTheLastPageSaysNull() throws {
        let ferry = try FerryProcess(arguments: ["--tokens", try writePolicy(policy())])
        let mine = try (0..<3).map { _ in try deadLetter(ferry, token: alice) }
        let theirs = try deadLetter(ferry, token: bob)

        let first = try call(ferry, "GET", "/tasks?limit=1", token: alice)
        XCTAssertEqual(first.json["next"] as? String, mine[0])
        XCTAssertEqual(try call(ferry, "DELETE", "/tasks/\(mine[0])", token: alice).status, 204)
        let afterDeleted = try call(ferry, "GET", "/tasks?limit=1&after=\(mine[0])", token: alice)
        XCTAssertEqual(afterDeleted.status, 400, "a deleted cursor does not restart the listing at page 1")
        let afterForeign = try call(ferry, "GET", "/tasks?limit=1&after=\(theirs)", token: alice)
        let unknown = TaskID.make()
        let afterUnknown = try call(ferry, "GET", "/tasks?limit=1&after=\(unknown)", token: alice)
        XCTAssertEqual(afterForeign.status, afterUnknown.status)
        XCTAssertEqual(afterForeign.json["error"] as? String, afterUnknown.json["error"] as? String)
        func shape(_ response: RawResponse, _ id: String) -> String {
            (response.json["detail"] as? String ?? "").replacingOccurrences(of: id, with: "ID")
        }
        XCTAssertEqual(
            shape(afterForeign, theirs), shape(afterUnknown, unknown),
            "another tenant's id reads like one that never existed")

        let second = try call(ferry, "GET", "/tasks?limit=1&after=\(mine[1])", token: alice)
        XCTAssertEqual((second.json["tasks"] as? [[String: Any]])?.map { $0["id"] as? String }, [mine[2]])
        XCTAssertTrue(second.json["next"] is NSNull, "the last page says next: null (\(second.json))")
    }

    func testAnIdempotencyKeyBelongsToItsTokenAndARepeatMustMatch() throws {
        let ferry = try FerryProcess(arguments: ["--tokens", try writePolicy(policy())])
        let key = [("Idempotency-Key", "deploy-42")]
        func send(_ token: String, _ path: String, _ body: [UInt8]) throws -> RawResponse {
            try call(
                ferry, "POST", "/upload", token: token,
                [("X-Container-Name", "c1"), ("X-File-Path", path)] + key,
                body: body)
        }
        let first = try send(alice, "/tmp/idem-alice", Array("alice".utf8))
        XCTAssertEqual(first.status, 202)
        let repeated = try send(alice, "/tmp/idem-alice", Array("alice".utf8))
        XCTAssertEqual(Uploads.taskID(repeated), Uploads.taskID(first), "a true repeat gets the first answer")

        let bobs = try send(bob, "/tmp/idem-bob", Array("bob's own".utf8))
        XCTAssertEqual(bobs.status, 202)
        XCTAssertNotEqual(Uploads.taskID(bobs), Uploads.taskID(first), "another token's key is another key")
        XCTAssertEqual(bobs.json["path"] as? String, "/tmp/idem-bob", "nothing of alice's task is shown")
        XCTAssertTrue(try ferry.waitForSettlement(of: Uploads.taskID(bobs)).contains("outcome=delivered"))
        XCTAssertEqual(
            try Incus.sha256(container: "c1", path: "/tmp/idem-bob"),
            try Command.sha256(Array("bob's own".utf8)))

        for (path, body) in [
            ("/tmp/idem-elsewhere", Array("alice".utf8)), ("/tmp/idem-alice", Array("longer".utf8)),
        ] {
            let mismatch = try send(alice, path, body)
            XCTAssertEqual(mismatch.status, 422, path)
            XCTAssertEqual(mismatch.json["error"] as? String, "idempotency_key_mismatch")
        }
        try ferry.waitForSettlement(of: Uploads.taskID(first))
        for path in ["/tmp/idem-alice", "/tmp/idem-bob"] { try Incus.remove(container: "c1", path: path) }
    }

    func testAPolicyWithAnUnknownKeyIsRefusedOnStartAndOnReload() throws {
        let misspelled = policy() + "\n    max-upload: 1K"
        XCTAssertThrowsError(try FerryProcess(arguments: ["--tokens", try writePolicy(misspelled)])) {
            error in
            XCTAssertTrue("\(error)".contains("unknown key 'max-upload'"), "\(error)")
        }
        let file = try writePolicy(policy())
        let ferry = try FerryProcess(arguments: ["--tokens", file])
        _ = try writePolicy(misspelled, to: file)
        kill(ferry.process.processIdentifier, SIGHUP)
        XCTAssertTrue(try ferry.waitForLog(containing: "token policy not reloaded").contains("max-upload"))
        let response = try upload(ferry, token: alice, path: "/tmp/kept-\(UUID().uuidString)")
        XCTAssertEqual(response.status, 202, "the policy in force stays")
        try ferry.waitForSettlement(of: Uploads.taskID(response))
    }
}
