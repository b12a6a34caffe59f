import Dispatch
import FerryCore
import Foundation
import Glibc
import Logging
import Synchronization

/// Whether Ferry can do its job right now: the spool writable, free disk above the reserve,
/// and Incus answering. Checked on a timer, off the event loops; `/readyz` reads the last
/// result, so a scrape or a load balancer costs nothing.
///
/// `@unchecked`: the timer is only started and cancelled by the thread that runs the
/// service; everything else is immutable or behind the mutex.
final class Readiness: @unchecked Sendable {
    /// One check's result.
    struct Check: Encodable, Sendable {
        var ok: Bool
        var detail: String
    }

    /// The last round of checks.
    struct Report: Sendable {
        var checks: [String: Check]
        /// Each allowed remote's daemon (`--remote`): shown, never a reason to be unready,
        /// since uploads to this host and to the other remotes still go.
        var remotes: [String: Check] = [:]
        var isReady: Bool { !checks.isEmpty && checks.values.allSatisfy(\.ok) }
    }

    private let spool: Spool
    private let minFreeDisk: UInt64
    private let incus: String
    private let remotes: [String]
    private let interval: Double
    private let logger: Logger
    private let last = Mutex(
        Report(checks: ["startup": Check(ok: false, detail: "the first check has not finished")]))
    private let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ferry.readiness"))
    /// Told when the checks' verdict flips (on the checks' queue).
    private let changed = Mutex<(@Sendable (Bool) -> Void)?>(nil)

    init(
        spool: Spool, minFreeDisk: UInt64, incus: String, remotes: [String], interval: Double, logger: Logger
    ) {
        self.remotes = remotes
        self.spool = spool
        self.minFreeDisk = minFreeDisk
        self.incus = incus
        self.interval = interval
        self.logger = logger
    }

    var report: Report { last.withLock { $0 } }

    /// Calls `handler` with the new verdict each time the checks go from ready to not
    /// ready or back.
    func whenReadinessChanges(_ handler: @escaping @Sendable (Bool) -> Void) {
        changed.withLock { $0 = handler }
    }

    /// Checks now, then every `interval` seconds.
    func start() {
        timer.schedule(deadline: .now(), repeating: interval)
        timer.setEventHandler { [self] in check() }
        timer.resume()
    }

    func stop() {
        timer.cancel()
    }

    private func check() {
        let report = Report(
            checks: ["spool": checkSpool(), "disk": checkDisk(), "incus": checkIncus()],
            remotes: Dictionary(uniqueKeysWithValues: remotes.map { ($0, checkRemote($0)) }))
        for (name, check) in report.remotes where lastCheck(ofRemote: name)?.ok != check.ok {
            if check.ok {
                logger.notice("remote answers", metadata: ["remote": "\(name)"])
            } else {
                logger.warning(
                    "remote not answering", metadata: ["remote": "\(name)", "detail": "\(check.detail)"])
            }
        }
        let before = last.withLock { last in
            defer { last = report }
            return last
        }
        if before.isReady != report.isReady {
            changed.withLock { $0 }?(report.isReady)
            let failing = report.checks.filter { !$0.value.ok }.map { "\($0.key): \($0.value.detail)" }
            if report.isReady {
                logger.notice("ready")
            } else {
                logger.warning(
                    "not ready", metadata: ["failing": "\(failing.sorted().joined(separator: "; "))"])
            }
        }
    }

    private func checkSpool() -> Check {
        var info = statvfs()
        guard statvfs(spool.directory, &info) == 0 else {
            return Check(ok: false, detail: "statvfs: \(String(cString: strerror(errno)))")
        }
        if info.f_flag & UInt(ST_RDONLY) != 0 { return Check(ok: false, detail: "mounted read-only") }
        guard access(spool.directory, W_OK | X_OK) == 0 else {
            return Check(ok: false, detail: "not writable: \(String(cString: strerror(errno)))")
        }
        return Check(ok: true, detail: spool.directory)
    }

    private func checkDisk() -> Check {
        guard let available = try? spool.availableBytes() else {
            return Check(ok: false, detail: "cannot read free space")
        }
        return Check(
            ok: available > minFreeDisk,
            detail: "\(available) bytes free, \(minFreeDisk) kept in reserve")
    }

    /// The last check of remote `name`, if there was one.
    private func lastCheck(ofRemote name: String) -> Check? {
        last.withLock { $0.remotes[name] }
    }

    /// `incus query REMOTE:/1.0`: the remote's daemon answers, and trusts this client (an
    /// untrusted client is answered too, with `"auth": "untrusted"`).
    private func checkRemote(_ name: String) -> Check {
        do {
            let outcome = try ChildProcess.run(incus, arguments: ["query", "\(name):/1.0"], timeout: 10)
            if outcome.timedOut { return Check(ok: false, detail: "incus query timed out") }
            guard outcome.exitStatus == 0 else {
                let message = outcome.standardError.split(whereSeparator: \.isNewline).first.map(String.init)
                return Check(ok: false, detail: message ?? "incus query failed")
            }
            let answer =
                try? JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8)) as? [String: Any]
            guard answer?["auth"] as? String == "trusted" else {
                return Check(ok: false, detail: "the remote answers but does not trust this client")
            }
            return Check(ok: true, detail: "the remote answers and trusts this client")
        } catch {
            return Check(ok: false, detail: "cannot run \(incus): \(error)")
        }
    }

    /// `incus query /1.0` asks the daemon for its own description: cheap, and it fails
    /// exactly when a push would fail for want of a daemon.
    private func checkIncus() -> Check {
        do {
            let outcome = try ChildProcess.run(incus, arguments: ["query", "/1.0"], timeout: 10)
            if outcome.timedOut { return Check(ok: false, detail: "incus query timed out") }
            if outcome.exitStatus == 0 { return Check(ok: true, detail: "the daemon answers") }
            let message = outcome.standardError.split(whereSeparator: \.isNewline).first.map(String.init)
            return Check(
                ok: false,
                detail: message
                    ?? "incus query exited \(outcome.exitStatus.map(String.init) ?? "on a signal")")
        } catch {
            return Check(ok: false, detail: "cannot run \(incus): \(error)")
        }
    }
}
