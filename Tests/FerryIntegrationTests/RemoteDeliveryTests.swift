import FerryCore
import Foundation
import XCTest

/// Deliveries into a remote Incus daemon over HTTPS: the second private daemon `make test`
/// starts (`FERRY_TEST_REMOTE_DIR`, instance `c3`), added to the client config in
/// `INCUS_CONF` as remote `r2`.
final class RemoteDeliveryTests: XCTestCase {
    private let remote = "r2"
    private let instance = "r2:c3"

    private var remoteDirectory: String {
        get throws {
            guard let directory = ProcessInfo.processInfo.environment["FERRY_TEST_REMOTE_DIR"] else {
                throw TestSetupError("FERRY_TEST_REMOTE_DIR is not set: run the tests with `make test`")
            }
            return directory
        }
    }

    private func remoteDaemon(_ command: String) throws {
        guard let script = ProcessInfo.processInfo.environment["FERRY_INCUS_ENV"] else {
            throw TestSetupError("FERRY_INCUS_ENV is not set: run the tests with `make test`")
        }
        try Command.run(script, [command, try remoteDirectory])
    }

    private func upload(
        _ ferry: FerryProcess, _ container: String, _ path: String, _ body: [UInt8], token: String? = nil
    )
        throws -> RawResponse
    {
        try Uploads.post(
            to: ferry,
            [("X-Container-Name", container), ("X-File-Path", path)]
                + (token.map { [("Authorization", "Bearer \($0)")] } ?? []),
            body: body)
    }

    func testUploadsToAnAllowedRemoteArriveInItsContainerCheckedForSymlinks() throws {
        let ferry = try FerryProcess(arguments: ["--remote", remote])
        let directory = "/root/remote-\(UUID().uuidString)"
        try Incus.run(["exec", instance, "--", "mkdir", "-p", directory])
        var bodies: [String: [UInt8]] = [:]
        var ids: [String] = []
        for index in 0..<12 {
            let body = randomBytes(index == 0 ? 3_000_000 : 1000 + index)
            let path = "\(directory)/file-\(index)"
            let answer = try upload(ferry, instance, path, body)
            XCTAssertEqual(answer.status, 202, answer.text)
            XCTAssertEqual(answer.json["container"] as? String, instance)
            bodies[path] = body
            ids.append(Uploads.taskID(answer))
        }
        try waitUntil("every upload is delivered to the remote") {
            try ids.allSatisfy { try TaskAPI.state(ferry, $0) == "delivered" }
        }
        for (path, body) in bodies {
            XCTAssertEqual(try Incus.sha256(container: instance, path: path), try Command.sha256(body), path)
        }
        let metrics = try TaskAPI.request(ferry, "GET", "/metrics").text
        XCTAssertTrue(
            metrics.contains(#"ferry_remote_push_attempts_total{remote="r2",outcome="delivered"}"#)
                || metrics.contains(#"ferry_remote_push_attempts_total{outcome="delivered",remote="r2"}"#),
            metrics)

        // tus names a remote the same way, in its container metadata.
        let tusBody = randomBytes(2 << 20)
        let location = try Tus.location(
            ferry, length: tusBody.count, container: instance, path: "\(directory)/tus")
        XCTAssertEqual(try Tus.patch(ferry, location, offset: 0, tusBody).status, 204)
        try waitUntil("the tus upload is delivered to the remote") {
            try TaskAPI.state(ferry, Tus.id(location)) == "delivered"
        }
        XCTAssertEqual(
            try Incus.sha256(container: instance, path: "\(directory)/tus"), try Command.sha256(tusBody))
        let refusedTus = try Tus.create(ferry, length: 1, container: "r9:c3", path: "/root/x")
        XCTAssertEqual(refusedTus.status, 400, refusedTus.text)

        // The destination is checked on the remote too: a symlink there is refused.
        try Incus.run(["exec", instance, "--", "ln", "-s", "/etc", "\(directory)/link"])
        let refused = Uploads.taskID(try upload(ferry, instance, "\(directory)/link/passwd", [1]))
        try waitUntil("the push through the symlink fails") { try TaskAPI.state(ferry, refused) == "failed" }
        XCTAssertTrue(
            (try TaskAPI.get(ferry, refused)["last_error"] as? String ?? "").contains(
                "symlink_in_destination"))
        XCTAssertNotEqual(
            try Incus.sha256(container: instance, path: "/etc/passwd"), try Command.sha256([1]),
            "nothing was written through the link")
    }

    func testARemoteThatGoesAwayIsRetriedAndDeliveredWhenItReturns() throws {
        let ferry = try FerryProcess(
            arguments: [
                "--remote", remote, "--retry-base", "100ms", "--retry-max", "300ms", "--max-attempts", "1000",
                "--readiness-interval", "200ms",
            ])
        try waitUntil("the remote is reported ready") {
            let ready = try TaskAPI.request(ferry, "GET", "/readyz").json
            return ((ready["remotes"] as? [String: Any])?[self.remote] as? [String: Any])?["ok"] as? Bool
                == true
        }
        try remoteDaemon("daemon-stop")
        var running = false
        defer { if !running { try? remoteDaemon("daemon-start") } }
        let body = randomBytes(50_000)
        let path = "/root/away-\(UUID().uuidString)"
        let id = Uploads.taskID(try upload(ferry, instance, path, body))
        try waitUntil("the push waits to retry") { try TaskAPI.state(ferry, id) == "retrying" }
        let waiting = try TaskAPI.get(ferry, id)
        XCTAssertFalse((waiting["last_error"] as? String ?? "").isEmpty, "\(waiting)")
        try waitUntil("/readyz reports the remote down, and stays ready") {
            let answer = try TaskAPI.request(ferry, "GET", "/readyz")
            let check = (answer.json["remotes"] as? [String: Any])?[self.remote] as? [String: Any]
            return answer.status == 200 && check?["ok"] as? Bool == false
        }
        try remoteDaemon("daemon-start")
        running = true
        try waitUntil("the upload is delivered once the remote is back", timeout: 60) {
            try TaskAPI.state(ferry, id) == "delivered"
        }
        XCTAssertEqual(try Incus.sha256(container: instance, path: path), try Command.sha256(body))
    }

    func testOnlyAllowedRemotesAreAcceptedAndATokenNeedsTheRemoteInItsRule() throws {
        let local = try FerryProcess()
        let unlisted = try upload(local, instance, "/root/x", [1])
        XCTAssertEqual(unlisted.status, 400, "no --remote: \(unlisted.text)")
        XCTAssertTrue(unlisted.text.contains("--remote r2"), unlisted.text)

        let localOnly = "local-\(UUID().uuidString)"
        let remoteToo = "remote-\(UUID().uuidString)"
        let policy = NSTemporaryDirectory() + "ferry-remote-\(UUID().uuidString).yaml"
        try """
        tokens:
          - name: local-only
            sha256: \(AccessPolicy.digest(ofToken: localOnly))
            containers: ["*"]
            paths: [/]
          - name: remote-too
            sha256: \(AccessPolicy.digest(ofToken: remoteToo))
            containers: [c3]
            paths: [/]
            remotes: [r2]
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let ferry = try FerryProcess(arguments: ["--remote", remote, "--tokens", policy])
        let other = try upload(ferry, "r9:c3", "/root/x", [1], token: remoteToo)
        XCTAssertEqual(other.status, 400, other.text)
        let forbidden = try upload(ferry, instance, "/root/x", [1], token: localOnly)
        XCTAssertEqual(forbidden.status, 403, "a rule without remotes is local only: \(forbidden.text)")
        XCTAssertTrue(forbidden.text.contains("remotes"), forbidden.text)
        let path = "/root/token-\(UUID().uuidString)"
        let accepted = try upload(ferry, instance, path, [7, 7], token: remoteToo)
        XCTAssertEqual(accepted.status, 202, accepted.text)
        let id = Uploads.taskID(accepted)
        try waitUntil("delivered") { try TaskAPI.state(ferry, id, token: remoteToo) == "delivered" }
        XCTAssertEqual(
            try upload(ferry, "c3", "/root/x", [1], token: remoteToo).status, 202,
            "its containers rule names instances, here and on its remotes")
    }

    func testFerryRefusesToStartWithARemoteTheClientDoesNotKnow() throws {
        XCTAssertThrowsError(try FerryProcess(arguments: ["--remote", "nowhere"])) { error in
            XCTAssertTrue("\(error)".contains("no such remote"), "\(error)")
        }
        XCTAssertThrowsError(try FerryProcess(arguments: ["--remote", "local"])) { error in
            XCTAssertTrue("\(error)".contains("this host's daemon"), "\(error)")
        }
    }
}
