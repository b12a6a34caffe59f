import XCTest

/// Uploads for one container directory go out in one `incus file push`, into a real Incus.
final class BatchDeliveryTests: XCTestCase {
    /// Pushes wait at a gate, so uploads pile up behind the first one and are taken as a
    /// batch when it opens.
    private func heldFerry(_ gate: Gate, _ extra: [String] = []) throws -> FerryProcess {
        try FerryProcess(
            arguments: ["--incus", Gate.incus, "--workers", "1", "--retention", "1h"] + extra,
            environment: gate.environment)
    }

    /// Uploads a first file and waits until its push is held at the gate: everything
    /// uploaded after it waits in the queue and is handed out together.
    private func holdFirst(_ ferry: FerryProcess, _ directory: String) throws {
        let first = try upload(ferry, "\(directory)/first-alone", randomBytes(10))
        try waitUntil("the first push is held") { try TaskAPI.state(ferry, first) == "pushing" }
    }

    private func upload(_ ferry: FerryProcess, _ path: String, _ body: [UInt8], mode: String = "0644") throws
        -> String
    {
        let response = try Uploads.post(
            to: ferry,
            [
                ("X-Container-Name", "c1"), ("X-File-Path", path), ("X-Create-Dirs", "true"),
                ("X-File-Mode", mode),
            ],
            body: body)
        XCTAssertEqual(response.status, 202, String(decoding: response.body, as: UTF8.self))
        return Uploads.taskID(response)
    }

    func testUploadsToOneDirectoryArriveThroughOneBatchedPush() throws {
        let gate = Gate()
        let ferry = try heldFerry(gate)
        let directory = "/srv/batch-\(UInt32.random(in: 0...UInt32.max))"
        try holdFirst(ferry, directory)
        var bodies: [String: [UInt8]] = [:]
        var ids: [String] = []
        for index in 0..<30 {
            let name = "file-\(index)"
            bodies[name] = randomBytes(1000 + index)
            ids.append(try upload(ferry, "\(directory)/\(name)", bodies[name]!, mode: "0640"))
        }
        gate.open()
        for id in ids { try ferry.waitForSettlement(of: id) }

        // The first upload went alone; the thirty behind it in one call.
        let batch = try ferry.waitForLog(containing: "batch push", "outcome=delivered")
        XCTAssertTrue(batch.contains("files=30"), batch)
        for (name, body) in bodies {
            XCTAssertEqual(
                try Incus.sha256(container: "c1", path: "\(directory)/\(name)"), try Command.sha256(body))
        }
        XCTAssertEqual(
            try Incus.stat(container: "c1", path: "\(directory)/file-7"), "640 0 0 1007",
            "owner and mode as asked, not the spool file's")
        for id in ids { XCTAssertEqual(try TaskAPI.state(ferry, id), "delivered") }
        XCTAssertFalse(try ferry.spoolContents().contains { $0.hasSuffix(".batch") }, "staging links removed")
        XCTAssertFalse(try ferry.spoolContents().contains { $0.hasSuffix(".data") }, "bytes removed")
        try Incus.remove(container: "c1", path: directory)
    }

    func testTheLaterOfTwoUploadsToOnePathWins() throws {
        let gate = Gate()
        let ferry = try heldFerry(gate)
        let directory = "/srv/order-\(UInt32.random(in: 0...UInt32.max))"
        try holdFirst(ferry, directory)
        let older = randomBytes(5000)
        let newer = randomBytes(6000)
        let olderID = try upload(ferry, "\(directory)/same", older)
        let otherID = try upload(ferry, "\(directory)/other", randomBytes(100))
        let newerID = try upload(ferry, "\(directory)/same", newer)
        gate.open()
        for id in [olderID, otherID, newerID] { try ferry.waitForSettlement(of: id) }

        XCTAssertEqual(
            try Incus.sha256(container: "c1", path: "\(directory)/same"), try Command.sha256(newer),
            "the same destination is never twice in one batch, and the later upload is pushed last")
        try Incus.remove(container: "c1", path: directory)
    }

    func testOneBadFileInABatchDoesNotFailTheOthers() throws {
        let directory = "/srv/mixed-\(UInt32.random(in: 0...UInt32.max))"
        // A directory where one upload wants a file: Incus refuses that one file.
        try Incus.run(["exec", "c1", "--", "mkdir", "-p", "\(directory)/taken"])
        let gate = Gate()
        let ferry = try heldFerry(gate, ["--max-attempts", "1"])
        try holdFirst(ferry, directory)
        let good = randomBytes(3000)
        let goodIDs = try (0..<5).map { try upload(ferry, "\(directory)/good-\($0)", good) }
        let badID = try upload(ferry, "\(directory)/taken", randomBytes(100))
        gate.open()

        try ferry.waitForLog(containing: "batch push", "outcome=one_by_one")
        for id in goodIDs {
            XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("outcome=delivered"))
        }
        try ferry.waitForSettlement(of: badID)
        XCTAssertEqual(try TaskAPI.state(ferry, badID), "failed")
        for index in 0..<5 {
            XCTAssertEqual(
                try Incus.sha256(container: "c1", path: "\(directory)/good-\(index)"),
                try Command.sha256(good))
        }
        try Incus.remove(container: "c1", path: directory)
    }

    func testBatchMaxOfOneMeansOneFilePerCall() throws {
        let gate = Gate()
        let ferry = try heldFerry(gate, ["--batch-max", "1"])
        let directory = "/srv/single-\(UInt32.random(in: 0...UInt32.max))"
        let ids = try (0..<5).map { try upload(ferry, "\(directory)/f\($0)", randomBytes(100)) }
        gate.open()
        for id in ids { try ferry.waitForSettlement(of: id) }
        XCTAssertTrue(ferry.logLines(containing: "batch push").isEmpty)
        try Incus.remove(container: "c1", path: directory)
    }
}
