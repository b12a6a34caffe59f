import FerryCore
import FerryHTTP

/// Everything a Ferry process is told at start-up.
public struct FerryConfiguration: Sendable {
    public var listen = "127.0.0.1:8080"
    public var spoolDirectory = "/var/spool/ferry"
    public var incus = "incus"
    public var maxBodySize: UInt64 = 1 << 30
    /// Seconds any push may take (`--push-timeout`); more bytes get more, at `pushMinRate`.
    public var pushTimeout = 15.0
    /// Bytes per second a push must at least move (`--push-min-rate`).
    public var pushMinRate: UInt64 = 2 << 20
    /// Write through symlinks in destinations inside the container (`--follow-symlinks`).
    public var followSymlinks = false
    /// Seconds from the first byte of a request head to its end (`--header-timeout`).
    public var headerTimeout = 10.0
    /// Seconds a connection may stay silent (between requests or mid-body).
    public var idleTimeout: Int32 = 60
    /// Free space on the spool's file system that uploads may not use (`--min-free-disk`).
    public var minFreeDisk: UInt64 = 64 << 20
    /// The request line and header fields together, in bytes (`--max-header-size`).
    public var maxHeaderSize = 32 * 1024
    /// Bytes per second a body must average after `bodyRateGrace` seconds (0: no check).
    public var minBodyRate: UInt64 = 1024
    public var bodyRateGrace = 30.0
    /// The largest chunk of a chunked body held in memory (`--max-chunk-size`).
    public var maxChunkSize = 2 << 20
    /// Open connections past which requests are refused with 503 (`--max-connections`).
    public var maxConnections = 1024
    /// Seconds a SIGTERM/SIGINT waits for uploads and pushes in progress.
    public var shutdownTimeout = 30.0
    /// The token policy file (`--tokens`); without it nobody is asked for a token.
    public var tokensFile: String?
    /// Lets Ferry listen beyond loopback without tokens (`--insecure-open-access`).
    public var insecureOpenAccess = false
    /// Event loops, each on its own thread and its own `SO_REUSEPORT` listener (`--threads`).
    public var threads = 1
    /// Proxies whose `X-Forwarded-For` names the client in logs (`--trusted-proxy`).
    public var trustedProxies: [TrustedProxies.Network] = []
    /// Seconds between readiness checks behind `/readyz` (`--readiness-interval`).
    public var readinessInterval = 5.0
    /// Origins whose pages may call the API from a browser (`--cors-origin`).
    public var corsOrigins: [String] = []
    /// Stop listening while not ready, and listen again once ready (`--close-when-unready`):
    /// a load balancer in front then sends new uploads to the other nodes.
    public var closeWhenUnready = false
    /// Incus remotes a destination may name (`REMOTE:INSTANCE`, `--remote`), configured
    /// with the `incus` client (`incus remote add`).
    public var remotes: [String] = []
    /// ``remotes`` as a set, for the contract.
    public var remoteNames: Set<String> { Set(remotes) }
    /// Workers, bounds, retries, durability and retention.
    public var delivery = DeliveryService.Settings()

    public init() {}
}
