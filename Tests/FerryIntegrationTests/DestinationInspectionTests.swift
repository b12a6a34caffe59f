import FerryCore
import Foundation
import Glibc
import XCTest

/// ``IncusFileInspector`` against the real private daemon: it tells what each destination
/// is without opening it, and says so when the daemon cannot be asked.
final class DestinationInspectionTests: XCTestCase {
    private var base = ""
    private var inspector: IncusFileInspector!

    override func setUpWithError() throws {
        base = "/tmp/ferry-inspect-\(UUID().uuidString)"
        inspector = IncusFileInspector(socketPath: try Incus.directory + "/unix.socket")
        // One exec for the whole fixture: each one costs a container round trip.
        try Incus.run([
            "exec", "c1", "--", "sh", "-c",
            """
            set -e; mkdir -p \(base)/dir; cd \(base); echo bytes > file; mkfifo fifo
            ln -s fifo link-to-fifo; ln -s file link-to-file; ln -s nowhere dangling-link; ln -s loop loop
            """,
        ])
    }

    override func tearDownWithError() throws {
        try Incus.remove(container: "c1", path: base)
    }

    func testMissingRegularFileAndDirectoryAreToldApart() throws {
        let kinds = try inspector.inspect(
            instance: "c1", paths: ["\(base)/absent", "\(base)/file", "\(base)/dir", "\(base)/absent/deeper"])
        XCTAssertEqual(kinds, [.missing, .regularFile, .directory, .missing])
    }

    func testFIFOIsNamedWithoutBeingOpened() throws {
        let start = Monotonic.seconds()
        XCTAssertEqual(try inspector.inspect(instance: "c1", paths: ["\(base)/fifo"]), [.other("FIFO")])
        XCTAssertLessThan(Monotonic.seconds() - start, 2, "a STAT never waits for a FIFO's writer")
    }

    func testSymlinksAreFollowedAsAPushWouldFollowThem() throws {
        let paths = ["\(base)/link-to-fifo", "\(base)/link-to-file", "\(base)/dangling-link"]
        XCTAssertEqual(
            try inspector.inspect(instance: "c1", paths: paths), [.other("FIFO"), .regularFile, .missing])
        XCTAssertEqual(
            try inspector.inspect(instance: "c1", paths: paths, followingSymlinks: false),
            [.other("symlink"), .other("symlink"), .other("symlink")])
    }

    func testCharacterDeviceIsNamed() throws {
        XCTAssertEqual(
            try inspector.inspect(instance: "c1", paths: ["/dev/null"]), [.other("character device")])
    }

    func testPathUnderARegularFileIsNotADirectoryOnTheWay() throws {
        XCTAssertEqual(
            try inspector.inspect(instance: "c1", paths: ["\(base)/file/x", "\(base)/file/x/y"]),
            [.notADirectoryOnTheWay, .notADirectoryOnTheWay])
    }

    func testManyPathsAreAnsweredInTheirOrderOverOneConnection() throws {
        let names = ["file", "dir", "fifo", "absent"]
        let expected: [DestinationKind] = [.regularFile, .directory, .other("FIFO"), .missing]
        // More than the inspector keeps in flight at once.
        let indices = (0..<300).map { ($0 * 7) % names.count }
        let kinds = try inspector.inspect(instance: "c1", paths: indices.map { "\(base)/\(names[$0])" })
        XCTAssertEqual(kinds, indices.map { expected[$0] })
    }

    func testPathThatCannotBeStatedThrowsWithTheServersReason() throws {
        XCTAssertThrowsError(try inspector.inspect(instance: "c1", paths: ["\(base)/file", "\(base)/loop"])) {
            error in
            guard
                case .statFailed(let path, let code, let message) = error
                    as? IncusFileInspector.InspectionError
            else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "\(base)/loop")
            XCTAssertEqual(code, 4)
            XCTAssertTrue(message.contains("too many levels of symbolic links"), message)
        }
    }

    func testEachInstanceIsAskedAboutItsOwnFiles() throws {
        XCTAssertEqual(try inspector.inspect(instance: "c2", paths: ["\(base)/file"]), [.missing])
    }

    func testUnknownInstanceThrowsTheDaemonsRefusal() throws {
        XCTAssertThrowsError(try inspector.inspect(instance: "no-such-instance", paths: ["/tmp/x"])) {
            error in
            guard case .refused(let status, let message) = error as? IncusFileInspector.InspectionError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(status, 404)
            XCTAssertTrue(message.contains("Instance not found"), message)
        }
    }

    func testMissingSocketThrowsUnreachable() throws {
        let inspector = IncusFileInspector(socketPath: "/tmp/ferry-no-daemon-\(UUID().uuidString).socket")
        XCTAssertThrowsError(try inspector.inspect(instance: "c1", paths: ["/tmp/x"])) { error in
            guard case .unreachable(let failure) = error as? IncusFileInspector.InspectionError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(failure.errno, ENOENT)
        }
    }

    func testSilentDaemonCannotHoldTheCallerPastTheTimeout() throws {
        // A listening socket that never accepts: the connection is made, nothing answers.
        let path = NSTemporaryDirectory() + "ferry-silent-\(UUID().uuidString).socket"
        let listener = try Self.listen(at: path)
        defer {
            close(listener)
            unlink(path)
        }
        let inspector = IncusFileInspector(socketPath: path, timeout: 0.3)
        let start = Monotonic.seconds()
        XCTAssertThrowsError(try inspector.inspect(instance: "c1", paths: ["/tmp/x"])) { error in
            XCTAssertEqual(error as? IncusFileInspector.InspectionError, .timedOut(seconds: 0.3))
        }
        XCTAssertLessThan(Monotonic.seconds() - start, 1)
    }

    func testNoDescriptorIsLeftOpenWhateverTheOutcome() throws {
        let before = try Self.openDescriptors()
        for _ in 0..<5 {
            _ = try inspector.inspect(instance: "c1", paths: ["\(base)/file", "\(base)/fifo"])
            _ = try? inspector.inspect(instance: "no-such-instance", paths: ["/tmp/x"])
            _ = try? inspector.inspect(instance: "c1", paths: ["\(base)/file", "\(base)/loop"])
        }
        XCTAssertEqual(try Self.openDescriptors(), before)
    }

    func testInvalidInstanceNameIsNotSent() throws {
        XCTAssertThrowsError(try inspector.inspect(instance: "c1/../../1.0", paths: ["/tmp/x"])) { error in
            guard case .invalidInstanceName = error as? IncusFileInspector.InspectionError else {
                return XCTFail("\(error)")
            }
        }
    }

    private static func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }

    private static func listen(at path: String) throws -> Int32 {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard descriptor >= 0, bound == 0, Glibc.listen(descriptor, 4) == 0 else {
            throw TestSetupError("cannot listen at \(path): errno \(errno)")
        }
        return descriptor
    }
}
