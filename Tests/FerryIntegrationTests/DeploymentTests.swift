import FerryCore
import XCTest

/// What ships beside the binary: the API description and `make install`.
final class DeploymentTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func testOpenAPISpecIsValidAndTheLiveServerAnswersAsItSays() throws {
        let ferry = try FerryProcess(arguments: ["--readiness-interval", "200ms"])
        try waitUntil("ready") { try TaskAPI.request(ferry, "GET", "/readyz").status == 200 }
        let outcome = try ChildProcess.run(
            "python3",
            arguments: [
                Self.root.appendingPathComponent("scripts/check-openapi.py").path,
                "--spec", Self.root.appendingPathComponent("docs/openapi.yaml").path,
                "--base-url", "http://\(ferry.address)", "--container", "c1", "--file-path", "/tmp/",
            ], timeout: 120)
        let report = outcome.standardOutput + outcome.standardError
        XCTAssertEqual(outcome.exitStatus, 0, report)
        XCTAssertTrue(report.contains("is valid OpenAPI"), report)
        XCTAssertFalse(report.contains("\nskip"), "every route and header is checked here:\n\(report)")
        XCTAssertFalse(report.contains("FAIL"), report)
    }

    func testMakeInstallLaysOutTheFilesUnderDestdir() throws {
        let binary = try XCTUnwrap(ProcessInfo.processInfo.environment["FERRY_BIN"])
        let destination = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ferry-install-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: destination) }
        try Command.run(
            "make",
            [
                "-C", Self.root.path, "install", "DESTDIR=\(destination.path)", "PREFIX=/usr",
                "BINARY=\(binary)",
            ])

        let installed = { (path: String) in destination.appendingPathComponent(path).path }
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: installed("usr/bin/ferry")))
        let version = String(
            decoding: try Command.run(installed("usr/bin/ferry"), ["--version"]), as: UTF8.self)
        XCTAssertFalse(version.isEmpty)
        let unit = try String(
            contentsOfFile: installed("usr/lib/systemd/system/ferry.service"), encoding: .utf8)
        XCTAssertTrue(unit.contains("ExecStart=/usr/bin/ferry "), "the unit names the installed binary")
        for file in [
            "usr/share/ferry/openapi.yaml", "usr/share/ferry/ferry.default",
            "usr/share/ferry/nginx/ferry-proxy.conf", "usr/share/ferry/nginx/ferry-site.conf",
        ] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: installed(file)), file)
        }
    }
}
