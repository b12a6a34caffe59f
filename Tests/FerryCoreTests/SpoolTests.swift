import FerryCore
import Foundation
import XCTest

/// Data files on a real directory: removed bytes leave an empty spare that the next
/// upload takes over, never more spares than the bound, and never a file replaced.
final class SpoolTests: XCTestCase {
    private var directory = ""

    override func setUp() {
        directory = NSTemporaryDirectory() + "ferry-spool-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func names(_ suffix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(suffix) }
    }

    private func inode(_ path: String) throws -> UInt64 {
        try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64)
    }

    func testABodyHasNoNameUntilItIsCommitted() throws {
        let spool = try Spool(directory: directory)
        XCTAssertEqual(try names(""), [], "the start-up probe of unnamed files leaves nothing")
        let file = try spool.create(id: "body")
        let body: [UInt8] = [1, 2, 3]
        XCTAssertEqual(Glibc.write(file.descriptor, body, body.count), 3)
        XCTAssertEqual(try names(""), [], "a body being written has no name")
        try spool.finish(file, durable: true)
        XCTAssertEqual(try names(""), ["body.data"])
        XCTAssertEqual(FileManager.default.contents(atPath: spool.dataPath(id: "body")), Data(body))

        let abandoned = try spool.create(id: "gone")
        XCTAssertEqual(Glibc.write(abandoned.descriptor, [4], 1), 1)
        abandoned.discard()
        XCTAssertEqual(try names(""), ["body.data"], "a discarded body leaves nothing")
    }

    func testRemovedBytesLeaveAnEmptySpareThatTheNextUploadTakesOver() throws {
        let spool = try Spool(directory: directory)
        let first = try spool.create(id: "first")
        XCTAssertEqual(Glibc.write(first.descriptor, [1, 2, 3], 3), 3)
        try spool.finish(first, durable: false)
        let firstInode = try inode(spool.dataPath(id: "first"))
        try spool.removeData(id: "first")

        let spares = try names(".spare")
        XCTAssertEqual(spares.count, 1)
        XCTAssertEqual(try names(".data"), [])
        let spareSize = try FileManager.default.attributesOfItem(atPath: "\(directory)/\(spares[0])")[.size]
        XCTAssertEqual(spareSize as? Int, 0, "the delivered bytes do not linger")

        let second = try spool.create(id: "second")
        XCTAssertEqual(try names(".spare"), [], "taken over")
        XCTAssertEqual(try inode(spool.dataPath(id: "second")), firstInode, "no inode allocated")
        XCTAssertEqual(Glibc.write(second.descriptor, [9], 1), 1)
        try spool.finish(second, durable: true)
        XCTAssertEqual(FileManager.default.contents(atPath: spool.dataPath(id: "second")), Data([9]))
        let mode = try FileManager.default.attributesOfItem(atPath: spool.dataPath(id: "second"))[
            .posixPermissions]
        XCTAssertEqual(mode as? Int, 0o600)
    }

    func testSparesAreBoundedAndClearedAtStart() throws {
        let spool = try Spool(directory: directory)
        for number in 0..<(Spool.maxSpares + 8) {
            let file = try spool.create(id: "f\(number)")
            try spool.finish(file, durable: false)
        }
        for number in 0..<(Spool.maxSpares + 8) { try spool.removeData(id: "f\(number)") }
        XCTAssertEqual(try names(".spare").count, Spool.maxSpares)
        XCTAssertEqual(try names(".data"), [])

        let scan = try Spool(directory: directory).scan()
        XCTAssertEqual(scan.temporariesRemoved, Spool.maxSpares, "a new process starts without spares")
        XCTAssertEqual(try names(".spare"), [])
    }

    func testASpareNeverReplacesAnExistingFile() throws {
        let spool = try Spool(directory: directory)
        let file = try spool.create(id: "a")
        try spool.finish(file, durable: false)
        try spool.removeData(id: "a")
        // Someone made the name the spare would become: the spare is not used for it.
        FileManager.default.createFile(atPath: spool.dataPath(id: "b"), contents: Data([7]))
        XCTAssertThrowsError(
            try spool.finish(spool.create(id: "b"), durable: false), "a name is never taken from another file"
        )
        XCTAssertEqual(FileManager.default.contents(atPath: spool.dataPath(id: "b")), Data([7]))
    }
}
