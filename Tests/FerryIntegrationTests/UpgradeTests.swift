import CSystem
import Foundation
import XCTest

/// Ferry started over a spool written by the round-1 release (task records in the spool's
/// files) takes it over: the unfinished uploads are delivered into real Incus containers,
/// finished ones stay visible, idempotency keys still answer, and no record file is left.
final class UpgradeTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/round1-spool").standardized
    private let alice = "alice-secret-token"
    private let bob = "bob-secret-token"

    func testASpoolOfTheRoundOneReleaseIsAdoptedAndItsUploadsDelivered() throws {
        let spool = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("ferry-upgrade-\(UUID().uuidString)/spool")
        try FileManager.default.createDirectory(at: spool, withIntermediateDirectories: true)
        try Command.run(
            "/bin/tar",
            [
                "--xattrs", "--xattrs-include=user.*", "-xzf",
                Self.fixtures.appendingPathComponent("spool.tar.gz").path,
                "-C", spool.path,
            ])
        for container in ["c1", "c2"] { try Incus.run(["exec", container, "--", "mkdir", "-p", "/srv"]) }
        defer {
            for container in ["c1", "c2"] { try? Incus.remove(container: container, path: "/srv") }
        }

        let ferry = try FerryProcess(
            // The fixture was made once: its finished tasks must not age out of the retention.
            arguments: [
                "--tokens", Self.fixtures.appendingPathComponent("tokens.yaml").path, "--retention",
                "876000h",
            ],
            spool: spool)
        try ferry.waitForLog(containing: "spool recovered", "adopted=9", "requeued=6")
        let expected: [(token: String, container: String, path: String, body: String)] = [
            (alice, "c1", "/srv/hold-1.txt", "held, pushing"),
            (bob, "c2", "/srv/hold-2.txt", "held, pushing bob"),
            (alice, "c1", "/srv/queued-1.txt", "queued first"),
            (bob, "c2", "/srv/queued-2.txt", "queued second, bob"),
            (alice, "c1", "/srv/queued-3.txt", ""),
        ]
        try waitUntil("the unfinished uploads of the old release are delivered") {
            let states = try (list(ferry, token: alice) + list(ferry, token: bob)).map {
                $0["state"] as? String
            }
            return states.filter { $0 == "delivered" }.count == 8
        }
        for file in expected {
            XCTAssertEqual(
                try Incus.sha256(container: file.container, path: file.path),
                try Command.sha256(Array(file.body.utf8)), file.path)
        }
        let long =
            "/srv/" + (0..<349).map { String(format: "dir-%06d", $0) }.joined(separator: "/")
            + "/queued-long.txt"
        XCTAssertEqual(
            try Incus.sha256(container: "c1", path: long),
            try Command.sha256(Array("queued with a record too large for an attribute".utf8)))

        // Each tenant sees its own history, as the old release left it.
        let aliceTasks = try list(ferry, token: alice)
        XCTAssertEqual(aliceTasks.count, 6)
        XCTAssertEqual(aliceTasks.filter { $0["state"] as? String == "delivered" }.count, 6)
        let bobTasks = try list(ferry, token: bob)
        XCTAssertEqual(
            bobTasks.map { $0["path"] as? String ?? "" },
            ["/srv/fail-1.txt", "/srv/hold-2.txt", "/srv/queued-2.txt"])
        XCTAssertEqual(bobTasks.first?["state"] as? String, "failed")
        XCTAssertEqual(bobTasks.first?["last_error"] as? String, "Error: Instance not found")

        // A key used before the upgrade still names its task.
        let repeated = try Uploads.post(
            to: ferry,
            [
                ("Authorization", "Bearer \(alice)"), ("X-Container-Name", "c1"),
                ("X-File-Path", "/srv/done-2.txt"),
                ("Idempotency-Key", "alice-key-1"),
            ], body: Array("delivered two".utf8))
        XCTAssertEqual(repeated.status, 202)
        XCTAssertEqual(
            repeated.json["id"] as? String,
            aliceTasks.first { $0["path"] as? String == "/srv/done-2.txt" }?["id"] as? String)

        // Nothing of the old layout is left: the failed task's bytes only.
        let left = try ferry.spoolContents()
        XCTAssertEqual(left.count, 1, "\(left)")
        XCTAssertTrue(left.allSatisfy { $0.hasSuffix(".data") }, "\(left)")
        XCTAssertLessThan(
            getxattr(spool.appendingPathComponent(left[0]).path, "user.ferry.record", nil, 0), 0)
    }

    private func list(_ ferry: FerryProcess, token: String) throws -> [[String: Any]] {
        let response = try TaskAPI.request(ferry, "GET", "/tasks", token: token)
        XCTAssertEqual(response.status, 200)
        return response.json["tasks"] as? [[String: Any]] ?? []
    }
}
