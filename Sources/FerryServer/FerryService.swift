import Dispatch
import FerryCore
import FerryHTTP
import Glibc
import Logging

/// A whole Ferry process: event loop, HTTP server, spool, tasks and workers, started and
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
        let loop = try EventLoop()
        try StreamingProbe.verify(on: loop)
        logger.debug("request streaming verified")

        let spool = try Spool(directory: configuration.spoolDirectory)
        let pusher = IncusPusher(executable: configuration.incus, timeout: configuration.pushTimeout)
        let service = DeliveryService(
            spool: spool, pusher: pusher, settings: configuration.delivery, logger: logger)
        _ = try service.start()
        let collector = collectGarbage(of: service)

        let router = FerryRouter(
            configuration: configuration, service: service, authorizer: authorizer, logger: logger)
        let server = try HTTPServer(
            loop: loop, handler: router, maxBodySize: configuration.maxBodySize,
            maxHeaderSize: configuration.maxHeaderSize, idleTimeout: configuration.idleTimeout,
            connectionLimit: ConnectionLimit(
                maximum: Int64(configuration.maxConnections),
                answer: APIError.tooManyConnections(limit: configuration.maxConnections).response),
            bodyRate: configuration.minBodyRate == 0
                ? nil
                : BodyRateLimit(
                    minimumBytesPerSecond: Double(configuration.minBodyRate),
                    grace: configuration.bodyRateGrace),
            maxChunkSize: configuration.maxChunkSize)
        let address = try server.listen(on: configuration.listen)
        let settings = configuration.delivery
        logger.notice(
            "listening",
            metadata: [
                "address": "\(address)", "spool": "\(spool.directory)", "workers": "\(settings.workers)",
                "queue_capacity": "\(settings.queueCapacity)",
                "max_body_size": "\(configuration.maxBodySize)",
                "fsync": "\(settings.durable)",
            ])

        var deadline = Double.infinity
        for number in [SIGINT, SIGTERM] {
            loop.onSignal(number) { [logger, configuration] in
                guard deadline == .infinity else { return }
                deadline = Monotonic.seconds() + configuration.shutdownTimeout
                logger.notice(
                    "stopping",
                    metadata: ["signal": "\(number)", "in_progress": "\(server.requestsInProgress)"])
                server.stopAccepting()
                router.draining = true
                Self.stopWhenIdle(server, loop: loop, deadline: deadline)
            }
        }
        if let authorizer {
            loop.onSignal(SIGHUP) { [logger] in
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
        loop.run()
        collector.cancel()
        let clean = service.shutdown(deadline: deadline)
        logger.notice(
            "stopped",
            metadata: [
                "uploads_cut_off": "\(server.requestsInProgress)",
                "pushes_cut_off": "\(clean ? "none" : "some")",
            ])
        withExtendedLifetime((server, router)) {}
    }

    /// Whether `address` (`HOST:PORT`) is on the loopback interface.
    static func isLoopback(_ address: String) -> Bool {
        let host = address.split(separator: ":").dropLast().joined(separator: ":")
        return host.hasPrefix("127.") || host == "[::1]" || host == "localhost"
    }

    /// Stops the loop once no request is in progress, or at the deadline.
    private static func stopWhenIdle(_ server: HTTPServer, loop: EventLoop, deadline: Double) {
        if server.requestsInProgress == 0 || Monotonic.seconds() >= deadline {
            loop.stop()
            return
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.02) {
            loop.execute { stopWhenIdle(server, loop: loop, deadline: deadline) }
        }
    }

    /// Forgets finished tasks past the retention, checking every minute (or sooner when
    /// the retention is short).
    private func collectGarbage(of service: DeliveryService) -> DispatchSourceTimer {
        let period = max(0.5, min(60, configuration.delivery.retention / 4))
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
