import CSystem
import FerryCore
import Foundation
import XCTest

/// tus 1.0 at /files/: every status of the protocol over raw HTTP, offsets, checksums,
/// termination, expiry, cut-off and superseded PATCHes, a restart mid-upload, and tuspy.
final class TusTests: XCTestCase {
    /// Tests/Fixtures/tuspy-upload.py.
    private static var tuspyScript: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tuspy-upload.py").path
    }

    private func directory() -> String { "/tmp/tus-\(UInt32.random(in: 0...UInt32.max))" }

    /// Waits until task `id` is delivered and checks the container holds `body` at `path`.
    private func assertDelivered(
        _ ferry: FerryProcess, _ id: String, _ body: [UInt8], at path: String, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        try waitUntil("task \(id) is delivered", timeout: 60) { try TaskAPI.state(ferry, id) == "delivered" }
        let expected = try Command.sha256(body)
        XCTAssertEqual(try Incus.sha256(container: "c1", path: path), expected, file: file, line: line)
        XCTAssertEqual(try TaskAPI.get(ferry, id)["sha256"] as? String, expected, file: file, line: line)
    }

    func testDiscoveryVersionAndCreationRefusals() throws {
        let ferry = try FerryProcess(arguments: ["--max-body-size", "1M"])
        let options = try Tus.request(ferry, "OPTIONS", "/files/", [])
        XCTAssertEqual(options.status, 204)
        XCTAssertEqual(options.header("Tus-Version"), "1.0.0")
        XCTAssertEqual(options.header("Tus-Max-Size"), "1048576")
        XCTAssertEqual(
            options.header("Tus-Extension"),
            "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration")
        XCTAssertEqual(options.header("Tus-Checksum-Algorithm"), "sha1,sha256,md5")

        let meta = Tus.metadata([("container", "c1"), ("path", "/tmp/x")])
        let noVersion = try Tus.request(
            ferry, "POST", "/files/", [("Upload-Length", "1"), ("Upload-Metadata", meta)])
        XCTAssertEqual(noVersion.status, 412)
        XCTAssertEqual(noVersion.header("Tus-Version"), "1.0.0")
        let oldVersion = try Tus.request(
            ferry, "POST", "/files/",
            [("Tus-Resumable", "0.2.2"), ("Upload-Length", "1"), ("Upload-Metadata", meta)])
        XCTAssertEqual(oldVersion.status, 412)

        func creation(_ headers: [(String, String)]) throws -> RawResponse {
            try Tus.request(ferry, "POST", "/files/", [Tus.resumable] + headers)
        }
        XCTAssertEqual(try creation([("Upload-Metadata", meta)]).status, 400, "no length")
        XCTAssertEqual(try creation([("Upload-Metadata", meta), ("Upload-Length", "-1")]).status, 400)
        XCTAssertEqual(try creation([("Upload-Metadata", meta), ("Upload-Defer-Length", "2")]).status, 400)
        XCTAssertEqual(
            try creation([("Upload-Metadata", meta), ("Upload-Length", "1"), ("Upload-Defer-Length", "1")])
                .status, 400)
        let tooLarge = try creation([("Upload-Metadata", meta), ("Upload-Length", "1048577")])
        XCTAssertEqual(tooLarge.status, 413)
        XCTAssertEqual(tooLarge.json["error"] as? String, "body_too_large")
        let noContainer = try creation([
            ("Upload-Metadata", Tus.metadata([("path", "/tmp/x")])), ("Upload-Length", "1"),
        ])
        XCTAssertEqual(noContainer.status, 400)
        XCTAssertTrue(
            (noContainer.json["detail"] as? String)?.contains("container") == true, "\(noContainer.json)")
        XCTAssertEqual(
            try creation([
                ("Upload-Metadata", Tus.metadata([("container", "c1"), ("path", "tmp/x")])),
                ("Upload-Length", "1"),
            ])
            .status, 400, "relative path")
        XCTAssertEqual(
            try creation([("Upload-Metadata", "container !!!"), ("Upload-Length", "1")]).status, 400,
            "not base64")
        XCTAssertEqual(
            try creation([
                ("Upload-Metadata", meta), ("X-Container-Name", "c2"), ("Upload-Length", "1"),
            ]).status, 400, "the container named twice")
        // The X-* headers of /upload name the destination as well.
        let byHeaders = try creation([
            ("Upload-Metadata", ""), ("X-Container-Name", "c1"), ("X-File-Path", "/tmp/"),
            ("X-Host-Path", "h.txt"),
            ("Upload-Length", "5"),
        ])
        XCTAssertEqual(byHeaders.status, 201)
        let id = Tus.id(byHeaders.header("Location") ?? "")
        XCTAssertEqual(try TaskAPI.get(ferry, id)["path"] as? String, "/tmp/h.txt")
        XCTAssertEqual(try TaskAPI.get(ferry, id)["state"] as? String, "receiving")
        XCTAssertEqual(try Tus.request(ferry, "GET", "/files/\(id)", [Tus.resumable]).status, 405)
        XCTAssertEqual(try Tus.head(ferry, "/files/nope").status, 404)
        // Nothing refused left a file.
        XCTAssertEqual(try ferry.spoolContents(), ["\(id).data"])
    }

    func testChunksWithOffsetsAndStatusesAreDeliveredWithTheirSHA256() throws {
        let ferry = try FerryProcess()
        let path = directory() + "/chunks.bin"
        let body = randomBytes(3 * 65536 + 7)
        let location = try Tus.location(
            ferry, length: body.count, path: path, metadata: [("create_dirs", "true"), ("mode", "0600")])
        let id = Tus.id(location)
        let head = try Tus.head(ferry, location)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("Upload-Offset"), "0")
        XCTAssertEqual(head.header("Upload-Length"), String(body.count))
        XCTAssertEqual(head.header("Cache-Control"), "no-store")
        XCTAssertNotNil(head.header("Upload-Expires"))
        XCTAssertNotNil(head.header("Upload-Metadata"))

        // The wrong type, the wrong offset: refused, nothing changed.
        let wrongType = try Tus.request(
            ferry, "PATCH", location,
            [Tus.resumable, ("Content-Type", "application/octet-stream"), ("Upload-Offset", "0")],
            body: Array(body[0..<10]))
        XCTAssertEqual(wrongType.status, 415)
        let wrongOffset = try Tus.patch(ferry, location, offset: 5, Array(body[5..<10]))
        XCTAssertEqual(wrongOffset.status, 409)
        XCTAssertEqual(wrongOffset.header("Upload-Offset"), "0")
        XCTAssertEqual(try Tus.offset(ferry, location), 0)

        var offset = 0
        while offset < body.count {
            let end = min(body.count, offset + 65536)
            let answer = try Tus.patch(ferry, location, offset: offset, Array(body[offset..<end]))
            XCTAssertEqual(answer.status, 204)
            XCTAssertEqual(answer.header("Upload-Offset"), String(end))
            XCTAssertEqual(answer.header("Tus-Resumable"), "1.0.0")
            if end < body.count {
                let task = try TaskAPI.get(ferry, id)
                XCTAssertEqual(task["state"] as? String, "receiving")
                XCTAssertEqual(task["offset"] as? Int, end)
                XCTAssertEqual(task["length"] as? Int, body.count)
            } else {
                let digest = Digests.base64(.sha256, body)
                XCTAssertEqual(answer.header("Repr-Digest"), "sha-256=:\(digest):")
            }
            offset = end
        }
        XCTAssertEqual(
            try Tus.patch(ferry, location, offset: body.count, [1]).status, 404, "complete: no more PATCHes")
        try assertDelivered(ferry, id, body, at: path)
        XCTAssertTrue(try Incus.stat(container: "c1", path: path).contains("600"))
        // A client that missed the last answer learns from HEAD that all is in.
        XCTAssertEqual(try Tus.head(ferry, location).header("Upload-Offset"), String(body.count))
        let samples = try Metrics.scrape(ferry)
        XCTAssertEqual(samples["ferry_tus_uploads_total{event=\"created\"}"], 1)
        XCTAssertEqual(samples["ferry_tus_uploads_total{event=\"completed\"}"], 1)
        XCTAssertEqual(samples["ferry_upload_bytes_received_total{protocol=\"tus\"}"], Double(body.count))
        try Incus.remove(container: "c1", path: String(path.dropLast("/chunks.bin".count)))
    }

    func testChecksumsCreationWithUploadAndDeferredLength() throws {
        let ferry = try FerryProcess()
        let path = "/tmp/tus-checksum-\(UInt32.random(in: 0...UInt32.max))"
        let body = randomBytes(50_000)
        // creation-with-upload: the POST brings the first bytes.
        let created = try Tus.create(ferry, length: nil, path: path, body: Array(body[0..<20_000]))
        XCTAssertEqual(created.status, 201)
        XCTAssertEqual(created.header("Upload-Offset"), "20000")
        let location = try XCTUnwrap(created.header("Location"))
        XCTAssertEqual(try Tus.head(ferry, location).header("Upload-Defer-Length"), "1")

        let part = Array(body[20_000..<30_000])
        let wrong = try Tus.patch(
            ferry, location, offset: 20_000, part,
            headers: [("Upload-Checksum", "sha1 \(Data(count: 20).base64EncodedString())")])
        XCTAssertEqual(wrong.status, 460)
        XCTAssertEqual(wrong.json["error"] as? String, "checksum_mismatch")
        XCTAssertEqual(try Tus.offset(ferry, location), 20_000, "the PATCH's bytes were discarded")
        let unknown = try Tus.patch(
            ferry, location, offset: 20_000, part, headers: [("Upload-Checksum", "crc32 AAAAAA==")])
        XCTAssertEqual(unknown.status, 400)
        let right = try Tus.patch(
            ferry, location, offset: 20_000, part,
            headers: [("Upload-Checksum", "sha1 \(Digests.base64(.sha1, part))")])
        XCTAssertEqual(right.status, 204)
        XCTAssertEqual(right.header("Upload-Offset"), "30000")
        let third = Array(body[30_000..<40_000])
        XCTAssertEqual(
            try Tus.patch(
                ferry, location, offset: 30_000, third,
                headers: [("Upload-Checksum", "sha256 \(Digests.base64(.sha256, third))")]
            ).status, 204)
        // The length, announced at last, with the last bytes and their md5.
        let last = Array(body[40_000...])
        let beyond = try Tus.patch(
            ferry, location, offset: 40_000, last, headers: [("Upload-Length", "45000")])
        XCTAssertEqual(beyond.status, 413, "more than the length it announces")
        let final = try Tus.patch(
            ferry, location, offset: 40_000, last,
            headers: [("Upload-Length", "50000"), ("Upload-Checksum", "md5 \(Digests.base64(.md5, last))")])
        XCTAssertEqual(final.status, 204)
        XCTAssertEqual(final.header("Upload-Offset"), "50000")
        let id = Tus.id(location)
        try assertDelivered(ferry, id, body, at: path)
        try Incus.remove(container: "c1", path: path)
    }

    func testADeferredLengthIsJudgedWhenItIsAnnouncedAndAccountedToTheEnd() throws {
        let ferry = try FerryProcess(arguments: ["--spool-max-bytes", "100K"])
        let path = "/tmp/tus-deferred-\(UInt32.random(in: 0...UInt32.max))"
        let location = try Tus.location(ferry, length: nil, path: path)
        let body = randomBytes(20_000)
        XCTAssertEqual(try Tus.patch(ferry, location, offset: 0, Array(body[0..<10_000])).status, 204)
        // A length the spool cannot hold is refused on the PATCH that announces it.
        let tooLong = try Tus.patch(
            ferry, location, offset: 10_000, Array(body[10_000...]), headers: [("Upload-Length", "200000")])
        XCTAssertEqual(tooLong.status, 503)
        XCTAssertEqual(tooLong.json["error"] as? String, "spool_full")
        XCTAssertEqual(try Tus.offset(ferry, location), 10_000, "nothing changed")
        XCTAssertEqual(try Tus.head(ferry, location).header("Upload-Defer-Length"), "1")
        let last = try Tus.patch(
            ferry, location, offset: 10_000, Array(body[10_000...]), headers: [("Upload-Length", "20000")])
        XCTAssertEqual(last.status, 204)
        try assertDelivered(ferry, Tus.id(location), body, at: path)
        // Everything it held is given back, exactly: the spool is empty again.
        try waitUntil("the spool holds nothing") { try Metrics.scrape(ferry)["ferry_spool_bytes"] == 0 }
        XCTAssertEqual(try TaskAPI.request(ferry, "GET", "/healthz").status, 200)
        try Incus.remove(container: "c1", path: path)
    }

    func testTerminationAndExpiryRemoveBytesAndRow() throws {
        let ferry = try FerryProcess(arguments: ["--upload-expiry", "1s"])
        let location = try Tus.location(ferry, length: 100, path: "/tmp/terminated")
        XCTAssertEqual(try Tus.patch(ferry, location, offset: 0, randomBytes(40)).status, 204)
        let id = Tus.id(location)
        let deleted = try Tus.request(ferry, "DELETE", location, [Tus.resumable])
        XCTAssertEqual(deleted.status, 204)
        XCTAssertEqual(try Tus.head(ferry, location).status, 404)
        XCTAssertEqual(try Tus.patch(ferry, location, offset: 40, randomBytes(10)).status, 404)
        XCTAssertEqual(try Tus.request(ferry, "DELETE", location, [Tus.resumable]).status, 404)
        XCTAssertEqual(try TaskAPI.request(ferry, "GET", "/tasks/\(id)").status, 404)
        XCTAssertFalse(try ferry.spoolContents().contains("\(id).data"))

        // Untouched for --upload-expiry: gone, and Upload-Expires said when.
        let created = try Tus.create(ferry, length: 100, path: "/tmp/expiring")
        XCTAssertEqual(created.status, 201)
        let expires = try XCTUnwrap(created.header("Upload-Expires"))
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let when = try XCTUnwrap(formatter.date(from: expires), expires)
        XCTAssertEqual(when.timeIntervalSinceNow, 1, accuracy: 2)
        let expiring = try XCTUnwrap(created.header("Location"))
        try waitUntil("the upload expired", timeout: 10) { try Tus.head(ferry, expiring).status == 404 }
        XCTAssertFalse(try ferry.spoolContents().contains("\(Tus.id(expiring)).data"))
        let samples = try Metrics.scrape(ferry)
        XCTAssertEqual(samples["ferry_tus_uploads_total{event=\"terminated\"}"], 1)
        XCTAssertEqual(samples["ferry_tus_uploads_total{event=\"expired\"}"], 1)
        XCTAssertEqual(samples["ferry_tasks{state=\"receiving\"}"], 0)
    }

    func testAPatchCutOffMidBodyKeepsWhatArrivedAndResumes() throws {
        let ferry = try FerryProcess()
        let path = "/tmp/tus-cut-\(UInt32.random(in: 0...UInt32.max))"
        let block = randomBytes(1 << 20)
        let body = block + block + block + Array(block[0..<1000])
        let location = try Tus.location(ferry, length: body.count, path: path)
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead(
            "PATCH", location,
            [Tus.resumable, Tus.patchType, ("Upload-Offset", "0"), ("Content-Length", String(body.count))])
        let sent = 1_500_000
        try client.send(Array(body[0..<sent]))
        try waitUntil("Ferry has the bytes sent") {
            try Metrics.scrape(ferry)["ferry_upload_bytes_received_total{protocol=\"tus\"}"] == Double(sent)
        }
        client.abort()
        try ferry.waitForLog(containing: "upload aborted", "task=\(Tus.id(location))")
        XCTAssertEqual(try Tus.offset(ferry, location), sent, "every byte that arrived is kept")
        let rest = try Tus.patch(ferry, location, offset: sent, Array(body[sent...]))
        XCTAssertEqual(rest.status, 204)
        try assertDelivered(ferry, Tus.id(location), body, at: path)
        try Incus.remove(container: "c1", path: path)
    }

    func testANewerRequestTakesOverFromAnOlderPatchStillOpen() throws {
        let ferry = try FerryProcess()
        let path = "/tmp/tus-takeover-\(UInt32.random(in: 0...UInt32.max))"
        let block = randomBytes(1 << 20)
        let body = block + block + block
        let location = try Tus.location(ferry, length: body.count, path: path)
        // A client whose network went: its PATCH stays open on the server.
        let stale = try RawHTTPClient(port: ferry.port)
        try stale.sendHead(
            "PATCH", location,
            [Tus.resumable, Tus.patchType, ("Upload-Offset", "0"), ("Content-Length", String(body.count))])
        try stale.send(Array(body[0..<(1 << 20)]))
        try waitUntil("Ferry has the first MiB") {
            try Metrics.scrape(ferry)["ferry_upload_bytes_received_total{protocol=\"tus\"}"]
                == Double(1 << 20)
        }
        // It comes back: HEAD, then a PATCH from what HEAD says.
        let offset = try Tus.offset(ferry, location)
        XCTAssertGreaterThan(offset, 0, "what the older PATCH wrote is kept")
        XCTAssertLessThanOrEqual(offset, 1 << 20)
        let rest = try Tus.patch(ferry, location, offset: offset, Array(body[offset...]))
        XCTAssertEqual(rest.status, 204)
        XCTAssertEqual(rest.header("Upload-Offset"), String(body.count))
        // The older PATCH may write no more.
        try? stale.send(Array(body[(1 << 20)..<(2 << 20)]))
        if let answer = try? stale.readResponse() {
            XCTAssertTrue([409, 404].contains(answer.status), "\(answer.status)")
        }
        try assertDelivered(ferry, Tus.id(location), body, at: path)
        try Incus.remove(container: "c1", path: path)
    }

    func testHeadsRacingPatchesAlwaysAnswerAndLoseNothing() throws {
        let ferry = try FerryProcess()
        let path = "/tmp/tus-race-\(UInt32.random(in: 0...UInt32.max))"
        let piece = randomBytes(300_000)
        let rounds = 30
        let body = Array((0..<rounds).map { _ in piece }.joined())
        let location = try Tus.location(ferry, length: body.count, path: path)
        var offset = 0
        var attempts = 0
        while offset < body.count {
            attempts += 1
            guard attempts <= 10 * rounds else { return XCTFail("no progress: \(offset) of \(body.count)") }
            // A PATCH and, at once, a HEAD on another connection: the HEAD may end the
            // PATCH at any point, also while its end is being stored.
            let patch = try RawHTTPClient(port: ferry.port)
            let end = min(body.count, offset + piece.count)
            try patch.sendHead(
                "PATCH", location,
                [
                    Tus.resumable, Tus.patchType, ("Upload-Offset", String(offset)),
                    ("Content-Length", String(end - offset)),
                ])
            try patch.send(Array(body[offset..<end]))
            let head = try Tus.head(ferry, location)
            XCTAssertEqual(head.status, 200)
            let answer = try patch.readResponse()
            XCTAssertTrue([204, 409].contains(answer.status), "\(answer.status)")
            let now = try Tus.offset(ferry, location)
            XCTAssertGreaterThanOrEqual(now, offset)
            XCTAssertLessThanOrEqual(now, end)
            offset = now
            if offset < end && answer.status == 204 { XCTFail("a 204 for bytes that are not kept") }
        }
        try assertDelivered(ferry, Tus.id(location), body, at: path)
        try Incus.remove(container: "c1", path: path)
    }

    func testKill9HalfWayThenRestartResumesFromTheAcknowledgedOffset() throws {
        let path = "/tmp/tus-kill-\(UInt32.random(in: 0...UInt32.max))"
        let block = randomBytes(1 << 20)
        let body = block + randomBytes(1000) + block
        let first = try FerryProcess()
        let location = try Tus.location(first, length: body.count, path: path)
        let half = (1 << 20) + 1000
        let answer = try Tus.patch(first, location, offset: 0, Array(body[0..<half]))
        XCTAssertEqual(answer.status, 204)
        // More bytes that are never acknowledged, then the process dies.
        let unacknowledged = try RawHTTPClient(port: first.port)
        try unacknowledged.sendHead(
            "PATCH", location,
            [
                Tus.resumable, Tus.patchType, ("Upload-Offset", String(half)),
                ("Content-Length", String(body.count - half)),
            ])
        try unacknowledged.send(Array(body[half..<(half + 300_000)]))
        XCTAssertNil(first.end(with: SIGKILL).exitStatus)

        let second = try FerryProcess(spool: first.spool)
        try second.waitForLog(containing: "spool recovered", "resumable=1")
        let offset = try Tus.offset(second, location)
        XCTAssertGreaterThanOrEqual(offset, half, "at least what was acknowledged")
        XCTAssertEqual(try TaskAPI.get(second, Tus.id(location))["state"] as? String, "receiving")
        let rest = try Tus.patch(second, location, offset: offset, Array(body[offset...]))
        XCTAssertEqual(rest.status, 204)
        try assertDelivered(second, Tus.id(location), body, at: path)
        try Incus.remove(container: "c1", path: path)
    }

    func testTheTokenThatCreatedAnUploadOwnsIt() throws {
        let alpha = "a-\(UUID().uuidString)"
        let beta = "b-\(UUID().uuidString)"
        let policy = NSTemporaryDirectory() + "ferry-tokens-\(UUID().uuidString).yaml"
        try """
        tokens:
          - name: alpha
            sha256: \(AccessPolicy.digest(ofToken: alpha))
            containers: [c1]
            paths: [/tmp]
            max_upload: 1K
          - name: beta
            sha256: \(AccessPolicy.digest(ofToken: beta))
            containers: [c1]
            paths: [/tmp]
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let ferry = try FerryProcess(arguments: ["--tokens", policy])
        let bearer = { (token: String) in [("Authorization", "Bearer \(token)")] }
        XCTAssertEqual(try Tus.create(ferry, length: 10, path: "/tmp/x").status, 401)
        XCTAssertEqual(try Tus.create(ferry, length: 10, path: "/srv/x", headers: bearer(alpha)).status, 403)
        XCTAssertEqual(
            try Tus.create(ferry, length: 2000, path: "/tmp/x", headers: bearer(alpha)).status, 403,
            "max_upload")
        let location = try Tus.location(ferry, length: 10, path: "/tmp/owned", headers: bearer(alpha))
        XCTAssertEqual(try Tus.head(ferry, location, headers: bearer(beta)).status, 404)
        XCTAssertEqual(try Tus.patch(ferry, location, offset: 0, [1, 2], headers: bearer(beta)).status, 404)
        XCTAssertEqual(try Tus.request(ferry, "DELETE", location, [Tus.resumable] + bearer(beta)).status, 404)
        XCTAssertEqual(try Tus.offset(ferry, location, headers: bearer(alpha)), 0, "untouched by beta")
        XCTAssertEqual(try Tus.patch(ferry, location, offset: 0, [1, 2], headers: bearer(alpha)).status, 204)
    }

    func testTuspyUploadsInChunksWithMetadata() throws {
        let ferry = try FerryProcess()
        let path = "/tmp/tuspy-\(UInt32.random(in: 0...UInt32.max))/"
        let block = randomBytes(1 << 20)
        let body = block + block + randomBytes(12_345)
        let source = NSTemporaryDirectory() + "tuspy-\(UUID().uuidString).bin"
        try Data(body).write(to: URL(fileURLWithPath: source))
        defer { try? FileManager.default.removeItem(atPath: source) }
        let output = try Command.run(
            "/usr/bin/env",
            [
                "python3", Self.tuspyScript, "http://\(ferry.address)/files/", source,
                "container=c1", "path=\(path)", "filename=image.bin", "create_dirs=true",
            ])
        let url = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(url.contains("/files/"), url)
        let id = String(url.split(separator: "/").last ?? "")
        XCTAssertEqual(
            try Metrics.scrape(ferry)["ferry_http_requests_total{route=\"/files/{id}\",status=\"204\"}"], 3,
            "three PATCHes of 1 MiB at most")
        try assertDelivered(ferry, id, body, at: path + "image.bin")
        try Incus.remove(container: "c1", path: String(path.dropLast()))
    }
}
