import Foundation
import XCTest

/// `--cors-origin`: pages of the origins named may call the API; no other origin may.
final class CrossOriginTests: XCTestCase {
    private func preflight(_ ferry: FerryProcess, _ path: String, origin: String, method: String) throws
        -> RawResponse
    {
        try Tus.request(
            ferry, "OPTIONS", path,
            [
                ("Origin", origin), ("Access-Control-Request-Method", method),
                (
                    "Access-Control-Request-Headers",
                    "authorization, upload-offset, tus-resumable, content-type"
                ),
            ])
    }

    func testAnAllowedOriginIsLetInAndOthersAreNot() throws {
        let ferry = try FerryProcess(arguments: ["--cors-origin", "https://console.example"])
        for (path, method) in [
            ("/upload", "POST"), ("/files/", "POST"), ("/files/abc", "PATCH"), ("/tasks", "GET"),
        ] {
            let allowed = try preflight(ferry, path, origin: "https://console.example", method: method)
            XCTAssertEqual(allowed.status, 204, path)
            XCTAssertEqual(allowed.header("Access-Control-Allow-Origin"), "https://console.example", path)
            XCTAssertTrue(allowed.header("Access-Control-Allow-Methods")?.contains(method) == true, path)
            let headers = allowed.header("Access-Control-Allow-Headers")?.lowercased() ?? ""
            for name in [
                "authorization", "upload-offset", "tus-resumable", "x-container-name", "repr-digest",
            ] {
                XCTAssertTrue(headers.contains(name), "\(path): \(name)")
            }
            let refused = try preflight(ferry, path, origin: "https://evil.example", method: method)
            XCTAssertEqual(refused.status, 403, path)
            XCTAssertNil(refused.header("Access-Control-Allow-Origin"), path)
        }
        // An answer to the allowed origin lets its page read what tus needs.
        let created = try Tus.create(
            ferry, length: 3, path: "/tmp/cors", headers: [("Origin", "https://console.example")])
        XCTAssertEqual(created.status, 201)
        XCTAssertEqual(created.header("Access-Control-Allow-Origin"), "https://console.example")
        let exposed = created.header("Access-Control-Expose-Headers") ?? ""
        for name in [
            "Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Tus-Resumable", "Repr-Digest",
            "X-Request-Id",
        ] {
            XCTAssertTrue(exposed.contains(name), name)
        }
        let other = try Tus.create(
            ferry, length: 3, path: "/tmp/cors", headers: [("Origin", "https://evil.example")])
        XCTAssertNil(other.header("Access-Control-Allow-Origin"))
    }

    func testWithoutCorsOriginNoPageIsLetIn() throws {
        let ferry = try FerryProcess()
        let refused = try preflight(ferry, "/upload", origin: "https://console.example", method: "POST")
        XCTAssertEqual(refused.status, 403)
        XCTAssertNil(refused.header("Access-Control-Allow-Origin"))
    }
}
