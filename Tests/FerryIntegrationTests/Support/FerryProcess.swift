import Foundation
import XCTest

/// A real `ferry` process on a free loopback port with its own spool, for one test.
final class FerryProcess {
    let process = Process()
    let spool: URL
    private(set) var address = ""
    private let log = LogLines()
    private var stopped = false

    /// Starts Ferry and waits until it says where it listens.
    ///
    /// - Parameter launcher: a program and its arguments that run Ferry (e.g. `prlimit`
    ///   with limits), or empty to run it directly.
    init(
        arguments: [String] = [], spool: URL? = nil, environment: [String: String] = [:],
        launcher: [String] = []
    ) throws {
        guard let binary = ProcessInfo.processInfo.environment["FERRY_BIN"] else {
            throw TestSetupError("FERRY_BIN is not set: run the tests with `make test`")
        }
        self.spool =
            spool
            ?? URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("ferry-test-\(UUID().uuidString)/spool")
        let ferryArguments = ["--listen", "127.0.0.1:0", "--spool", self.spool.path] + arguments
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = launcher.dropFirst() + [binary] + ferryArguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ferryArguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        let log = self.log
        errors.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                log.close()
            } else {
                log.append(data)
            }
        }
        try process.run()
        let line = try waitForLog(containing: "listening", timeout: 20)
        // Text logs say address=HOST:PORT; JSON logs "address":"HOST:PORT".
        guard let range = line.range(of: #"address(=|":")[^\s"]+"#, options: .regularExpression) else {
            throw TestSetupError("no address in: \(line)")
        }
        address = String(line[range].split(separator: "=").last!.split(separator: "\"").last!)
    }

    deinit {
        stop()
    }

    /// The port Ferry listens on.
    var port: UInt16 { UInt16(address.split(separator: ":").last!)! }

    /// Sends SIGTERM and waits for the process to end.
    func stop() {
        _ = end(with: SIGTERM)
    }

    /// Sends `signal` and waits for the process to end.
    ///
    /// - Returns: its exit status (nil if a signal ended it) and the seconds it took.
    func end(with signal: Int32) -> (exitStatus: Int32?, seconds: Double) {
        guard !stopped else { return (nil, 0) }
        stopped = true
        let started = Date()
        let status = process.end(with: signal)
        return (status, Date().timeIntervalSince(started))
    }

    /// The first log line (present or future) that contains every fragment.
    @discardableResult
    func waitForLog(containing fragments: String..., timeout: Double = 30) throws -> String {
        if let line = log.wait(timeout: timeout, for: { line in fragments.allSatisfy(line.contains) }) {
            return line
        }
        throw TestSetupError(
            "no log line with \(fragments) within \(timeout)s; log so far:\n\(log.all.suffix(30).joined(separator: "\n"))"
        )
    }

    /// Every log line so far that contains every fragment.
    func logLines(containing fragments: String...) -> [String] {
        log.all.filter { line in fragments.allSatisfy(line.contains) }
    }

    /// Waits until the task's delivery ended (delivered or failed for good) and returns that line.
    @discardableResult
    func waitForSettlement(of task: String, timeout: Double = 60) throws -> String {
        try waitForLogMatching(timeout: timeout) { line in
            line.contains("task=\(task)")
                && (line.contains("outcome=delivered") || line.contains("delivery failed"))
        }
    }

    func waitForLogMatching(timeout: Double, _ predicate: @escaping (String) -> Bool) throws -> String {
        if let line = log.wait(timeout: timeout, for: predicate) { return line }
        throw TestSetupError(
            "no matching log line within \(timeout)s; log:\n\(log.all.suffix(30).joined(separator: "\n"))")
    }

    /// The names in the spool directory.
    /// The spool's files but the task store's (`tasks.db` and its WAL) and empty spares
    /// (emptied data files kept for reuse): the bytes of uploads, and whatever else should
    /// not be there (a spare that is not empty included).
    func spoolContents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: spool.path).filter { name in
            if name.hasPrefix("tasks.db") { return false }
            guard name.hasSuffix(".spare") else { return true }
            let size = try FileManager.default.attributesOfItem(
                atPath: spool.appendingPathComponent(name).path)[.size]
            return (size as? Int) != 0
        }.sorted()
    }

    /// What Ferry's open descriptors point at inside the spool, the database aside: a body
    /// being received is an unnamed file there (`O_TMPFILE`, shown by the kernel as
    /// `#INODE (deleted)`).
    func openSpoolFiles() throws -> [String] {
        let descriptors = "/proc/\(process.processIdentifier)/fd"
        let prefix = spool.resolvingSymlinksInPath().path + "/"
        return try FileManager.default.contentsOfDirectory(atPath: descriptors).compactMap { name in
            guard
                let target = try? FileManager.default.destinationOfSymbolicLink(
                    atPath: "\(descriptors)/\(name)"),
                target.hasPrefix(prefix), !target.dropFirst(prefix.count).hasPrefix("tasks.db")
            else { return nil }
            return String(target.dropFirst(prefix.count))
        }.sorted()
    }

    /// Peak resident set size of the process so far, in bytes (VmHWM).
    func peakResidentBytes() throws -> Int {
        try statusField("VmHWM:")
    }

    /// Resident set size of the process now, in bytes (VmRSS).
    func residentBytes() throws -> Int {
        try statusField("VmRSS:")
    }

    /// Descriptors the process holds now.
    func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.processIdentifier)/fd").count
    }

    private func statusField(_ name: String) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        else { throw TestSetupError("no \(name) in /proc status") }
        return kilobytes * 1024
    }
}

extension Process {
    /// Sends `signal` and waits for the process to end.
    ///
    /// - Returns: its exit status, nil if a signal ended it.
    func end(with signal: Int32) -> Int32? {
        let pid = processIdentifier
        guard pid > 0 else { return nil }
        kill(pid, signal)
        var status: Int32 = 0
        var reaped = waitpid(pid, &status, 0)
        while reaped < 0 && errno == EINTR { reaped = waitpid(pid, &status, 0) }
        if reaped < 0 {
            // Foundation's own child monitor reaped it first: ask Process how it ended.
            while isRunning { usleep(1000) }
            return terminationReason == .uncaughtSignal ? nil : terminationStatus
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : nil
    }
}

/// Log lines of a child process, with waiting for one to appear.
final class LogLines: @unchecked Sendable {
    private let condition = NSCondition()
    private var lines: [String] = []
    private var partial = Data()
    private var closed = false

    func append(_ data: Data) {
        condition.lock()
        partial.append(data)
        while let newline = partial.firstIndex(of: 0x0a) {
            lines.append(String(decoding: partial[partial.startIndex..<newline], as: UTF8.self))
            partial.removeSubrange(partial.startIndex...newline)
        }
        condition.broadcast()
        condition.unlock()
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    var all: [String] {
        condition.lock()
        defer { condition.unlock() }
        return lines
    }

    func wait(timeout: Double, for predicate: (String) -> Bool) -> String? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        var checked = 0
        while true {
            while checked < lines.count {
                if predicate(lines[checked]) { return lines[checked] }
                checked += 1
            }
            if closed || !condition.wait(until: deadline) { return nil }
        }
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
