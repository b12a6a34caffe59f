import FerryCore
import Foundation
import XCTest

/// With `--tokens`, nobody writes anywhere without a token that allows it.
final class AuthorizationTests: XCTestCase {
    private let tokenA = "a-\(UUID().uuidString)"
    private let tokenB = "b-\(UUID().uuidString)"

    private func policy(extra: String = "") -> String {
        """
        tokens:
          - name: alpha
            sha256: \(AccessPolicy.digest(ofToken: tokenA))
            containers: [c1]
            paths: [/srv/alpha]
            max_upload: 1K
          - name: beta
            sha256: \(AccessPolicy.digest(ofToken: tokenB))
            containers: ["c*"]
            paths: [/]
            allow_owner: true
        \(extra)
        """
    }

    private func writePolicy(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "ferry-tokens-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func upload(
        _ ferry: FerryProcess, token: String?, _ headers: [(String, String)], body: [UInt8] = [1, 2, 3]
    ) throws -> RawResponse {
        try Uploads.post(
            to: ferry, headers + (token.map { [("Authorization", "Bearer \($0)")] } ?? []), body: body)
    }

    func testTokensAreCheckedBeforeTheBodyAndRulesAreNamed() throws {
        let file = try writePolicy(policy())
        let ferry = try FerryProcess(arguments: ["--tokens", file])
        let allowed = [
            ("X-Container-Name", "c1"), ("X-File-Path", "/srv/alpha/report"), ("X-Create-Dirs", "true"),
        ]

        XCTAssertFalse(
            try String(contentsOfFile: file, encoding: .utf8).contains(tokenA), "only hashes are stored")

        let anonymous = try upload(ferry, token: nil, allowed)
        XCTAssertEqual(anonymous.status, 401)
        XCTAssertEqual(anonymous.header("WWW-Authenticate"), "Bearer realm=\"ferry\"")
        XCTAssertEqual(try upload(ferry, token: "not-a-token", allowed).status, 401)
        XCTAssertEqual(try upload(ferry, token: AccessPolicy.digest(ofToken: tokenA), allowed).status, 401)

        let refusals: [([(String, String)], [UInt8], String)] = [
            ([("X-Container-Name", "c2"), ("X-File-Path", "/srv/alpha/report")], [1], "containers"),
            ([("X-Container-Name", "c1"), ("X-File-Path", "/etc/passwd")], [1], "paths"),
            ([("X-Container-Name", "c1"), ("X-File-Path", "/srv/alphabet")], [1], "paths"),
            (allowed, randomBytes(1025), "max_upload"),
            (allowed + [("X-File-Mode", "4755")], [1], "allow_setid"),
            (allowed + [("X-File-Uid", "1000")], [1], "allow_owner"),
        ]
        for (headers, body, rule) in refusals {
            let response = try upload(ferry, token: tokenA, headers, body: body)
            XCTAssertEqual(response.status, 403, rule)
            XCTAssertTrue(
                (response.json["detail"] as? String ?? "").contains("rule: \(rule)"), "\(response.json)")
        }
        let traversal = try upload(
            ferry, token: tokenA, [("X-Container-Name", "c1"), ("X-File-Path", "/srv/alpha/../../etc/x")])
        XCTAssertEqual(traversal.status, 400, "'..' never reaches the prefix check")
        XCTAssertEqual(try ferry.spoolContents(), [], "nothing refused left a file")

        let accepted = try upload(ferry, token: tokenA, allowed)
        XCTAssertEqual(accepted.status, 202)
        XCTAssertTrue(try ferry.waitForSettlement(of: Uploads.taskID(accepted)).contains("outcome=delivered"))
        XCTAssertEqual(
            try upload(
                ferry, token: tokenB,
                [("X-Container-Name", "c2"), ("X-File-Path", "/tmp/beta"), ("X-File-Uid", "7")]
            )
            .status, 202)
    }

    func testChunkedBodyOverTheTokenLimitIsRefusedWhileStreaming() throws {
        let ferry = try FerryProcess(arguments: ["--tokens", try writePolicy(policy())])
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead(
            "POST", "/upload",
            [
                ("X-Container-Name", "c1"), ("X-File-Path", "/srv/alpha/big"),
                ("Authorization", "Bearer \(tokenA)"),
                ("Transfer-Encoding", "chunked"),
            ])
        try client.sendChunk(randomBytes(800))
        try client.sendChunk(randomBytes(800))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 403)
        XCTAssertTrue((response.json["detail"] as? String ?? "").contains("max_upload"))
        try ferry.waitForLog(containing: "upload refused")
        XCTAssertEqual(try ferry.spoolContents(), [])
    }

    func testATokenSeesAndTouchesOnlyItsOwnTasks() throws {
        let ferry = try FerryProcess(arguments: ["--tokens", try writePolicy(policy())])
        let mine = Uploads.taskID(
            try upload(
                ferry, token: tokenA, [("X-Container-Name", "c1"), ("X-File-Path", "/srv/alpha/mine")]))
        let theirs = Uploads.taskID(
            try upload(ferry, token: tokenB, [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/theirs")]))

        func call(_ method: String, _ target: String, _ token: String?) throws -> RawResponse {
            let client = try RawHTTPClient(port: ferry.port)
            try client.sendHead(method, target, token.map { [("Authorization", "Bearer \($0)")] } ?? [])
            return try client.readResponse()
        }
        XCTAssertEqual(try call("GET", "/tasks/\(mine)", nil).status, 401)
        XCTAssertEqual(try call("GET", "/tasks/\(mine)", tokenA).status, 200)
        XCTAssertEqual(try call("GET", "/tasks/\(theirs)", tokenA).status, 404)
        XCTAssertEqual(try call("DELETE", "/tasks/\(theirs)", tokenA).status, 404)
        XCTAssertEqual(try call("POST", "/tasks/\(theirs)/retry", tokenA).status, 404)
        let listed = try call("GET", "/tasks", tokenA).json["tasks"] as? [[String: Any]] ?? []
        XCTAssertEqual(listed.map { $0["id"] as? String }, [mine])
        XCTAssertEqual(try call("GET", "/healthz", nil).status, 200, "health needs no token")
    }

    func testSIGHUPReloadsThePolicyAndABrokenFileKeepsTheOldOne() throws {
        let file = try writePolicy(policy())
        let ferry = try FerryProcess(arguments: ["--tokens", file])
        let tokenC = "c-\(UUID().uuidString)"
        let headers = [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/reloaded")]
        XCTAssertEqual(try upload(ferry, token: tokenC, headers).status, 401)

        try policy(
            extra: """
                  - name: gamma
                    sha256: \(AccessPolicy.digest(ofToken: tokenC))
                    containers: [c1]
                    paths: [/tmp]
                """
        ).write(toFile: file, atomically: true, encoding: .utf8)
        kill(ferry.process.processIdentifier, SIGHUP)
        try ferry.waitForLog(containing: "token policy reloaded", "tokens=3")
        XCTAssertEqual(try upload(ferry, token: tokenC, headers).status, 202)

        try "tokens: [ {name: broken".write(toFile: file, atomically: true, encoding: .utf8)
        kill(ferry.process.processIdentifier, SIGHUP)
        try ferry.waitForLog(containing: "token policy not reloaded")
        XCTAssertEqual(try upload(ferry, token: tokenC, headers).status, 202, "the previous policy stays")
    }

    func testWithoutTokensFerryRefusesToListenBeyondLoopback() throws {
        XCTAssertThrowsError(try FerryProcess(arguments: ["--listen", "0.0.0.0:0"])) { error in
            XCTAssertTrue("\(error)".contains("--insecure-open-access"), "\(error)")
        }
        let open = try FerryProcess(arguments: ["--listen", "0.0.0.0:0", "--insecure-open-access"])
        XCTAssertTrue(open.address.hasPrefix("0.0.0.0:"))
    }
}
