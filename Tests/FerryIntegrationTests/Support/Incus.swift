import FerryCore
import Foundation

/// The private Incus daemon that `make test` started (INCUS_DIR), driven through its CLI.
enum Incus {
    static var directory: String {
        get throws {
            guard let directory = ProcessInfo.processInfo.environment["INCUS_DIR"] else {
                throw TestSetupError("INCUS_DIR is not set: run the tests with `make test`")
            }
            return directory
        }
    }

    /// Runs `incus` with `arguments`; returns stdout, throws on a non-zero exit.
    @discardableResult
    static func run(_ arguments: [String]) throws -> Data {
        try Command.run("incus", arguments)
    }

    /// The SHA-256 of a file inside a container.
    static func sha256(container: String, path: String) throws -> String {
        let output = try run(["exec", container, "--", "sha256sum", path])
        return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    /// `mode uid gid size` of a file inside a container (mode in octal, e.g. `640`).
    static func stat(container: String, path: String) throws -> String {
        let output = try run(["exec", container, "--", "stat", "-c", "%a %u %g %s", path])
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func remove(container: String, path: String) throws {
        try run(["exec", container, "--", "rm", "-rf", path])
    }

    /// Stops only the daemon (containers keep running); `incus file push` then fails.
    static func stopDaemon() throws {
        try Command.run(try script, ["daemon-stop", try directory])
    }

    static func startDaemon() throws {
        try Command.run(try script, ["daemon-start", try directory])
    }

    private static var script: String {
        get throws {
            guard let path = ProcessInfo.processInfo.environment["FERRY_INCUS_ENV"] else {
                throw TestSetupError("FERRY_INCUS_ENV is not set: run the tests with `make test`")
            }
            return path
        }
    }
}

/// Runs programs for the tests (with Ferry's own posix_spawn runner: Foundation's
/// `Process.waitUntilExit` was seen to hang here on a child that had already exited).
enum Command {
    @discardableResult
    static func run(_ program: String, _ arguments: [String]) throws -> Data {
        let outcome = try ChildProcess.run(program, arguments: arguments, timeout: 120)
        guard outcome.exitStatus == 0 else {
            throw TestSetupError(
                "\(program) \(arguments.joined(separator: " ")) failed: \(outcome.standardError)")
        }
        return Data(outcome.standardOutput.utf8)
    }

    /// The SHA-256 of bytes, by `sha256sum`.
    static func sha256(_ bytes: [UInt8]) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ferry-sha-\(UUID().uuidString)")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let output = try run("sha256sum", [file.path])
        return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }
}

/// Random bytes for upload bodies.
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}
