import Dispatch

/// Bytes already written to the spool and held, without a copy, until they are hashed.
public protocol HashableBytes: Sendable {
    /// The number of bytes.
    var count: Int { get }
    /// Calls `body` with each contiguous piece, in order.
    func forEachRegion(_ body: (UnsafeRawBufferPointer) -> Void)
}

/// The digests of a body, computed off the event loop as its bytes are written.
///
/// Why off the loop: one core hashes SHA-256 at about 1.5 GB/s, about what one loop
/// receives, so hashing on the loop would halve a large upload. The loop hands each written
/// batch over (the bytes themselves, not a copy: no second read of the file) and goes on
/// reading; a serial queue per upload hashes them in order. At most ``maxPendingBatches``
/// wait for it (a batch is one write, at most 256 KiB): past that the loop waits for the
/// oldest to be hashed (a fraction of a millisecond), so memory stays bounded however
/// fast the client sends, and the two keep working side by side. (Waiting for the whole
/// queue to drain instead made them take turns: half the speed.)
public final class StreamHasher: @unchecked Sendable {
    /// Batches handed over and not hashed yet, past which ``feed(_:)`` waits.
    public static let maxPendingBatches = 4

    private let queue = DispatchQueue(label: "ferry.hash")
    private let slots = DispatchSemaphore(value: StreamHasher.maxPendingBatches)
    /// Touched only on `queue`.
    private var digests: [RunningDigest]

    /// - Parameter digests: the hashes to go on with (a resumed upload's, or new ones).
    public init(_ digests: [RunningDigest]) {
        self.digests = digests
    }

    /// Hashes `bytes` after those given before.
    public func feed(_ bytes: any HashableBytes) {
        guard bytes.count > 0 else { return }
        slots.wait()
        queue.async { [self] in
            bytes.forEachRegion { region in
                for index in digests.indices { digests[index].update(region) }
            }
            slots.signal()
        }
    }

    /// Calls `completion` on the hasher's queue with the hashes of every byte fed so far.
    public func whenHashed(_ completion: @escaping @Sendable ([RunningDigest]) -> Void) {
        queue.async { [self] in completion(digests) }
    }

    /// The hashes of every byte fed so far, once they are hashed (waits for that).
    public func hashed() -> [RunningDigest] {
        queue.sync { digests }
    }
}

extension Array where Element == RunningDigest {
    /// The finished digest of each algorithm.
    public var finalized: [DigestAlgorithm: [UInt8]] {
        var digests: [DigestAlgorithm: [UInt8]] = [:]
        for digest in self { digests[digest.algorithm] = digest.finalize() }
        return digests
    }
}
