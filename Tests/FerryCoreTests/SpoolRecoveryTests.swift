import CSystem
import FerryCore
import Foundation
import XCTest

/// Recovery on a real directory: what was acknowledged comes back, what was not goes.
final class SpoolRecoveryTests: XCTestCase {
    private var directory = ""

    override func setUp() {
        directory = NSTemporaryDirectory() + "ferry-spool-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func record(_ id: String, sequence: UInt64, state: TaskState = .queued) -> TaskRecord {
        var record = TaskRecord(
            id: id, sequence: sequence, request: UploadRequest(container: "c1", path: "/tmp/\(id)"), bytes: 3,
            createdAt: 0)
        record.state = state
        return record
    }

    private func write(_ name: String, _ bytes: [UInt8] = [1, 2, 3]) {
        FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data(bytes))
    }

    private func names() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    func testCommittedUploadsComeBackInOrderAndUncommittedBytesGo() throws {
        let spool = try Spool(directory: directory)
        XCTAssertTrue(spool.recordsInAttributes, "the test machine's file system takes user attributes")
        for (sequence, id) in ["b", "a"].enumerated() {
            let file = try spool.create(id: id)
            try spool.commit(file, record: record(id, sequence: UInt64(sequence + 1)), durable: true)
        }
        write("partial.data")  // a body that was still arriving: no record

        let recovery = try Spool(directory: directory).recover()
        XCTAssertEqual(recovery.records.map(\.id), ["b", "a"], "acceptance order")
        XCTAssertEqual(recovery.partialsRemoved, 1)
        XCTAssertEqual(try names(), ["a.data", "b.data"])
    }

    func testAnUnfinishedTaskWhoseBytesAreNotTheSizeAcceptedIsADeadLetter() throws {
        let spool = try Spool(directory: directory)
        for (sequence, id) in ["whole", "cut"].enumerated() {
            let file = try spool.create(id: id)
            _ = Glibc.write(file.descriptor, [1, 2, 3], 3)
            try spool.commit(file, record: record(id, sequence: UInt64(sequence + 1)), durable: false)
        }
        XCTAssertEqual(truncate("\(directory)/cut.data", 1), 0)

        let recovery = try Spool(directory: directory).recover()
        XCTAssertEqual(recovery.damaged, ["cut"])
        let states = Dictionary(uniqueKeysWithValues: recovery.records.map { ($0.id, $0) })
        XCTAssertEqual(states["whole"]?.state, .queued)
        XCTAssertEqual(states["cut"]?.state, .failed, "never pushed: it is not the file that was accepted")
        XCTAssertTrue(states["cut"]?.lastError?.contains("1 bytes, the upload had 3") == true)
        XCTAssertEqual(
            try Spool(directory: directory).recover().records.first { $0.id == "cut" }?.state, .failed)
        XCTAssertTrue(try names().contains("cut.data"), "its bytes are kept for a person to look at")
    }

    func testDeliveredRecordWinsOverLeftoverBytes() throws {
        let spool = try Spool(directory: directory)
        let file = try spool.create(id: "d")
        try spool.commit(file, record: record("d", sequence: 1), durable: false)
        try spool.writeRecord(record("d", sequence: 1, state: .delivered), durable: false)

        let recovery = try spool.recover()
        XCTAssertEqual(recovery.records.map(\.state), [.delivered])
        XCTAssertEqual(try names(), ["d.json"], "the bytes of a delivered task are removed")
    }

    func testRecordFilesOfTheOlderLayoutAreStillRead() throws {
        let spool = try Spool(directory: directory)
        write("old.data")
        write("old.json", Array(try JSONEncoder().encode(record("old", sequence: 1))))
        write("older.part")
        write("gone.json", Array(try JSONEncoder().encode(record("gone", sequence: 2))))

        let recovery = try spool.recover()
        XCTAssertEqual(recovery.records.map(\.id), ["old"])
        XCTAssertEqual(recovery.partialsRemoved, 1, "the .part of a body that was arriving")
        XCTAssertEqual(recovery.lost, ["gone"], "an unfinished record without bytes")
        XCTAssertEqual(try names(), ["old.data", "old.json"])
    }

    func testStagedBatchLinksAreRemoved() throws {
        let spool = try Spool(directory: directory)
        let file = try spool.create(id: "s")
        try spool.commit(file, record: record("s", sequence: 1), durable: false)
        let task = UploadTask(
            id: "s", request: UploadRequest(container: "c1", path: "/tmp/final-name"),
            sourcePath: spool.dataPath(id: "s"), bytes: 3)
        let staged = try spool.stage([task])
        XCTAssertEqual(staged.sources.map { ($0 as NSString).lastPathComponent }, ["final-name"])

        let recovery = try spool.recover()
        XCTAssertEqual(recovery.temporariesRemoved, 1)
        XCTAssertEqual(try names(), ["s.data"], "the links go, the bytes stay")
        XCTAssertGreaterThan(getxattr(spool.dataPath(id: "s"), "user.ferry.record", nil, 0), 0)
    }
}
