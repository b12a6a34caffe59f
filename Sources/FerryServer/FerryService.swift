import Dispatch
import FerryCore
import FerryHTTP
import Foundation
import Logging

/// A whole Ferry process: event loops, HTTP servers, spool, tasks and workers, started and
/// stopped as one.
public final class FerryService {
    private let configuration: FerryConfiguration
    private let logger: Logger

    public init(configuration: FerryConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts everything and serves until SIGINT or SIGTERM, then shuts down gracefully:
    /// no new connections or requests, uploads in progress may finish, running pushes may
    /// finish, all until `--shutdown-timeout`; what was accepted and not delivered is taken
    /// up again by the next start.
    ///
    /// - Throws: when a part cannot start (address in use, spool unwritable, no streaming).
    public func run() throws {
        // A client that leaves mid-answer must cost an EPIPE, not the process.
        signal(SIGPIPE, SIG_IGN)
        ChildProcess.keepInheritedDescriptorsFromChildren()
        let authorizer = try loadPolicy()
        let budget = planDescriptors()
        let loops = try (0..<max(1, configuration.threads)).map { _ in try EventLoop() }
        try StreamingProbe.verify(on: loops[0])
        logger.debug("request streaming verified")

        let metrics = FerryMetrics()
        let spool = try Spool(directory: configuration.spoolDirectory)
        let remotes: [String: IncusRemote]
        do {
            remotes = try IncusRemote.load(
                configuration.remotes, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw StartupError(error.description)
        }
        let pusher = IncusPusher(
            executable: configuration.incus, timeout: configuration.pushTimeout,
            minimumRate: Double(configuration.pushMinRate),
            inspector: IncusFileInspector(
                socketPath: IncusFileInspector.defaultSocketPath(
                    environment: ProcessInfo.processInfo.environment),
                remotes: remotes),
            logger: logger, followSymlinks: configuration.followSymlinks)
        let store = try SQLiteTaskStore(path: spool.storePath)
        let service = DeliveryService(
            spool: spool, store: store, pusher: pusher, settings: configuration.delivery, logger: logger)
        _ = try service.start()
        let collector = collectGarbage(of: service)
        let readiness = Readiness(
            spool: spool, minFreeDisk: configuration.minFreeDisk, incus: configuration.incus,
            remotes: configuration.remotes, interval: configuration.readinessInterval, logger: logger)
        readiness.start()

        let router = FerryRouter(
            configuration: configuration, service: service, authorizer: authorizer, readiness: readiness,
            metrics: metrics, logger: logger)
        let servers = try loops.map { try makeServer(on: $0, handler: router, budget: budget) }
        // Every loop has its own listener on the same address; the kernel spreads new
        // connections among them, so no lock or hand-off sits on the accept path.
        let shared = servers.count > 1
        let address = try servers[0].listen(on: configuration.listen, sharedPort: shared)
        for server in servers.dropFirst() { try server.listen(on: address, sharedPort: true) }
        if configuration.closeWhenUnready {
            closeWhileUnready(
                servers, address: address, sharedPort: shared, readiness: readiness, router: router)
        }
        // The other loops run on threads of their own, running before "listening" is said.
        let others = DispatchGroup()
        let running = DispatchGroup()
        for loop in loops.dropFirst() {
            others.enter()
            running.enter()
            let thread = Thread {
                WorkerThread.nameCurrentThread("ferry-loop")
                running.leave()
                loop.run()
                others.leave()
            }
            thread.start()
        }
        running.wait()
        let settings = configuration.delivery
        logger.notice(
            "listening",
            metadata: [
                "address": "\(address)", "spool": "\(spool.directory)", "threads": "\(servers.count)",
                "workers": "\(settings.workers)", "batch_max": "\(settings.batchMax)",
                "queue_capacity": "\(settings.queueCapacity)",
                "max_body_size": "\(configuration.maxBodySize)", "fsync": "\(settings.durable)",
            ])

        // libevent lets one event base own signals: the first loop takes them and tells the
        // others.
        var deadline = Double.infinity
        for number in [SIGINT, SIGTERM] {
            loops[0].onSignal(number) { [logger, configuration] in
                guard deadline == .infinity else { return }
                deadline = Monotonic.seconds() + configuration.shutdownTimeout
                router.draining = true
                // Every listener is closed before "stopping" is said: from then on a new
                // connection is refused. This loop's own now, the others' on their threads.
                let closed = DispatchGroup()
                for server in servers.dropFirst() {
                    closed.enter()
                    let until = deadline
                    server.loop.execute {
                        server.stopAccepting()
                        closed.leave()
                        Self.stopWhenIdle(server, deadline: until)
                    }
                }
                servers[0].stopAccepting()
                _ = closed.wait(timeout: .now() + 5)
                logger.notice("stopping", metadata: ["signal": "\(number)"])
                Self.stopWhenIdle(servers[0], deadline: deadline)
            }
        }
        reloadOnHangUp(authorizer, loop: loops[0])

        loops[0].run()
        others.wait()
        collector.cancel()
        readiness.stop()
        let clean = service.shutdown(deadline: deadline)
        logger.notice(
            "stopped",
            metadata: [
                "uploads_cut_off": "\(servers.reduce(0) { $0 + $1.requestsInProgress })",
                "pushes_cut_off": "\(clean ? "none" : "some")",
            ])
        withExtendedLifetime((servers, router, loops)) {}
    }

    private func loadPolicy() throws -> Authorizer? {
        let authorizer = try configuration.tokensFile.map { path throws(PolicyError) in
            try Authorizer(path: path)
        }
        if authorizer == nil && !configuration.insecureOpenAccess && !Self.isLoopback(configuration.listen) {
            throw StartupError(
                "refusing to listen on \(configuration.listen) without --tokens: anyone who can reach it could "
                    + "write any file into any container. Give --tokens FILE, listen on 127.0.0.1, "
                    + "or pass --insecure-open-access if that is really what you want.")
        }
        if let authorizer {
            logger.notice(
                "token policy loaded",
                metadata: ["file": "\(authorizer.path)", "tokens": "\(authorizer.tokenCount)"])
        } else {
            logger.warning("no --tokens: every client that can connect may write into every container")
        }
        return authorizer
    }

    /// Raises the descriptor limit and fits the connection limits into it.
    private func planDescriptors() -> DescriptorBudget {
        let descriptors = DescriptorBudget.raiseLimit()
        let budget = DescriptorBudget.plan(
            descriptors: descriptors, requestedConnections: configuration.maxConnections,
            workers: configuration.delivery.workers, loops: configuration.threads)
        if budget.lowered {
            logger.warning(
                "--max-connections lowered to fit the descriptor limit",
                metadata: [
                    "requested": "\(configuration.maxConnections)",
                    "max_connections": "\(budget.maxConnections)",
                    "rlimit_nofile": "\(descriptors)",
                ])
        }
        return budget
    }

    private func makeServer(on loop: EventLoop, handler: FerryRouter, budget: DescriptorBudget) throws
        -> HTTPServer
    {
        try HTTPServer(
            loop: loop, handler: handler, maxBodySize: configuration.maxBodySize,
            maxHeaderSize: configuration.maxHeaderSize, idleTimeout: configuration.idleTimeout,
            headerTimeout: configuration.headerTimeout,
            connectionLimit: ConnectionLimit(
                maximum: Int64(budget.maxConnections),
                answer: APIError.tooManyConnections(limit: budget.maxConnections).response,
                cap: Int64(budget.connectionCap), lingeringCap: budget.lingeringCap),
            bodyRate: configuration.minBodyRate == 0
                ? nil
                : BodyRateLimit(
                    minimumBytesPerSecond: Double(configuration.minBodyRate),
                    grace: configuration.bodyRateGrace),
            maxChunkSize: configuration.maxChunkSize)
    }

    /// SIGHUP reloads the token policy, off the loop (it reads a file). Without a policy it
    /// is only logged: a `systemctl reload` must not end the process.
    private func reloadOnHangUp(_ authorizer: Authorizer?, loop: EventLoop) {
        loop.onSignal(SIGHUP) { [logger] in
            guard let authorizer else {
                logger.notice("SIGHUP ignored: there is no --tokens policy to reload")
                return
            }
            DispatchQueue.global().async {
                do throws(PolicyError) {
                    let count = try authorizer.reload()
                    logger.notice("token policy reloaded", metadata: ["tokens": "\(count)"])
                } catch {
                    logger.error(
                        "token policy not reloaded; the previous one stays in force",
                        metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// `--close-when-unready`: each server stops listening when the readiness checks fail
    /// and listens again when they pass, unless shutdown has begun.
    private func closeWhileUnready(
        _ servers: [HTTPServer], address: String, sharedPort: Bool, readiness: Readiness, router: FerryRouter
    ) {
        readiness.whenReadinessChanges { [logger] ready in
            for server in servers {
                server.loop.execute {
                    guard !router.draining else { return }
                    if !ready {
                        server.stopAccepting()
                        return
                    }
                    do {
                        try server.resumeAccepting(on: address, sharedPort: sharedPort)
                    } catch {
                        // The next verdict tries again; until then the others serve.
                        logger.error(
                            "cannot listen again", metadata: ["address": "\(address)", "error": "\(error)"])
                    }
                }
            }
            logger.notice(
                ready ? "ready again: listening" : "not ready: listener closed (--close-when-unready)",
                metadata: ["address": "\(address)"])
        }
    }

    /// Whether `address` (`HOST:PORT`) is on the loopback interface.
    static func isLoopback(_ address: String) -> Bool {
        let host = address.split(separator: ":").dropLast().joined(separator: ":")
        return host.hasPrefix("127.") || host == "[::1]" || host == "localhost"
    }

    /// Stops the server's loop once no request is in progress on it, or at the deadline.
    /// Runs on that loop's thread.
    private static func stopWhenIdle(_ server: HTTPServer, deadline: Double) {
        if server.requestsInProgress == 0 || Monotonic.seconds() >= deadline {
            server.loop.stop()
            return
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.02) {
            server.loop.execute { stopWhenIdle(server, deadline: deadline) }
        }
    }

    /// Forgets finished tasks past the retention and unfinished tus uploads past their
    /// expiry, checking every minute (or sooner when either is short).
    private func collectGarbage(of service: DeliveryService) -> DispatchSourceTimer {
        let shortest = min(configuration.delivery.retention, configuration.delivery.uploadExpiry)
        let period = max(0.5, min(60, shortest / 4))
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ferry.garbage"))
        timer.schedule(deadline: .now() + period, repeating: period)
        timer.setEventHandler { service.collectGarbage() }
        timer.resume()
        return timer
    }
}

/// A reason Ferry will not start.
struct StartupError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
