import FerryCore

/// Everything a Ferry process is told at start-up.
public struct FerryConfiguration: Sendable {
    public var listen = "127.0.0.1:8080"
    public var spoolDirectory = "/var/spool/ferry"
    public var incus = "incus"
    public var workers = 4
    public var queueCapacity = 1000
    public var maxBodySize: UInt64 = 1 << 30
    public var pushTimeout = 300.0
    public var retryPolicy = RetryPolicy()
    /// Seconds a connection may stay silent (between requests or mid-body).
    public var idleTimeout: Int32 = 60

    public init() {}
}
