import ArgumentParser
import FerryCore
import FerryHTTP
import FerryServer
import Foundation
import Logging

/// `ferry`: the upload endpoint that delivers files into Incus containers.
@main
struct FerryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Accept file uploads over HTTP and deliver them into Incus containers.",
        discussion: """
            POST /upload with the file as the body and the headers X-Container-Name, \
            X-File-Path (absolute; a trailing / means "into this directory") and optionally \
            X-Host-Path, X-File-Mode, X-File-Uid, X-File-Gid, X-Create-Dirs. Ferry streams the \
            body to the spool, answers 202 once it is on disk, and runs `incus file push` \
            in the background, retrying transient failures.

            Sizes accept K, M, G suffixes (binary: 1K = 1024). Durations accept seconds \
            (1, 0.5) or suffixed values (500ms, 2s, 1m, 1h).

            Every option can also be set in the environment as FERRY_ and its name in capitals \
            with _ for -, e.g. FERRY_MAX_BODY_SIZE=2G; flags take true or false \
            (FERRY_FSYNC=false), repeatable options a comma-separated list. The command line wins.
            """,
        version: FerryVersion.current
    )

    /// Flags with a `--no-` form, which `FERRY_NAME=false` selects.
    static let invertibleFlags: Set<String> = ["fsync"]

    /// Parses the command line merged with `FERRY_*` variables, then runs.
    static func main() {
        do {
            let arguments = try EnvironmentOptions.merge(
                Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment,
                declared: EnvironmentOptions.declared(by: FerryCommand()), invertible: invertibleFlags)
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    @Option(help: ArgumentHelp("Address to listen on, HOST:PORT (port 0 picks one).", valueName: "host:port"))
    var listen = "127.0.0.1:8080"

    @Option(
        help: ArgumentHelp(
            "Directory for upload bytes until they are delivered (created 0700).", valueName: "dir"))
    var spool = "/var/spool/ferry"

    @Option(
        help: ArgumentHelp(
            "Token policy (YAML): tokens by SHA-256, with the containers, paths, sizes, modes and owners each may write. SIGHUP reloads it. See the README.",
            valueName: "file"))
    var tokens: String?

    @Flag(
        help:
            "Allow listening on a non-loopback address without --tokens: anyone who can connect may write any file into any container."
    )
    var insecureOpenAccess = false

    @Option(help: ArgumentHelp("The incus client: a path, or a name looked up on PATH.", valueName: "path"))
    var incus = "incus"

    @Option(
        help: ArgumentHelp(
            "Largest request head (request line and header fields); larger ones get 400.", valueName: "size"))
    var maxHeaderSize: ByteSize = ByteSize(bytes: 32 << 10)

    @Option(
        help: ArgumentHelp(
            "Bytes per second a body must average once --body-rate-grace has passed, or its connection is closed (0: no check).",
            valueName: "size"))
    var minBodyRate: ByteSize = ByteSize(bytes: 1024)

    @Option(help: ArgumentHelp("Time a body may take before --min-body-rate applies.", valueName: "duration"))
    var bodyRateGrace: Seconds = Seconds(value: 30)

    @Option(
        help: ArgumentHelp(
            "Largest chunk of a chunked body held in memory; reading stops at this mark, and a connection whose next chunk does not fit is closed within a second.",
            valueName: "size"))
    var maxChunkSize: ByteSize = ByteSize(bytes: 2 << 20)

    @Option(
        help:
            "Open connections past which requests are refused with 503 and the connection closed; past it by a sixteenth (at least 16), sockets are closed unread. Each connection may hold two descriptors (socket and spool file): Ferry raises its soft RLIMIT_NOFILE to the hard limit and lowers this value, with a warning, to what the limit holds after a reserve for pushes, the spool and lingering closes."
    )
    var maxConnections = 1024

    @Option(
        help: ArgumentHelp(
            "Time from the first byte of a request head to its end; a slower head has its connection closed.",
            valueName: "duration"))
    var headerTimeout: Seconds = Seconds(value: 10)

    @Option(
        help: "Event loops, each on its own thread and its own SO_REUSEPORT listener (default: one per core)."
    )
    var threads: Int = FerryCommand.cores

    @Option(help: "Pushes run at the same time.")
    var workers = 4

    @Option(
        help:
            "The most pushes into one remote at once (default: --workers), so that one slow or unreachable host cannot hold every worker."
    )
    var workersPerRemote: Int?

    @Option(
        help: ArgumentHelp(
            "This node's name in a fleet: every task and tus upload id starts with it (NODE-...), so a front end can route a task's requests to its node. Default: the host name, lowercased.",
            valueName: "id"))
    var nodeId: String = NodeID.ofThisHost()

    @Flag(
        help:
            "Close the listener while /readyz fails (spool, disk, Incus) and listen again once it passes: behind a load balancer without health checks (nginx), new uploads then go to the other nodes. Uploads in progress finish; queued ones wait."
    )
    var closeWhenUnready = false

    @Option(
        help:
            "Most files delivered by one `incus file push` (uploads to the same container directory with the same owner and mode; 1: one file per call)."
    )
    var batchMax = 64

    @Option(help: "Uploads accepted and not yet delivered or failed; more are refused with 503.")
    var queueCapacity = 1000

    @Option(
        help: ArgumentHelp(
            "Bytes the spool may hold (queued and failed uploads); more are refused with 503. Unbounded if not given.",
            valueName: "size"))
    var spoolMaxBytes: ByteSize?

    @Option(
        help: ArgumentHelp(
            "Free space to keep on the spool's file system; uploads that would use it get 507.",
            valueName: "size"))
    var minFreeDisk: ByteSize = ByteSize(bytes: 64 << 20)

    @Flag(
        inversion: .prefixedNo,
        help: ArgumentHelp(
            "Sync each upload's bytes and record to disk before answering 202 (grouped across concurrent uploads). --no-fsync answers sooner, but a power loss or kernel crash can then lose uploads that were acknowledged."
        ))
    var fsync = true

    @Option(
        help: ArgumentHelp(
            "How long finished tasks stay visible in /tasks (a failed task keeps its bytes as long).",
            valueName: "duration"))
    var retention: Seconds = Seconds(value: 86_400)

    @Option(
        help: ArgumentHelp(
            "On SIGTERM/SIGINT, time for uploads and pushes in progress to finish; then pushes are stopped (and retried after a restart).",
            valueName: "duration"))
    var shutdownTimeout: Seconds = Seconds(value: 30)

    @Option(help: ArgumentHelp("Largest body accepted; larger ones get 413.", valueName: "size"))
    var maxBodySize: ByteSize = ByteSize(bytes: 1 << 30)

    @Option(
        help: ArgumentHelp(
            "Time any `incus file push` may take before it is killed and retried; a push of many bytes gets more, at --push-min-rate.",
            valueName: "duration"))
    var pushTimeout: Seconds = Seconds(value: 15)

    @Option(
        help: ArgumentHelp(
            "The slowest rate a push is allowed: its timeout is --push-timeout plus its bytes at this rate.",
            valueName: "size"))
    var pushMinRate: ByteSize = ByteSize(bytes: 2 << 20)

    @Flag(
        help:
            "Write through symlinks in a destination inside the container. Without it, a destination whose parent or name is a symlink fails (symlink_in_destination): a symlink planted by anyone who can write a parent directory would otherwise turn an upload into a root-owned write anywhere in the container."
    )
    var followSymlinks = false

    @Option(help: "Push attempts per upload in all, the first included.")
    var maxAttempts = 5

    @Option(
        help: ArgumentHelp(
            "Backoff ceiling after the first failed attempt; it doubles per attempt (full jitter).",
            valueName: "duration"))
    var retryBase: Seconds = Seconds(value: 1)

    @Option(help: ArgumentHelp("Longest wait between attempts.", valueName: "duration"))
    var retryMax: Seconds = Seconds(value: 60)

    @Option(
        help: ArgumentHelp("Time a connection may stay silent before it is closed.", valueName: "duration"))
    var idleTimeout: Seconds = Seconds(value: 60)

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel = "info"

    @Option(help: ArgumentHelp("Log lines as text or as one JSON object each.", valueName: "text|json"))
    var logFormat = "text"

    @Option(
        help: ArgumentHelp(
            "A proxy (CIDR, or one address) whose X-Forwarded-For names the client in the logs; repeatable.",
            valueName: "cidr"))
    var trustedProxy: [String] = []

    @Option(
        help: ArgumentHelp(
            "How long an unfinished tus upload (/files/) is kept after its creation or its last PATCH.",
            valueName: "duration"))
    var uploadExpiry: Seconds = Seconds(value: 86_400)

    @Option(
        help: ArgumentHelp(
            "An origin (scheme://host[:port]) whose pages may call the API from a browser (CORS); repeatable.",
            valueName: "origin"))
    var corsOrigin: [String] = []

    @Option(
        help: ArgumentHelp(
            "An Incus remote (added with `incus remote add`) that uploads may name as REMOTE:INSTANCE; repeatable. With --tokens, a token needs it in its rule's remotes too.",
            valueName: "name"))
    var remote: [String] = []

    @Option(
        help: ArgumentHelp(
            "Time between the checks behind /readyz (spool, free disk, Incus).", valueName: "duration"))
    var readinessInterval: Seconds = Seconds(value: 5)

    static var cores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    func validate() throws {
        guard (1...1_000_000).contains(maxConnections) else {
            throw ValidationError("--max-connections must be 1-1000000")
        }
        guard (1...1024).contains(workers) else { throw ValidationError("--workers must be 1-1024") }
        if let problem = NodeID.problem(with: nodeId) {
            throw ValidationError("--node-id '\(nodeId)': \(problem)")
        }
        if let workersPerRemote, workersPerRemote < 1 {
            throw ValidationError("--workers-per-remote must be at least 1")
        }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1-256") }
        guard (1...1000).contains(batchMax) else { throw ValidationError("--batch-max must be 1-1000") }
        guard logFormat == "text" || logFormat == "json" else {
            throw ValidationError("--log-format must be text or json")
        }
        for name in remote {
            if let problem = RemoteName.problem(with: name) {
                throw ValidationError("--remote '\(name)': \(problem)")
            }
        }
        for origin in corsOrigin where !CrossOrigin.isOrigin(origin) {
            throw ValidationError(
                "--cors-origin '\(origin)' is not an origin such as https://console.example:8443")
        }
        guard uploadExpiry.value > 0 else { throw ValidationError("--upload-expiry must be more than 0") }
        for proxy in trustedProxy where TrustedProxies.Network(proxy) == nil {
            throw ValidationError("--trusted-proxy '\(proxy)' is not an address or ADDRESS/BITS")
        }
        guard readinessInterval.value >= 0.1 else {
            throw ValidationError("--readiness-interval must be at least 0.1s")
        }
        guard queueCapacity >= 1 else { throw ValidationError("--queue-capacity must be at least 1") }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        guard idleTimeout.value >= 1 else { throw ValidationError("--idle-timeout must be at least 1s") }
        guard pushTimeout.value > 0 else { throw ValidationError("--push-timeout must be above 0") }
        guard pushMinRate.bytes > 0 else { throw ValidationError("--push-min-rate must be above 0") }
        guard headerTimeout.value >= 0.5 else {
            throw ValidationError("--header-timeout must be at least 0.5s")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError(
                "--log-level must be one of: trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var settings = FerryConfiguration()
        settings.listen = listen
        settings.spoolDirectory = spool
        settings.incus = incus
        settings.tokensFile = tokens
        settings.insecureOpenAccess = insecureOpenAccess
        settings.maxBodySize = maxBodySize.bytes
        settings.minFreeDisk = minFreeDisk.bytes
        settings.maxConnections = maxConnections
        settings.maxHeaderSize = Int(clamping: maxHeaderSize.bytes)
        settings.minBodyRate = minBodyRate.bytes
        settings.bodyRateGrace = bodyRateGrace.value
        settings.maxChunkSize = Int(clamping: maxChunkSize.bytes)
        settings.pushTimeout = pushTimeout.value
        settings.pushMinRate = pushMinRate.bytes
        settings.followSymlinks = followSymlinks
        settings.headerTimeout = headerTimeout.value
        settings.shutdownTimeout = shutdownTimeout.value
        settings.delivery.workers = workers
        settings.delivery.nodeID = nodeId
        settings.delivery.workersPerRemote = workersPerRemote.map { min($0, workers) }
        settings.delivery.batchMax = batchMax
        settings.threads = threads
        settings.trustedProxies = trustedProxy.compactMap(TrustedProxies.Network.init)
        settings.readinessInterval = readinessInterval.value
        settings.delivery.queueCapacity = queueCapacity
        settings.delivery.spoolMaxBytes = spoolMaxBytes?.bytes
        settings.delivery.retryPolicy = RetryPolicy(
            maxAttempts: maxAttempts, base: retryBase.value, cap: retryMax.value)
        settings.delivery.durable = fsync
        settings.delivery.retention = retention.value
        settings.delivery.uploadExpiry = uploadExpiry.value
        settings.corsOrigins = corsOrigin
        settings.remotes = remote
        settings.closeWhenUnready = closeWhenUnready
        settings.idleTimeout = Int32(max(1, idleTimeout.value.rounded()))
        let logger = Logger(label: "ferry")
        do {
            try FerryService(configuration: settings, logger: logger).run()
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}

/// A `--max-body-size` style value.
struct ByteSize: ExpressibleByArgument {
    var bytes: UInt64

    init(bytes: UInt64) {
        self.bytes = bytes
    }

    init?(argument: String) {
        guard let bytes = ByteCount.parse(argument) else { return nil }
        self.bytes = bytes
    }

    var defaultValueDescription: String { "\(bytes)" }
}

/// A `--push-timeout` style value.
struct Seconds: ExpressibleByArgument {
    var value: Double

    init(value: Double) {
        self.value = value
    }

    init?(argument: String) {
        guard let value = TimeSpan.parse(argument) else { return nil }
        self.value = value
    }

    var defaultValueDescription: String { "\(value)s" }
}
