import FerryCore
import XCTest

final class PushErrorClassifierTests: XCTestCase {
    /// The stderr texts of Incus 6.0.4, as recorded in the project's notes.
    func testIncusMessagesAreClassified() {
        let table: [(String, PushFailure.Kind)] = [
            (
                "Error: Failed to fetch instance \"nope\" in project \"default\": Instance not found",
                .permanent
            ),
            ("Error: sftp: \"open /tmp/x/y: not a directory\" (SSH_FX_FAILURE)", .permanent),
            ("Error: sftp: \"open /tmp: is a directory\" (SSH_FX_FAILURE)", .permanent),
            ("Error: Invalid target c1", .permanent),
            ("Error: The remote \"c1\" doesn't exist", .permanent),
            ("Error: strconv.ParseInt: parsing \"0999\": invalid syntax", .permanent),
            ("Error: file does not exist", .transient),
            (
                "Error: The incus daemon doesn't appear to be started (socket path: /x/unix.socket)",
                .transient
            ),
            (
                "You don't have the needed permissions to talk to the incus daemon (socket path: /x)",
                .transient
            ),
            // A remote, as Incus 6.0.4 words its failures (recorded against a second daemon).
            (
                "Error: Get \"https://127.0.0.1:18443/1.0\": Unable to connect to: 127.0.0.1:18443 ([dial tcp 127.0.0.1:18443: connect: connection refused])",
                .transient
            ),
            ("Error: not authorized", .transient),
            (
                "Error: Get \"https://127.0.0.1:18443/1.0\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
                .transient
            ),
            (
                "Error: Failed to fetch instance \"gone\" in project \"default\": Instance not found",
                .permanent
            ),
            ("Error: something new and unexpected", .transient),
            ("", .transient),
        ]
        for (message, kind) in table {
            XCTAssertEqual(PushErrorClassifier.classify(standardError: message), kind, message)
        }
    }

    func testIncusArgumentsAlwaysCarryOwnerModeAndTheFullDestination() {
        var task = UploadTask(
            id: "t", request: UploadRequest(container: "c1", path: "/etc/x", mode: 0o600, uid: 5, gid: 6),
            sourcePath: "/spool/t.data", bytes: 1)
        XCTAssertEqual(
            IncusPusher.arguments(for: task),
            [
                "file", "push", "-q", "--uid", "5", "--gid", "6", "--mode", "0600", "--", "/spool/t.data",
                "c1/etc/x",
            ])
        task = UploadTask(
            id: "t", request: UploadRequest(container: "c1", path: "/a/b", createDirectories: true),
            sourcePath: "/s", bytes: 1)
        XCTAssertEqual(
            IncusPusher.arguments(for: task),
            ["file", "push", "-q", "--uid", "0", "--gid", "0", "--mode", "0644", "-p", "--", "/s", "c1/a/b"])
    }
}

final class RetryPolicyTests: XCTestCase {
    func testCeilingDoublesFromTheBaseUpToTheCap() {
        let policy = RetryPolicy(maxAttempts: 10, base: 1, cap: 60)
        XCTAssertEqual((1...8).map { policy.ceiling(afterAttempt: $0) }, [1, 2, 4, 8, 16, 32, 60, 60])
        XCTAssertEqual(policy.ceiling(afterAttempt: 500), 60)
    }

    func testDelayIsFullJitterWithinTheCeiling() {
        let policy = RetryPolicy(maxAttempts: 5, base: 0.5, cap: 3)
        var generator = SystemRandomNumberGenerator()
        for attempt in 1...6 {
            let delays = (0..<500).map { _ in policy.delay(afterAttempt: attempt, using: &generator) }
            let ceiling = policy.ceiling(afterAttempt: attempt)
            XCTAssertTrue(delays.allSatisfy { $0 >= 0 && $0 <= ceiling })
            XCTAssertLessThan(delays.min()!, ceiling * 0.2, "full jitter reaches near zero")
            XCTAssertGreaterThan(delays.max()!, ceiling * 0.8, "and near the ceiling")
        }
    }

    func testAttemptsStopAtTheMaximum() {
        let policy = RetryPolicy(maxAttempts: 3, base: 1, cap: 1)
        XCTAssertEqual((1...4).map { policy.allowsRetry(afterAttempt: $0) }, [true, true, false, false])
    }
}
