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
            ("nothing: 1", "unknown key 'nothing' (known: tokens)"),
            ("{}", "missing 'tokens'"),
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

/// Round 2's rules: unknown keys, quotas, and paths compared as bytes.
final class AccessPolicyStrictnessTests: XCTestCase {
    private func policy(_ extra: String) -> String {
        """
        tokens:
          - name: alice
            sha256: \(AccessPolicy.digest(ofToken: "a"))
            containers: [c1]
            paths: ["/srv/café", "/srv/K8s"]
        \(extra)
        """
    }

    func testAMisspelledKeyIsRefusedByName() {
        XCTAssertThrowsError(try AccessPolicy.parse(policy("    max-upload: 1K"))) { error in
            XCTAssertTrue("\(error)".contains("unknown key 'max-upload'"), "\(error)")
        }
        XCTAssertThrowsError(try AccessPolicy.parse(policy("token_ttl: 5"))) { error in
            XCTAssertTrue("\(error)".contains("unknown key 'token_ttl'"), "\(error)")
        }
    }

    func testDeletingNeedsOnlyTheTasksPlace() throws {
        let rule = try AccessPolicy.parse(policy("    max_upload: 1K")).rules[0]
        let request = UploadRequest(container: "c1", path: "/srv/K8s/big")
        XCTAssertEqual(rule.refusal(of: request, size: 1 << 20)?.rule, "max_upload", "a retry writes again")
        XCTAssertNil(rule.refusal(ofPlace: request), "a delete of the same task is the token's to make")
        XCTAssertEqual(
            rule.refusal(ofPlace: UploadRequest(container: "c2", path: "/srv/K8s/x"))?.rule, "containers")
    }

    func testQuotasAreRead() throws {
        let rule = try AccessPolicy.parse(policy("    max_queued: 3\n    max_spool_bytes: 2M")).rules[0]
        XCTAssertEqual(rule.quota, Capacity.Quota(maxTasks: 3, maxBytes: 2 << 20))
        XCTAssertThrowsError(try AccessPolicy.parse(policy("    max_queued: 0")))
        XCTAssertThrowsError(try AccessPolicy.parse(policy("    max_spool_bytes: lots")))
    }

    func testPathRulesCompareBytesNotCanonicalEquivalence() throws {
        let rule = try AccessPolicy.parse(policy("")).rules[0]
        func refusal(_ path: String) -> String? {
            rule.refusal(of: UploadRequest(container: "c1", path: path), size: 1)?.rule
        }
        XCTAssertNil(refusal("/srv/caf\u{e9}/x"), "the rule's own bytes (NFC)")
        XCTAssertEqual(refusal("/srv/cafe\u{301}/x"), "paths", "NFD is another directory")
        XCTAssertNil(refusal("/srv/K8s/x"))
        XCTAssertEqual(refusal("/srv/\u{212a}8s/x"), "paths", "the Kelvin sign is not K")
        XCTAssertEqual(refusal("/srv/K8sx"), "paths")
        XCTAssertNil(refusal("/srv/K8s"))
    }
}
