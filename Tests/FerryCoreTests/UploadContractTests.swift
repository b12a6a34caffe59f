import FerryCore
import XCTest

final class UploadContractTests: XCTestCase {
    private func validate(_ headers: [(String, String)]) -> Result<UploadRequest, ContractViolation> {
        Result { () throws(ContractViolation) in
            try UploadContract.validate { name in
                headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
            }
        }
    }

    func testARemoteIsNamedOnlyWhenAllowedAndThenStillByIncusRules() throws {
        func validate(_ container: String) -> Result<UploadRequest, ContractViolation> {
            Result { () throws(ContractViolation) in
                try UploadContract.validate(
                    { name in name == "X-Container-Name" ? [container] : name == "X-File-Path" ? ["/x"] : []
                    },
                    remotes: ["r2", "edge.eu-1"])
            }
        }
        let request = try validate("r2:c3").get()
        XCTAssertEqual(request.container, "r2:c3", "the name as given, which incus file push takes")
        XCTAssertEqual(request.remote, "r2")
        XCTAssertEqual(request.instance, "c3")
        XCTAssertEqual(try validate("edge.eu-1:web").get().remote, "edge.eu-1")
        XCTAssertNil(try validate("c3").get().remote)
        let refusals: [(String, String)] = [
            ("r3:c3", "remote 'r3' is not one this server pushes to (--remote: edge.eu-1, r2)"),
            ("local:c1", "'local' is this host's daemon: name the instance alone"),
            (":c1", "a remote name must be 1-63 characters"),
            ("-x:c1", "a remote name must start with a letter or a digit"),
            ("r2:", "must be 1-63 characters"),
            ("r2:c3:c4", "only letters, digits and '-' are allowed"),
            ("r2:-c3", "must not start or end with '-'"),
            ("r/2:c3", "a remote name may hold only letters, digits, '-', '_' and '.'"),
        ]
        for (container, problem) in refusals {
            XCTAssertEqual(validate(container).failure, .invalidContainerName(problem), container)
        }
    }

    func testValidHeadersMakeARequestWithDefaults() throws {
        let request = try validate([("x-container-name", "web-1"), ("X-File-Path", "/etc/app.conf")]).get()
        XCTAssertEqual(
            request, UploadRequest(container: "web-1", path: "/etc/app.conf", mode: 0o644, uid: 0, gid: 0))
    }

    func testOptionalHeadersAreParsed() throws {
        let request = try validate([
            ("X-Container-Name", "c1"), ("X-File-Path", "/srv/"), ("X-Host-Path", "C:\\Users\\ana\\a.txt"),
            ("X-File-Mode", "4755"), ("X-File-Uid", "1000"), ("X-File-Gid", "4294967294"),
            ("X-Create-Dirs", "TRUE"),
        ]).get()
        XCTAssertEqual(request.path, "/srv/a.txt")
        XCTAssertEqual(request.mode, 0o4755)
        XCTAssertEqual(request.octalMode, "4755")
        XCTAssertEqual(request.uid, 1000)
        XCTAssertEqual(request.gid, 4_294_967_294)
        XCTAssertTrue(request.createDirectories)
    }

    func testEachRuleHasItsViolation() {
        let base = [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/x")]
        let table: [([(String, String)], ContractViolation)] = [
            ([("X-File-Path", "/x")], .missingHeader("X-Container-Name")),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/tmp/" + String(repeating: "n", count: 256))],
                .invalidPath("has a segment longer than 255 bytes")
            ),
            (
                [
                    ("X-Container-Name", "c1"),
                    ("X-File-Path", "/" + String(repeating: "\u{e9}", count: 128) + "/x"),
                ],
                .invalidPath("has a segment longer than 255 bytes")
            ),
            ([("X-Container-Name", "c1")], .missingHeader("X-File-Path")),
            (base + [("X-Container-Name", "c2")], .duplicateHeader("X-Container-Name")),
            (base + [("X-File-Mode", "644"), ("X-File-Mode", "600")], .duplicateHeader("X-File-Mode")),
            (
                [("X-Container-Name", ""), ("X-File-Path", "/x")],
                .invalidContainerName("must be 1-63 characters")
            ),
            (
                [("X-Container-Name", String(repeating: "a", count: 64)), ("X-File-Path", "/x")],
                .invalidContainerName("must be 1-63 characters")
            ),
            (
                [("X-Container-Name", "-rf"), ("X-File-Path", "/x")],
                .invalidContainerName("must not start or end with '-'")
            ),
            (
                [("X-Container-Name", "c1-"), ("X-File-Path", "/x")],
                .invalidContainerName("must not start or end with '-'")
            ),
            (
                [("X-Container-Name", "007"), ("X-File-Path", "/x")],
                .invalidContainerName("must not be all digits")
            ),
            (
                [("X-Container-Name", "a:b"), ("X-File-Path", "/x")],
                .invalidContainerName(
                    "a remote ('a:') needs --remote a; this server pushes to its own daemon only")
            ),
            (
                [("X-Container-Name", "c_1"), ("X-File-Path", "/x")],
                .invalidContainerName("only letters, digits and '-' are allowed")
            ),
            (
                [("X-Container-Name", "c\u{e9}"), ("X-File-Path", "/x")],
                .invalidContainerName("only letters, digits and '-' are allowed")
            ),
            ([("X-Container-Name", "c1"), ("X-File-Path", "")], .invalidPath("empty")),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "etc/x")],
                .invalidPath("must be absolute (start with /)")
            ),
            ([("X-Container-Name", "c1"), ("X-File-Path", "/")], .missingFileName("X-Host-Path is missing")),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "//")],
                .invalidPath("contains an empty segment (//)")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "//"), ("X-Host-Path", "a")],
                .invalidPath("contains an empty segment (//)")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/a//")],
                .invalidPath("contains an empty segment (//)")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/a/../b")],
                .invalidPath("contains a '.' or '..' segment")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/a/./b")],
                .invalidPath("contains a '.' or '..' segment")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/a/..")],
                .invalidPath("contains a '.' or '..' segment")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/a//b")],
                .invalidPath("contains an empty segment (//)")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/a\u{0}b")],
                .invalidPath("contains control characters")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/a\nb")],
                .invalidPath("contains control characters")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/" + String(repeating: "a", count: 4096))],
                .invalidPath("longer than 4096 bytes")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/d/")],
                .missingFileName("X-Host-Path is missing")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/d/"), ("X-Host-Path", "/")],
                .missingFileName("X-Host-Path has no usable file name")
            ),
            (
                [("X-Container-Name", "c1"), ("X-File-Path", "/d/"), ("X-Host-Path", "a/..")],
                .missingFileName("X-Host-Path has no usable file name")
            ),
            (base + [("X-File-Mode", "0999")], .invalidMode("0999")),
            (base + [("X-File-Mode", "17777")], .invalidMode("17777")),
            (base + [("X-File-Mode", "rw")], .invalidMode("rw")),
            (base + [("X-File-Mode", "")], .invalidMode("")),
            (base + [("X-File-Uid", "-1")], .invalidOwner(header: "X-File-Uid", value: "-1")),
            (base + [("X-File-Uid", "+5")], .invalidOwner(header: "X-File-Uid", value: "+5")),
            (base + [("X-File-Gid", "4294967295")], .invalidOwner(header: "X-File-Gid", value: "4294967295")),
            (
                base + [("X-File-Gid", "99999999999")],
                .invalidOwner(header: "X-File-Gid", value: "99999999999")
            ),
            (base + [("X-Create-Dirs", "1")], .invalidFlag(header: "X-Create-Dirs", value: "1")),
        ]
        for (headers, expected) in table {
            XCTAssertEqual(
                validate(headers).failure, expected, "\(headers.map { "\($0.0): \($0.1.prefix(20))" })")
        }
    }

    func testDirectoryDestinationTakesTheHostBaseName() throws {
        let table: [(String, String?, String)] = [
            ("/tmp/", "/home/ana/notes.txt", "/tmp/notes.txt"),
            ("/tmp/", "notes.txt", "/tmp/notes.txt"),
            ("/tmp/", "C:\\docs\\notes.txt", "/tmp/notes.txt"),
            ("/tmp/", "/home/ana/dir/", "/tmp/dir"),
            ("/tmp/file", "/home/ana/other.txt", "/tmp/file"),
            ("/tmp/file", nil, "/tmp/file"),
            ("/", "/home/ana/notes.txt", "/notes.txt"),
        ]
        for (filePath, hostPath, expected) in table {
            XCTAssertEqual(try DestinationPath.resolve(filePath: filePath, hostPath: hostPath), expected)
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
