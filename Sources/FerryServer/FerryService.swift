import FerryCore
import FerryHTTP
import Glibc
import Logging

/// A whole Ferry process: event loop, HTTP server, spool, queue and workers, started and
/// stopped as one.
public final class FerryService {
    private let configuration: FerryConfiguration
    private let logger: Logger

    public init(configuration: FerryConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts everything and serves until SIGINT or SIGTERM.
    ///
    /// - Throws: when a part cannot start (address in use, spool unwritable, no streaming).
    public func run() throws {
        // A client that leaves mid-answer must cost an EPIPE, not the process.
        signal(SIGPIPE, SIG_IGN)
        let loop = try EventLoop()
        try StreamingProbe.verify(on: loop)
        logger.debug("request streaming verified")

        let spool = try Spool(directory: configuration.spoolDirectory)
        let queue = DeliveryQueue(capacity: configuration.queueCapacity)
        let pusher = IncusPusher(executable: configuration.incus, timeout: configuration.pushTimeout)
        let logger = self.logger
        let pool = WorkerPool(
            queue: queue, pusher: pusher, workers: configuration.workers,
            retryPolicy: configuration.retryPolicy, logger: logger
        ) { task, _ in
            // Failed uploads are not kept yet (dead letters come with the durable task store).
            do {
                try spool.remove(id: task.id)
            } catch {
                logger.error(
                    "cannot remove spool file", metadata: ["task": "\(task.id)", "error": "\(error)"])
            }
        }
        pool.start()

        let endpoint = UploadEndpoint(
            configuration: configuration, spool: spool, queue: queue, logger: logger)
        let server = try HTTPServer(
            loop: loop, handler: endpoint, maxBodySize: configuration.maxBodySize,
            idleTimeout: configuration.idleTimeout)
        let address = try server.listen(on: configuration.listen)
        logger.notice(
            "listening",
            metadata: [
                "address": "\(address)", "spool": "\(spool.directory)", "workers": "\(configuration.workers)",
                "queue_capacity": "\(configuration.queueCapacity)",
                "max_body_size": "\(configuration.maxBodySize)",
            ])
        for number in [SIGINT, SIGTERM] {
            loop.onSignal(number) {
                logger.notice("stopping", metadata: ["signal": "\(number)"])
                loop.stop()
            }
        }
        loop.run()
        withExtendedLifetime((server, endpoint, pool)) {}
    }
}
