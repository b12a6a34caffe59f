import FerryCore
import XCTest

/// The verdict on a destination from the kinds of its components, symlinks not followed.
final class DestinationCheckTests: XCTestCase {
    func testComponentsRunFromTheTop() {
        XCTAssertEqual(
            DestinationCheck.components(of: "/srv/app/a.txt"), ["/srv", "/srv/app", "/srv/app/a.txt"])
        XCTAssertEqual(DestinationCheck.components(of: "/"), [])
    }

    func testASymlinkAnywhereIsNamedAndTheFirstOneWins() {
        let kinds: [String: DestinationKind] = [
            "/srv": .directory, "/srv/app": .directory, "/srv/app/ln": .other("symlink"),
            "/srv/app/ln/x": .other("symlink"), "/srv/app/report.txt": .other("symlink"),
        ]
        XCTAssertEqual(
            DestinationCheck.verdict(for: "/srv/app/ln/x", kinds: kinds), .symlink(component: "/srv/app/ln"))
        XCTAssertEqual(
            DestinationCheck.verdict(for: "/srv/app/report.txt", kinds: kinds),
            .symlink(component: "/srv/app/report.txt"))
    }

    func testOrdinaryAndMissingDestinationsAreWritable() {
        let kinds: [String: DestinationKind] = [
            "/srv": .directory, "/srv/app": .directory, "/srv/app/a.txt": .regularFile, "/srv/new": .missing,
            "/srv/new/deeper": .missing, "/srv/file": .regularFile, "/srv/file/x": .notADirectoryOnTheWay,
        ]
        XCTAssertEqual(DestinationCheck.verdict(for: "/srv/app/a.txt", kinds: kinds), .writable)
        XCTAssertEqual(DestinationCheck.verdict(for: "/srv/app/b.txt", kinds: kinds), .writable, "not asked")
        XCTAssertEqual(DestinationCheck.verdict(for: "/srv/new/deeper/c", kinds: kinds), .writable)
        XCTAssertEqual(
            DestinationCheck.verdict(for: "/srv/file/x", kinds: kinds), .writable, "the push fails it")
    }

    func testAFinalNameThatIsNoFileIsUnusable() {
        let kinds: [String: DestinationKind] = ["/srv": .directory, "/srv/fifo": .other("FIFO")]
        XCTAssertEqual(DestinationCheck.verdict(for: "/srv/fifo", kinds: kinds), .unusable(kind: "FIFO"))
    }
}
