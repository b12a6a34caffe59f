import Foundation

/// A closed gate for `Tests/Fixtures/gated-incus`: pushes wait until ``open()``.
final class Gate {
    let path = NSTemporaryDirectory() + "ferry-gate-\(UUID().uuidString)"

    /// The fixture's path, for `--incus`.
    static var incus: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/gated-incus").path
    }

    /// The environment Ferry needs so its pushes wait at this gate.
    var environment: [String: String] { ["FERRY_TEST_GATE": path] }

    func open() {
        FileManager.default.createFile(atPath: path, contents: nil)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
