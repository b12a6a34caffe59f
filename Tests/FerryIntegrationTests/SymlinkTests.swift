import XCTest

/// A symlink inside the container, in a parent or as the final name, never redirects a
/// delivery into a real Incus: the upload fails with the component named, the target is
/// untouched, and the dead letter keeps its bytes. `--follow-symlinks` writes through.
final class SymlinkTests: XCTestCase {
    private var root = ""
    private var victim = ""

    /// `ROOT/ln -> /etc` and `ROOT/report.txt -> /etc/VICTIM` (a file holding "original").
    override func setUpWithError() throws {
        let tag = UInt32.random(in: 0...UInt32.max)
        root = "/srv/symlinks-\(tag)"
        victim = "/etc/ferry-victim-\(tag)"
        try shell(
            "mkdir -p \(root) && ln -s /etc \(root)/ln && printf original > \(victim) && ln -s \(victim) \(root)/report.txt"
        )
    }

    override func tearDownWithError() throws {
        try shell("rm -rf \(root) \(victim) /etc/evil-from-push-*")
    }

    @discardableResult
    private func shell(_ script: String) throws -> String {
        String(decoding: try Incus.run(["exec", "c1", "--", "sh", "-c", script]), as: UTF8.self)
    }

    private func exists(_ path: String) throws -> Bool {
        try shell("[ -e \(path) ] && echo yes || echo no").hasPrefix("yes")
    }

    private func upload(_ ferry: FerryProcess, _ path: String, _ body: [UInt8]) throws -> String {
        let response = try Uploads.post(
            to: ferry, [("X-Container-Name", "c1"), ("X-File-Path", path)], body: body)
        XCTAssertEqual(response.status, 202, String(decoding: response.body, as: UTF8.self))
        return Uploads.taskID(response)
    }

    private func assertRefused(
        _ ferry: FerryProcess, _ id: String, component: String, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("delivery failed"), file: file, line: line)
        let task = try TaskAPI.get(ferry, id)
        XCTAssertEqual(task["state"] as? String, "failed", file: file, line: line)
        XCTAssertEqual(task["attempts"] as? Int, 1, "permanent: not retried", file: file, line: line)
        let reason = task["last_error"] as? String ?? ""
        XCTAssertTrue(
            reason.hasPrefix("symlink_in_destination: \(component) is a symlink"), reason, file: file,
            line: line)
        XCTAssertTrue(
            try ferry.spoolContents().contains("\(id).data"), "the dead letter keeps its bytes", file: file,
            line: line)
    }

    func testASymlinkedParentOrNameFailsTheUploadAndWritesNothing() throws {
        let ferry = try FerryProcess()
        let tag = UInt32.random(in: 0...UInt32.max)
        let throughParent = try upload(ferry, "\(root)/ln/evil-from-push-\(tag)", Array("evil".utf8))
        let throughName = try upload(ferry, "\(root)/report.txt", Array("evil".utf8))

        try assertRefused(ferry, throughParent, component: "\(root)/ln")
        try assertRefused(ferry, throughName, component: "\(root)/report.txt")
        XCTAssertFalse(try exists("/etc/evil-from-push-\(tag)"), "/etc gained no file")
        XCTAssertEqual(try shell("cat \(victim)"), "original", "the symlink's target is unchanged")
        XCTAssertEqual(try shell("readlink \(root)/report.txt"), "\(victim)\n", "the symlink is as it was")
    }

    func testInABatchOnlyTheSymlinkedFilesFail() throws {
        let gate = Gate()
        let ferry = try FerryProcess(
            arguments: ["--incus", Gate.incus, "--workers", "1"], environment: gate.environment)
        let first = try upload(ferry, "\(root)/first-alone", Array("first".utf8))
        try waitUntil("the first push is held") { try TaskAPI.state(ferry, first) == "pushing" }
        var ordinary: [String: [UInt8]] = [:]
        var ids: [String: String] = [:]
        for index in 0..<5 {
            let path = "\(root)/ordinary-\(index)"
            ordinary[path] = randomBytes(100 + index)
            ids[path] = try upload(ferry, path, ordinary[path]!)
        }
        let symlinked = try upload(ferry, "\(root)/report.txt", Array("evil".utf8))
        gate.open()

        try assertRefused(ferry, symlinked, component: "\(root)/report.txt")
        for (path, id) in ids {
            XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("outcome=delivered"), path)
            XCTAssertEqual(try Incus.sha256(container: "c1", path: path), try Command.sha256(ordinary[path]!))
        }
        XCTAssertEqual(try shell("cat \(victim)"), "original")
    }

    func testFollowSymlinksWritesThroughThemAsTheOperatorAsked() throws {
        let ferry = try FerryProcess(arguments: ["--follow-symlinks"])
        let id = try upload(ferry, "\(root)/report.txt", Array("replaced".utf8))
        XCTAssertTrue(try ferry.waitForSettlement(of: id).contains("outcome=delivered"))
        XCTAssertEqual(try shell("cat \(victim)"), "replaced", "written through the symlink")
    }
}
