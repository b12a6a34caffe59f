import FerryCore
import Foundation
import XCTest

/// The spool on a small real file system (tmpfs): a full disk gets 507, leaves no partial
/// file, and uploads work again once there is room.
final class DiskFullTests: XCTestCase {
    private var mountPoint = ""

    override func setUpWithError() throws {
        mountPoint = NSTemporaryDirectory() + "ferry-tmpfs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try Command.run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint])
    }

    override func tearDownWithError() throws {
        try Command.run("umount", [mountPoint])
        try FileManager.default.removeItem(atPath: mountPoint)
    }

    private var spool: URL { URL(fileURLWithPath: mountPoint).appendingPathComponent("spool") }
    private let headers = [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/disk-full")]

    func testAnnouncedBodyThatWouldFillTheDiskGets507BeforeTheBody() throws {
        let ferry = try FerryProcess(arguments: ["--min-free-disk", "256K"], spool: spool)
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead(
            "POST", "/upload", headers + [("Content-Length", String(900 << 10)), ("Expect", "100-continue")])
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 507, "decided from Content-Length, before the body")
        XCTAssertEqual(response.json["error"] as? String, "insufficient_storage")
        XCTAssertEqual(try ferry.spoolContents(), [])
        XCTAssertEqual(try Uploads.post(to: ferry, headers, body: randomBytes(100 << 10)).status, 202)
    }

    func testSpacePromisedToUploadsInProgressIsNotPromisedTwice() throws {
        let ferry = try FerryProcess(arguments: ["--min-free-disk", "0"], spool: spool)
        let size = 600 << 10
        let first = try RawHTTPClient(port: ferry.port)
        try first.sendHead(
            "POST", "/upload", headers + [("Content-Length", String(size)), ("Expect", "100-continue")])
        XCTAssertEqual(try first.readResponse().status, 100)
        // The disk is still empty, but 600 KiB of its 1 MiB are promised to the first.
        let second = try RawHTTPClient(port: ferry.port)
        try second.sendHead(
            "POST", "/upload", headers + [("Content-Length", String(size)), ("Expect", "100-continue")])
        let refused = try second.readResponse()
        XCTAssertEqual(refused.status, 507, "decided from the head, counting the first upload's promise")
        XCTAssertTrue((refused.json["detail"] as? String ?? "").contains("promised"), "\(refused.json)")
        try first.send(randomBytes(size))
        let accepted = try first.readResponse()
        XCTAssertEqual(accepted.status, 202)
        try ferry.waitForSettlement(of: Uploads.taskID(accepted))
        XCTAssertEqual(
            try Uploads.post(to: ferry, headers, body: randomBytes(size)).status, 202, "room again")
    }

    func testDiskFillingUpUnderAnAdmittedUploadGets507AndLeavesNoPartialFile() throws {
        let ferry = try FerryProcess(arguments: ["--min-free-disk", "0"], spool: spool)
        let size = 600 << 10
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead(
            "POST", "/upload", headers + [("Content-Length", String(size)), ("Expect", "100-continue")])
        XCTAssertEqual(try client.readResponse().status, 100)
        // Something else fills the file system after the upload was admitted.
        let filler = URL(fileURLWithPath: mountPoint).appendingPathComponent("filler")
        FileManager.default.createFile(atPath: filler.path, contents: Data(count: 700 << 10))
        try? client.send(randomBytes(size))
        let refused = try client.readResponse()
        XCTAssertEqual(refused.status, 507, "ENOSPC while writing")
        XCTAssertEqual(refused.json["error"] as? String, "insufficient_storage")
        try waitUntil("the partial file is gone") { try ferry.spoolContents().isEmpty }
        try FileManager.default.removeItem(at: filler)
        XCTAssertEqual(try Uploads.post(to: ferry, headers, body: randomBytes(300 << 10)).status, 202)
    }

    func testChunkedBodyReachingTheReserveGets507AndLeavesNoPartialFile() throws {
        let ferry = try FerryProcess(arguments: ["--min-free-disk", "0"], spool: spool)
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead("POST", "/upload", headers + [("Transfer-Encoding", "chunked")])
        var answered: RawResponse?
        for _ in 0..<40 {
            do {
                try client.sendChunk(randomBytes(64 << 10))
            } catch {
                break  // the server closed the connection after answering
            }
        }
        answered = try client.readResponse()
        XCTAssertEqual(answered?.status, 507)
        try waitUntil("the partial file is gone") { try ferry.spoolContents().isEmpty }

        let body = randomBytes(200 << 10)
        let later = try Uploads.post(to: ferry, headers, body: body)
        XCTAssertEqual(later.status, 202, "uploads work again once there is room")
        XCTAssertTrue(try ferry.waitForSettlement(of: Uploads.taskID(later)).contains("outcome=delivered"))
        XCTAssertEqual(try Incus.sha256(container: "c1", path: "/tmp/disk-full"), try Command.sha256(body))
    }
}
