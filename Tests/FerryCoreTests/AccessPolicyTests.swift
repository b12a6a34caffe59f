import FerryCore
import XCTest

final class AccessPolicyTests: XCTestCase {
    private let digestA = AccessPolicy.digest(ofToken: "token-a")

    private var policyText: String {
        """
        tokens:
          - name: deployer
            sha256: \(digestA)
            containers: ["web-*", "api"]
            paths: ["/srv/app", "/etc/app/"]
            max_upload: 1K
          - name: admin
            sha256: \(AccessPolicy.digest(ofToken: "token-b"))
            containers: ["*"]
            paths: ["/"]
            allow_setid: true
            allow_owner: true
        """
    }

    func testTokensAreFoundByTheirHashOnly() throws {
        let policy = try AccessPolicy.parse(policyText)
        XCTAssertEqual(policy.rule(forToken: "token-a")?.name, "deployer")
        XCTAssertEqual(policy.rule(forToken: "token-b")?.name, "admin")
        XCTAssertNil(policy.rule(forToken: "token-c"))
        XCTAssertNil(policy.rule(forToken: ""))
        XCTAssertNil(policy.rule(forToken: digestA), "the hash is not a token")
        XCTAssertEqual(
            AccessPolicy.digest(ofToken: "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testEachRuleRefusesWithItsName() throws {
        let rule = try XCTUnwrap(try AccessPolicy.parse(policyText).rule(forToken: "token-a"))
        let table: [(UploadRequest, UInt64?, String?)] = [
            (UploadRequest(container: "web-1", path: "/srv/app/x"), 10, nil),
            (UploadRequest(container: "api", path: "/srv/app"), 10, nil),
            (UploadRequest(container: "web-1", path: "/etc/app/sub/x"), nil, nil),
            (UploadRequest(container: "db", path: "/srv/app/x"), 10, "containers"),
            (UploadRequest(container: "web", path: "/srv/app/x"), 10, "containers"),
            (UploadRequest(container: "web-1", path: "/srv/application/x"), 10, "paths"),
            (UploadRequest(container: "web-1", path: "/srv/x"), 10, "paths"),
            (UploadRequest(container: "web-1", path: "/etc/passwd"), 10, "paths"),
            (UploadRequest(container: "web-1", path: "/srv/app/x"), 1025, "max_upload"),
            (UploadRequest(container: "web-1", path: "/srv/app/x", mode: 0o4755), 10, "allow_setid"),
            (UploadRequest(container: "web-1", path: "/srv/app/x", mode: 0o2755), 10, "allow_setid"),
            (UploadRequest(container: "web-1", path: "/srv/app/x", mode: 0o1777), 10, nil),
            (UploadRequest(container: "web-1", path: "/srv/app/x", uid: 1000), 10, "allow_owner"),
            (UploadRequest(container: "web-1", path: "/srv/app/x", gid: 5), 10, "allow_owner"),
        ]
        for (request, size, refusedBy) in table {
            XCTAssertEqual(rule.refusal(of: request, size: size)?.rule, refusedBy, "\(request)")
        }
        let admin = try XCTUnwrap(try AccessPolicy.parse(policyText).rule(forToken: "token-b"))
        XCTAssertNil(
            admin.refusal(of: UploadRequest(container: "x", path: "/root/y", mode: 0o4755, uid: 1), size: nil)
        )
    }

    func testBrokenPoliciesAreRefusedWithAReason() {
        let entry = { (fields: String) in "tokens:\n  - name: a\n" + fields }
        let valid = "    sha256: \(digestA)\n    containers: [c1]\n    paths: [/srv]\n"
        let table: [(String, String)] = [
            ("tokens: [", "not a valid policy"),
            ("nothing: 1", "missing 'tokens'"),
            (entry("    containers: [c1]\n    paths: [/srv]\n"), "missing 'sha256'"),
            (entry("    sha256: abc\n    containers: [c1]\n    paths: [/srv]\n"), "64 hex digits"),
            (entry("    sha256: \(digestA)\n    containers: []\n    paths: [/srv]\n"), "containers is empty"),
            (entry("    sha256: \(digestA)\n    containers: [c1]\n    paths: []\n"), "paths is empty"),
            (
                entry("    sha256: \(digestA)\n    containers: ['a:b']\n    paths: [/srv]\n"),
                "container pattern"
            ),
            (entry("    sha256: \(digestA)\n    containers: [c1]\n    paths: [srv]\n"), "must be absolute"),
            (entry("    sha256: \(digestA)\n    containers: [c1]\n    paths: [/srv/../etc]\n"), "'..'"),
            (entry(valid + "    max_upload: lots\n"), "max_upload"),
            (entry(valid) + "  - name: a\n" + valid, "unique"),
            (entry(valid) + "  - name: b\n" + valid, "the same token twice"),
        ]
        for (text, fragment) in table {
            XCTAssertThrowsError(try AccessPolicy.parse(text)) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error) should mention \(fragment)")
            }
        }
    }
}
