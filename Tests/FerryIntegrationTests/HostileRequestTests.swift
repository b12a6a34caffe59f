import Foundation
import XCTest

/// Hostile requests over raw sockets: each gets its exact status (or a closed connection),
/// Ferry keeps serving, nothing new is left in the spool and nothing is pushed.
final class HostileRequestTests: XCTestCase {
    private struct Case {
        var name: String
        var bytes: [UInt8]
        /// The status expected, or nil when the server just closes the connection.
        var status: Int?
        /// Bytes the client sends after reading nothing (for slow clients), then waits.
        var closeBeforeAnswer = false
    }

    private static func request(
        method: String = "POST", target: String = "/upload", _ headers: [(String, String)],
        body: String = ""
    ) -> [UInt8] {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: ferry\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        return Array((text + "\r\n" + body).utf8)
    }

    private static func upload(
        container: String = "c1", path: String = "/tmp/hostile", extra: [(String, String)] = [],
        length: String? = "5", body: String = "hello"
    ) -> [UInt8] {
        var headers = [("X-Container-Name", container), ("X-File-Path", path)] + extra
        if let length { headers.append(("Content-Length", length)) }
        return request(headers, body: body)
    }

    private static func raw(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// The same request with every character below U+0100 sent as one byte (Latin-1).
    private static func latin1(_ bytes: [UInt8]) -> [UInt8] {
        String(decoding: bytes, as: UTF8.self).unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }
    }

    private static let cases: [Case] = [
        // Traversal and malformed destinations.
        Case(name: "dot-dot segment", bytes: upload(path: "/tmp/../etc/shadow"), status: 400),
        Case(name: "dot segment", bytes: upload(path: "/tmp/./x"), status: 400),
        Case(name: "trailing dot-dot", bytes: upload(path: "/tmp/.."), status: 400),
        Case(name: "relative path", bytes: upload(path: "etc/passwd"), status: 400),
        Case(name: "empty path", bytes: upload(path: ""), status: 400),
        Case(name: "root as destination", bytes: upload(path: "/"), status: 400),
        Case(name: "empty segment", bytes: upload(path: "/tmp//x"), status: 400),
        Case(
            name: "overlong path", bytes: upload(path: "/" + String(repeating: "a", count: 4096)), status: 400
        ),
        Case(
            name: "segment past NAME_MAX", bytes: upload(path: "/tmp/" + String(repeating: "s", count: 256)),
            status: 400),
        Case(name: "control byte in path", bytes: upload(path: "/tmp/a\u{01}b"), status: 400),
        Case(name: "DEL in path", bytes: upload(path: "/tmp/a\u{7f}b"), status: 400),
        Case(name: "Latin-1 path, not UTF-8", bytes: latin1(upload(path: "/tmp/caf\u{e9}")), status: 400),
        Case(
            name: "Latin-1 host name, not UTF-8",
            bytes: latin1(upload(path: "/tmp/", extra: [("X-Host-Path", "C:\\caf\u{e9}.txt")])), status: 400),
        Case(name: "NUL cuts the path to nothing", bytes: upload(path: "\u{0}/etc/x"), status: 400),
        Case(name: "NUL inside the path", bytes: upload(path: "/tmp/x\u{0}/../../etc/y"), status: 400),
        Case(
            name: "NUL in another header", bytes: upload(extra: [("X-Host-Path", "/home/a\u{0}b")]),
            status: 400),
        Case(
            name: "NUL in the request line", bytes: raw("GET /heal\u{0}thz HTTP/1.1\r\nHost: x\r\n\r\n"),
            status: 400),
        Case(
            name: "two lengths on a probe route",
            bytes: request(
                method: "GET", target: "/healthz", [("Content-Length", "0"), ("Content-Length", "5")],
                body: "hello"),
            status: 400),
        Case(
            name: "a coding other than chunked on a task route",
            bytes: request(method: "GET", target: "/tasks", [("Transfer-Encoding", "gzip")]), status: 400),
        Case(name: "directory without a host name", bytes: upload(path: "/tmp/"), status: 400),
        Case(
            name: "host path that is all dots",
            bytes: upload(path: "/tmp/", extra: [("X-Host-Path", "../..")]),
            status: 400),
        // Names that look like options, remotes or paths.
        Case(name: "option-like container", bytes: upload(container: "-rf"), status: 400),
        Case(name: "long option container", bytes: upload(container: "--help"), status: 400),
        Case(name: "remote prefix", bytes: upload(container: "x:c1"), status: 400),
        Case(name: "path in the container name", bytes: upload(container: "c1/../c2"), status: 400),
        Case(
            name: "overlong container", bytes: upload(container: String(repeating: "c", count: 64)),
            status: 400),
        Case(name: "empty container", bytes: upload(container: ""), status: 400),
        Case(name: "all-digit container", bytes: upload(container: "123"), status: 400),
        Case(name: "space in container", bytes: upload(container: "c 1"), status: 400),
        Case(name: "non-ASCII container", bytes: upload(container: "c\u{e9}"), status: 400),
        // Modes and owners.
        Case(name: "non-octal mode", bytes: upload(extra: [("X-File-Mode", "0999")]), status: 400),
        Case(name: "negative mode", bytes: upload(extra: [("X-File-Mode", "-1")]), status: 400),
        Case(name: "mode beyond 7777", bytes: upload(extra: [("X-File-Mode", "17777")]), status: 400),
        Case(name: "hex mode", bytes: upload(extra: [("X-File-Mode", "0x1ff")]), status: 400),
        Case(name: "negative uid", bytes: upload(extra: [("X-File-Uid", "-1")]), status: 400),
        Case(name: "uid -1 in disguise", bytes: upload(extra: [("X-File-Uid", "4294967295")]), status: 400),
        Case(name: "uid in exponent form", bytes: upload(extra: [("X-File-Uid", "1e3")]), status: 400),
        Case(name: "gid with a sign", bytes: upload(extra: [("X-File-Gid", "+0")]), status: 400),
        Case(name: "create-dirs not a boolean", bytes: upload(extra: [("X-Create-Dirs", "1")]), status: 400),
        // Repeated headers.
        Case(name: "container twice", bytes: upload(extra: [("X-Container-Name", "c2")]), status: 400),
        Case(name: "path twice", bytes: upload(extra: [("X-File-Path", "/tmp/other")]), status: 400),
        Case(
            name: "mode twice", bytes: upload(extra: [("X-File-Mode", "0600"), ("X-File-Mode", "4755")]),
            status: 400),
        Case(name: "same length twice", bytes: upload(extra: [("Content-Length", "5")]), status: 400),
        Case(name: "two different lengths", bytes: upload(extra: [("Content-Length", "50")]), status: 400),
        // Framing tricks.
        Case(
            name: "length with chunked", bytes: upload(extra: [("Transfer-Encoding", "chunked")]), status: 400
        ),
        Case(
            name: "identity coding", bytes: upload(extra: [("Transfer-Encoding", "identity")], length: nil),
            status: 400),
        Case(
            name: "gzip then chunked",
            bytes: upload(extra: [("Transfer-Encoding", "gzip, chunked")], length: nil, body: "0\r\n\r\n"),
            status: 400),
        Case(
            name: "chunked twice",
            bytes: upload(
                extra: [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")], length: nil,
                body: "0\r\n\r\n"), status: 400),
        Case(name: "length not a number", bytes: upload(length: "5abc"), status: 400),
        Case(name: "negative length", bytes: upload(length: "-5"), status: 400),
        Case(name: "length beyond 64 bits", bytes: upload(length: "99999999999999999999999"), status: 400),
        Case(name: "length over the limit", bytes: upload(length: "1048577", body: ""), status: 413),
        Case(
            name: "chunk size over the limit",
            bytes: upload(extra: [("Transfer-Encoding", "chunked")], length: nil, body: "FFFFFFFFFFFF\r\n"),
            status: 413),
        // libevent 2.1 answers broken chunk framing as it answers an oversized chunk (it maps
        // DATA_CORRUPTED to DATA_TOO_LONG), with 413.
        Case(
            name: "chunk size not hex",
            bytes: upload(extra: [("Transfer-Encoding", "chunked")], length: nil, body: "zz\r\nhello\r\n"),
            status: 413),
        // A body that smuggles a second request behind a refused one.
        Case(
            name: "smuggled request behind a 404",
            bytes: request(
                target: "/nowhere", [("Content-Length", "60")],
                body: "GET /healthz HTTP/1.1\r\nHost: ferry\r\n\r\n" + String(repeating: "x", count: 22)),
            status: 404),
        Case(
            name: "smuggled upload behind a 400",
            bytes: upload(
                container: "-bad", length: "120",
                body: "POST /upload HTTP/1.1\r\nX-Container-Name: c1\r\nX-File-Path: /tmp/smuggled\r\n"
                    + "Content-Length: 5\r\n\r\nhello" + String(repeating: "x", count: 20)), status: 400),
        // Oversized and malformed heads.
        Case(
            name: "oversized header",
            bytes: upload(extra: [("X-Padding", String(repeating: "p", count: 40_000))]), status: 400),
        Case(
            name: "too many headers",
            bytes: upload(extra: (0..<3000).map { ("X-Filler-\($0)", "filler") }), status: 400),
        Case(name: "garbage request line", bytes: raw("GARBAGE\r\n\r\n"), status: 400),
        Case(name: "unsupported expectation", bytes: upload(extra: [("Expect", "teapot")]), status: 417),
        // Slow clients (the idle timeout is 1 s here).
        Case(name: "slowloris head", bytes: raw("POST /upload HTTP/1.1\r\nX-Container-Na"), status: nil),
        Case(name: "slowloris body", bytes: upload(length: "1000", body: "only a few bytes"), status: nil),
    ]

    func testFortyAndMoreHostileRequests() throws {
        XCTAssertGreaterThanOrEqual(Self.cases.count, 40)
        let ferry = try FerryProcess(arguments: ["--max-body-size", "1M", "--idle-timeout", "1s"])
        for hostile in Self.cases {
            let client = try RawHTTPClient(port: ferry.port, timeout: 10)
            try client.send(hostile.bytes)
            if let status = hostile.status {
                let response = try client.readResponse()
                XCTAssertEqual(response.status, status, hostile.name)
                XCTAssertTrue(
                    client.serverClosed(), "\(hostile.name): one answer, then the connection closes")
            } else {
                XCTAssertTrue(client.serverClosed(), "\(hostile.name): closed without an answer")
            }
            try assertStillServingWithNothingLeft(ferry, hostile.name)
        }
    }

    func testEarlyDisconnectsLeaveNothing() throws {
        let ferry = try FerryProcess()
        let scenarios: [(String, [UInt8])] = [
            ("after the head", Self.upload(length: "100000", body: "")),
            ("mid-body", Self.upload(length: "100000", body: String(repeating: "b", count: 50_000))),
            (
                "mid-chunk",
                Self.upload(extra: [("Transfer-Encoding", "chunked")], length: nil, body: "1000\r\nabc")
            ),
            ("mid-head", Self.raw("POST /upload HTTP/1.1\r\nX-Container-Name: c1\r\n")),
        ]
        for (name, bytes) in scenarios {
            let client = try RawHTTPClient(port: ferry.port)
            try client.send(bytes)
            client.abort()
            try assertStillServingWithNothingLeft(ferry, name)
        }
    }

    func testABodyTricklingBelowTheMinimumRateIsCutOff() throws {
        let ferry = try FerryProcess(arguments: ["--min-body-rate", "10K", "--body-rate-grace", "1s"])
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead(
            "POST", "/upload",
            [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/trickle"), ("Content-Length", "1000000")])
        // About 1 KiB/s, each send well within the idle timeout: only the rate check can stop it.
        var cutOff = false
        for _ in 0..<100 {
            do {
                try client.send(Array(repeating: 0x61, count: 100))
            } catch {
                cutOff = true
                break
            }
            usleep(100_000)
        }
        XCTAssertTrue(cutOff || client.serverClosed(), "the connection was closed")
        try ferry.waitForLog(containing: "upload aborted")
        try assertStillServingWithNothingLeft(ferry, "trickle")
    }

    func testAHugeChunkIsNotHeldInMemory() throws {
        let ferry = try FerryProcess(arguments: [
            "--max-chunk-size", "1M", "--min-body-rate", "10K", "--body-rate-grace", "1s",
        ])
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead(
            "POST", "/upload",
            [
                ("X-Container-Name", "c1"), ("X-File-Path", "/tmp/huge-chunk"),
                ("Transfer-Encoding", "chunked"),
            ])
        // One 200 MiB chunk, well under the body limit, that libevent would buffer whole.
        try client.send(Array("C800000\r\n".utf8))
        let piece = [UInt8](repeating: 0x62, count: 1 << 20)
        var cutOff = false
        for _ in 0..<200 {
            do {
                try client.send(piece)
            } catch {
                cutOff = true
                break
            }
        }
        XCTAssertTrue(cutOff, "the server stopped reading and closed the connection")
        XCTAssertLessThan(try ferry.peakResidentBytes(), 48 << 20, "the chunk was not buffered whole")
        try assertStillServingWithNothingLeft(ferry, "huge chunk")
    }

    func testOptionLikeDestinationsArriveAsPathsNotOptions() throws {
        let ferry = try FerryProcess()
        let directory = "/tmp/options-\(UInt32.random(in: 0...UInt32.max))"
        for name in ["-p", "--help", "--mode=4777", "-q"] {
            let body = randomBytes(64)
            let response = try Uploads.post(
                to: ferry,
                [
                    ("X-Container-Name", "c1"), ("X-File-Path", "\(directory)/\(name)"),
                    ("X-Create-Dirs", "true"),
                ],
                body: body)
            XCTAssertEqual(response.status, 202, name)
            XCTAssertTrue(
                try ferry.waitForSettlement(of: Uploads.taskID(response)).contains("outcome=delivered"), name)
            XCTAssertEqual(try Incus.stat(container: "c1", path: "\(directory)/\(name)"), "644 0 0 64", name)
        }
        try Incus.remove(container: "c1", path: directory)
    }

    func testPushesInheritOnlyStandardDescriptors() throws {
        let log = NSTemporaryDirectory() + "ferry-fds-\(UUID().uuidString)"
        let wrapper = URL(fileURLWithPath: Gate.incus).deletingLastPathComponent()
            .appendingPathComponent("descriptor-recording-incus").path
        let ferry = try FerryProcess(
            arguments: ["--incus", wrapper], environment: ["FERRY_TEST_FD_LOG": log])
        // Keep a client connected and an upload in progress, so that sockets and a spool file
        // are open in Ferry while the push starts.
        let busy = try RawHTTPClient(port: ferry.port)
        try busy.sendHead(
            "POST", "/upload",
            [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/busy"), ("Content-Length", "100")])
        try busy.send(randomBytes(10))
        let response = try Uploads.post(
            to: ferry, [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/descriptors")], body: [1, 2, 3])
        XCTAssertTrue(try ferry.waitForSettlement(of: Uploads.taskID(response)).contains("outcome=delivered"))

        let listing = try String(contentsOfFile: log, encoding: .utf8)
        var inherited: [String: String] = [:]
        for line in listing.split(separator: "\n") {
            let parts = line.components(separatedBy: " -> ")
            if parts.count == 2 { inherited[parts[0]] = parts[1] }
        }
        XCTAssertEqual(inherited["0"], "/dev/null", listing)
        XCTAssertTrue(inherited["1"]?.hasPrefix("socket:") ?? false, listing)
        XCTAssertTrue(inherited["2"]?.hasPrefix("socket:") ?? false, listing)
        XCTAssertEqual(Set(inherited.keys), ["0", "1", "2"], "only stdin, stdout and stderr:\n\(listing)")
        try? FileManager.default.removeItem(atPath: log)
    }

    private func assertStillServingWithNothingLeft(_ ferry: FerryProcess, _ name: String) throws {
        let health = try RawHTTPClient(port: ferry.port)
        try health.sendHead("GET", "/healthz", [])
        XCTAssertEqual(try health.readResponse().status, 200, "\(name): still serving")
        try waitUntil("\(name): the spool is empty") { try ferry.spoolContents().isEmpty }
        XCTAssertEqual(ferry.logLines(containing: "push").count, 0, "\(name): nothing pushed")
        XCTAssertEqual(ferry.logLines(containing: "upload accepted").count, 0, "\(name): nothing accepted")
    }
}
