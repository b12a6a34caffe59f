import FerryCore
import XCTest

/// The inspector finds the daemon where the `incus` client would, so both ask the same one.
final class IncusSocketPathTests: XCTestCase {
    func testIncusSocketComesFirst() {
        let environment = ["INCUS_SOCKET": "/srv/incus.socket", "INCUS_DIR": "/srv/incus"]
        XCTAssertEqual(IncusFileInspector.defaultSocketPath(environment: environment), "/srv/incus.socket")
    }

    func testIncusDirectoryHoldsTheSocketOtherwise() {
        XCTAssertEqual(
            IncusFileInspector.defaultSocketPath(environment: ["INCUS_DIR": "/srv/incus"]),
            "/srv/incus/unix.socket")
        XCTAssertEqual(
            IncusFileInspector.defaultSocketPath(environment: [
                "INCUS_SOCKET": "", "INCUS_DIR": "/srv/incus/",
            ]),
            "/srv/incus/unix.socket", "an empty variable counts as unset, as in the client")
    }

    func testWithoutEitherTheSystemDaemonIsAsked() {
        XCTAssertTrue(
            ["/run/incus/unix.socket", "/var/lib/incus/unix.socket"].contains(
                IncusFileInspector.defaultSocketPath(environment: [:])))
    }
}
