import Foundation
import XCTest

/// Every upload's SHA-256, computed as it streams; RFC 9530 digests checked at its end.
final class DigestTests: XCTestCase {
    private func upload(_ ferry: FerryProcess, _ body: [UInt8], _ headers: [(String, String)]) throws
        -> RawResponse
    {
        try Uploads.post(
            to: ferry,
            [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/digest-\(UUID().uuidString)")] + headers,
            body: body)
    }

    func testEveryUploadGetsItsSHA256AndARightDigestIsAccepted() throws {
        let ferry = try FerryProcess()
        let body = randomBytes(300_000)
        let hex = try Command.sha256(body)
        let plain = try upload(ferry, body, [])
        XCTAssertEqual(plain.status, 202)
        XCTAssertEqual(plain.json["sha256"] as? String, hex)
        XCTAssertEqual(plain.header("Repr-Digest"), "sha-256=:\(Digests.base64(.sha256, body)):")
        XCTAssertEqual(try TaskAPI.get(ferry, Uploads.taskID(plain))["sha256"] as? String, hex)

        let content = try upload(
            ferry, body, [("Content-Digest", "sha-256=:\(Digests.base64(.sha256, body)):")])
        XCTAssertEqual(content.status, 202)
        XCTAssertEqual(content.json["sha256"] as? String, hex)
        let both = try upload(
            ferry, body,
            [
                (
                    "Repr-Digest",
                    "sha-512=:\(Digests.base64(.sha512, body)):, sha-256=:\(Digests.base64(.sha256, body)):"
                ),
                ("Content-Digest", "sha-512=:\(Digests.base64(.sha512, body)):"),
            ])
        XCTAssertEqual(both.status, 202, "\(both.json)")
        // Algorithms Ferry does not know are ignored, as RFC 9530 allows.
        let unknown = try upload(
            ferry, body, [("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:, crc32c=:AAAAAA==:")])
        XCTAssertEqual(unknown.status, 202)
        // A known example: the sha-256 of {"hello": "world"} (RFC 9530, section 2).
        let example = try upload(
            ferry, Array(#"{"hello": "world"}"#.utf8),
            [("Content-Digest", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")])
        XCTAssertEqual(example.status, 202)
    }

    func testAWrongDigestIsRefusedAndNothingIsKept() throws {
        let ferry = try FerryProcess()
        let body = randomBytes(200_000)
        var other = body
        other[1000] ^= 1
        for (field, value) in [
            ("Content-Digest", "sha-256=:\(Digests.base64(.sha256, other)):"),
            ("Repr-Digest", "sha-512=:\(Digests.base64(.sha512, other)):"),
            (
                "Content-Digest",
                "sha-256=:\(Digests.base64(.sha256, body)):, sha-512=:\(Digests.base64(.sha512, other)):"
            ),
        ] {
            let answer = try upload(ferry, body, [(field, value)])
            XCTAssertEqual(answer.status, 400, value)
            XCTAssertEqual(answer.json["error"] as? String, "digest_mismatch")
        }
        // A chunked body is checked the same way.
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead(
            "POST", "/upload",
            [
                ("X-Container-Name", "c1"), ("X-File-Path", "/tmp/chunked"), ("Transfer-Encoding", "chunked"),
                ("Repr-Digest", "sha-256=:\(Digests.base64(.sha256, other)):"),
            ])
        try client.sendChunk(Array(body[0..<100_000]))
        try client.sendChunk(Array(body[100_000...]))
        try client.sendLastChunk()
        XCTAssertEqual(try client.readResponse().status, 400)
        for malformed in ["sha-256=abc", "sha-256=:AAAA:", "sha-256", "=:x:"] {
            let answer = try upload(ferry, body, [("Content-Digest", malformed)])
            XCTAssertEqual(answer.status, 400, malformed)
            XCTAssertEqual(answer.json["error"] as? String, "invalid_header", malformed)
        }
        XCTAssertEqual(try ferry.spoolContents().filter { $0.hasSuffix(".data") }, [])
        let listing = try TaskAPI.request(ferry, "GET", "/tasks")
        XCTAssertEqual((listing.json["tasks"] as? [Any])?.count, 0, "no task")
    }

    func testAWrongReprDigestOnTheLastPatchTakesBackThatPatchOnly() throws {
        let ferry = try FerryProcess()
        let path = "/tmp/tus-repr-\(UInt32.random(in: 0...UInt32.max))"
        let body = randomBytes(100_000)
        let location = try Tus.location(ferry, length: body.count, path: path)
        XCTAssertEqual(try Tus.patch(ferry, location, offset: 0, Array(body[0..<60_000])).status, 204)
        var other = body
        other[5] ^= 1
        let wrong = try Tus.patch(
            ferry, location, offset: 60_000, Array(body[60_000...]),
            headers: [("Repr-Digest", "sha-512=:\(Digests.base64(.sha512, other)):")])
        XCTAssertEqual(wrong.status, 400)
        XCTAssertEqual(wrong.json["error"] as? String, "digest_mismatch")
        XCTAssertEqual(try Tus.offset(ferry, location), 60_000)
        let right = try Tus.patch(
            ferry, location, offset: 60_000, Array(body[60_000...]),
            headers: [("Repr-Digest", "sha-512=:\(Digests.base64(.sha512, body)):")])
        XCTAssertEqual(right.status, 204)
        let id = Tus.id(location)
        try waitUntil("delivered", timeout: 60) { try TaskAPI.state(ferry, id) == "delivered" }
        XCTAssertEqual(try Incus.sha256(container: "c1", path: path), try Command.sha256(body))
        try Incus.remove(container: "c1", path: path)
    }
}
