import XCTest

/// Bodies stream to disk: Ferry's memory does not grow with the size of an upload.
final class MemoryTests: XCTestCase {
    private static let size = 2 << 30
    /// A debug build idles at about 29 MiB; the body's batches (256 KiB, up to four of
    /// them waiting for the SHA-256 off the loop) and the hasher's thread come on top.
    private static let limit = 40 << 20

    private func upload(chunked: Bool, path: String) throws {
        let ferry = try FerryProcess(arguments: ["--max-body-size", "3G"])
        let client = try RawHTTPClient(port: ferry.port, timeout: 300)
        let framing = chunked ? ("Transfer-Encoding", "chunked") : ("Content-Length", String(Self.size))
        try client.sendHead("POST", "/upload", [("X-Container-Name", "c1"), ("X-File-Path", path), framing])
        // Generated, not stored: 1 MiB of random bytes sent 2048 times.
        let block = randomBytes(1 << 20)
        for _ in 0..<(Self.size / block.count) {
            if chunked { try client.sendChunk(block) } else { try client.send(block) }
        }
        if chunked { try client.sendLastChunk() }
        let response = try client.readResponse()

        XCTAssertEqual(response.status, 202)
        XCTAssertEqual(response.json["bytes"] as? Int, Self.size)
        let peak = try ferry.peakResidentBytes()
        XCTAssertLessThanOrEqual(peak, Self.limit, "peak RSS \(peak >> 20) MiB during a 2 GiB upload")
        print("peak RSS during a 2 GiB \(chunked ? "chunked" : "Content-Length") upload: \(peak >> 10) KiB")
        XCTAssertTrue(
            try ferry.waitForSettlement(of: Uploads.taskID(response), timeout: 300).contains(
                "outcome=delivered"))
        XCTAssertTrue(try Incus.stat(container: "c1", path: path).hasSuffix(" \(Self.size)"))
        try Incus.remove(container: "c1", path: path)
    }

    func testTwoGiBContentLengthUploadStaysUnder40MiB() throws {
        try upload(chunked: false, path: "/tmp/big-content-length.bin")
    }

    func testTwoGiBChunkedUploadStaysUnder40MiB() throws {
        try upload(chunked: true, path: "/tmp/big-chunked.bin")
    }

    /// libevent 2.1 reads at most 4 KiB per call; Ferry's read hook reads what the socket
    /// holds, up to 256 KiB. Proven on a real body, not only by the start-up probe.
    func testLargeBodiesAreReadInLargePieces() throws {
        let ferry = try FerryProcess(arguments: ["--incus", "/bin/true", "--follow-symlinks"])
        let before = try Metrics.scrape(ferry)
        // Generated, not stored: 1 MiB of random bytes sent 64 times.
        let block = randomBytes(1 << 20)
        let size = 64 * block.count
        let client = try RawHTTPClient(port: ferry.port, timeout: 60)
        try client.sendHead(
            "POST", "/upload",
            [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/x"), ("Content-Length", String(size))])
        for _ in 0..<64 { try client.send(block) }
        XCTAssertEqual(try client.readResponse().status, 202)
        let after = try Metrics.scrape(ferry)
        let reads =
            after["ferry_socket_reads_total", default: 0] - before["ferry_socket_reads_total", default: 0]
        let bytes =
            after["ferry_socket_read_bytes_total", default: 0]
            - before["ferry_socket_read_bytes_total", default: 0]
        XCTAssertGreaterThanOrEqual(bytes, Double(size), "every body byte came through the hook")
        XCTAssertGreaterThan(bytes / max(reads, 1), 16 * 1024, "\(reads) reads for \(bytes) bytes")
    }
}
