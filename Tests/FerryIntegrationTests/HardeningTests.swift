import FerryCore
import Foundation
import XCTest

/// What an attack on a running Ferry found, each closed: no request crashes it, no stranger
/// starves it of connections, descriptors or memory.
final class HardeningTests: XCTestCase {
    private func get(_ ferry: FerryProcess, _ target: String, _ headers: [(String, String)] = []) throws
        -> RawResponse
    {
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead("GET", target, headers)
        return try client.readResponse()
    }

    func testQueriesThatOnceCrashedFerryAreAnsweredAndFerryServesOn() throws {
        let ferry = try FerryProcess()
        for query in ["=", "==", "&=&", "=x", "%", "state=%ff", "limit=99999999999999999999", "after", "&&&"]
        {
            let response = try get(ferry, "/tasks?\(query)")
            XCTAssertTrue([200, 400].contains(response.status), "\(query): \(response.status)")
            if response.status == 400 {
                XCTAssertEqual(response.json["error"] as? String, "bad_query", query)
            }
        }
        XCTAssertEqual(try get(ferry, "/tasks?=").status, 400)
        XCTAssertTrue(ferry.process.isRunning)
        XCTAssertEqual(try get(ferry, "/healthz").status, 200)
    }

    func testSlowHeadsAreCutAtTheHeaderDeadlineWhileUploadsAreServed() throws {
        let ferry = try FerryProcess(arguments: ["--header-timeout", "2", "--idle-timeout", "60"])
        // 1,000 heads that never end, each kept up: a closed one is replaced at once.
        let attack = SlowHeads(count: 1000, port: ferry.port, reconnect: true, interval: 0.25)
        defer { attack.stop() }
        XCTAssertGreaterThanOrEqual(attack.snapshot.open, 990)
        var ids: [String] = []
        let started = Date()
        while Date().timeIntervalSince(started) < 5 {
            let response = try Uploads.post(
                to: ferry, [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/slow-heads-\(ids.count)")],
                body: Array("under attack".utf8))
            XCTAssertEqual(response.status, 202, "an upload during the attack: \(response.json)")
            ids.append(Uploads.taskID(response))
            usleep(250_000)
        }
        let (open, lifetimes, _) = attack.snapshot
        attack.stop()
        XCTAssertGreaterThanOrEqual(lifetimes.count, 900, "the first 1,000 heads were cut (\(open) open)")
        XCTAssertLessThan(
            lifetimes.max() ?? 0, 2 + 1.5, "no head outlived the deadline by more than a watchdog tick")
        XCTAssertGreaterThan(
            lifetimes.min() ?? 0, 1.5, "trickling bytes were not taken as a slow head at once")
        for id in ids {
            XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("outcome=delivered"))
        }
        XCTAssertGreaterThanOrEqual(
            try Metrics.scrape(ferry)["ferry_header_timeouts_total", default: 0], 900, "an operator sees it")
    }

    func testOutOfDescriptorsNoAcceptedUploadBecomesADeadLetter() throws {
        // A descriptor limit the attack exhausts easily; Ferry fits its connections into it.
        let ferry = try FerryProcess(
            arguments: ["--header-timeout", "5"], launcher: ["/usr/bin/prlimit", "--nofile=256:256", "--"])
        try ferry.waitForLog(containing: "--max-connections lowered", "rlimit_nofile=256")
        // Connections Ferry is already serving (one answer each proves it accepted them).
        let clients = try (0..<20).map { _ in try RawHTTPClient(port: ferry.port) }
        for client in clients {
            try client.sendHead("GET", "/healthz", [])
            XCTAssertEqual(try client.readResponse().status, 200)
        }
        let attack = SlowHeads(count: 600, port: ferry.port, reconnect: true, interval: 0.05)
        defer { attack.stop() }
        var ids: [String] = []
        for (index, client) in clients.enumerated() {
            let body = Array("accepted under attack \(index)".utf8)
            let response = try client.exchange(
                "POST", "/upload",
                [
                    ("X-Container-Name", "c1"), ("X-File-Path", "/tmp/descriptors-\(index)"),
                    ("Content-Length", String(body.count)),
                ], body: body)
            XCTAssertEqual(response.status, 202, "a connection within the limit is served: \(response.json)")
            if response.status == 202 { ids.append(Uploads.taskID(response)) }
        }
        for id in ids {
            XCTAssertTrue(
                try ferry.waitForSettlement(of: id).contains("outcome=delivered"),
                "an acknowledged upload was lost")
        }
        XCTAssertLessThanOrEqual(try ferry.openDescriptors(), 256)
        attack.stop()
        XCTAssertGreaterThan(
            try Metrics.scrape(ferry)["ferry_connections_refused_total", default: 0], 0,
            "sockets past the cap were closed unread")
        XCTAssertEqual(ferry.logLines(containing: "delivery failed").count, 0)
        XCTAssertLessThan(
            ferry.logLines(containing: "accept").count, 100, "failed accepts are not logged one by one")
        XCTAssertEqual(try get(ferry, "/healthz").status, 200)
    }

    func testBodiesOnProbeRoutesAreRefusedUnreadAndMemoryReturns() throws {
        let ferry = try FerryProcess()
        XCTAssertEqual(try get(ferry, "/healthz").status, 200)
        let before = try ferry.residentBytes()
        let block = [UInt8](repeating: 0x61, count: 1 << 20)
        var clients: [RawHTTPClient] = []
        for index in 0..<60 {
            let client = try RawHTTPClient(port: ferry.port)
            let route = ["/healthz", "/readyz", "/metrics", "/tasks"][index % 4]
            try client.sendHead("GET", route, [("Transfer-Encoding", "chunked")])
            try client.send(Array("989680\r\n".utf8) + block)
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 413, route)
            XCTAssertEqual(response.json["error"] as? String, "body_not_allowed", route)
            clients.append(client)
        }
        let during = try ferry.peakResidentBytes()
        clients = []
        for route in ["/healthz", "/metrics", "/readyz"] {
            let client = try RawHTTPClient(port: ferry.port)
            try client.sendHead("GET", route, [("Content-Length", "5")])
            try client.send(Array("hello".utf8))
            XCTAssertEqual(try client.readResponse().status, 413, "\(route) with a length")
        }
        let after = try ferry.residentBytes()
        print("RSS before \(before >> 10) KiB, peak \(during >> 10) KiB, after \(after >> 10) KiB")
        XCTAssertLessThan(during, before + (16 << 20), "60 refused bodies cost no memory")
        XCTAssertLessThanOrEqual(Double(after), 1.5 * Double(before))
        XCTAssertEqual(try get(ferry, "/healthz").status, 200)
    }

    func testChunksTooLargeToHoldAreCutOffAndTheirMemoryReturns() throws {
        let ferry = try FerryProcess(arguments: ["--max-chunk-size", "2M"])
        XCTAssertEqual(try get(ferry, "/healthz").status, 200)
        let before = try ferry.residentBytes()
        // Each announces a 10 MB chunk and sends 4 MiB of it: it can never complete.
        let block = [UInt8](repeating: 0x61, count: 4 << 20)
        var clients: [RawHTTPClient] = []
        for index in 0..<60 {
            let client = try RawHTTPClient(port: ferry.port, timeout: 10)
            try client.sendHead(
                "POST", "/upload",
                [
                    ("X-Container-Name", "c1"), ("X-File-Path", "/tmp/flood-\(index)"),
                    ("Transfer-Encoding", "chunked"),
                ])
            try? client.send(Array("989680\r\n".utf8) + block)
            clients.append(client)
        }
        for client in clients {
            XCTAssertTrue(client.serverClosed(), "a chunk that cannot fit has its connection closed")
        }
        try waitUntil("every flooding upload is aborted") {
            ferry.logLines(containing: "upload aborted").count == 60
        }
        try waitUntil("the flood's memory is given back", timeout: 10) {
            Double(try ferry.residentBytes()) <= 1.5 * Double(before)
        }
        print("RSS before \(before >> 10) KiB, peak \(try ferry.peakResidentBytes() >> 10) KiB")
        XCTAssertEqual(try ferry.spoolContents(), [], "no partial file is left")
    }

    func testAFIFOAtTheDestinationFailsAtOnceAndHoldsNoWorker() throws {
        let fifo = "/tmp/ferry-fifo-\(UUID().uuidString)"
        try Incus.run(["exec", "c1", "--", "mkfifo", fifo])
        defer { try? Incus.remove(container: "c1", path: fifo) }
        let ferry = try FerryProcess(arguments: ["--workers", "1"])
        let started = Date()
        let stuck = try Uploads.post(
            to: ferry, [("X-Container-Name", "c1"), ("X-File-Path", fifo)], body: Array("x".utf8))
        XCTAssertEqual(stuck.status, 202)
        let other = try Uploads.post(
            to: ferry, [("X-Container-Name", "c2"), ("X-File-Path", "/tmp/after-fifo")],
            body: Array("abc".utf8))
        let failed = try ferry.waitForSettlement(of: Uploads.taskID(stuck), timeout: 20)
        XCTAssertTrue(failed.contains("delivery failed"), failed)
        let task = try TaskAPI.get(ferry, Uploads.taskID(stuck))
        XCTAssertEqual(task["state"] as? String, "failed")
        XCTAssertEqual(task["attempts"] as? Int, 1, "permanent: not retried")
        XCTAssertTrue((task["last_error"] as? String ?? "").contains("FIFO"), "\(task)")
        XCTAssertTrue(try ferry.waitForSettlement(of: Uploads.taskID(other)).contains("outcome=delivered"))
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "the one worker was not held by the FIFO")
    }
}
