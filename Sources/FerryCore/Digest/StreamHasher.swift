import Dispatch
import Synchronization

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
/// reading; a serial queue per upload hashes them in order. At most ``maxPendingBytes``
/// wait for it: past that the loop waits for the hash to catch up (a few milliseconds),
/// so memory stays bounded however fast the client sends.
public final class StreamHasher: @unchecked Sendable {
    /// Bytes handed over and not hashed yet, past which ``feed(_:)`` waits.
    public static let maxPendingBytes = 4 << 20

    private let queue = DispatchQueue(label: "ferry.hash")
    private let pending = Atomic(0)
    /// Touched only on `queue`.
    private var digests: [RunningDigest]

    /// - Parameter digests: the hashes to go on with (a resumed upload's, or new ones).
    public init(_ digests: [RunningDigest]) {
        self.digests = digests
    }

    /// Hashes `bytes` after those given before.
    public func feed(_ bytes: any HashableBytes) {
        let count = bytes.count
        guard count > 0 else { return }
        let waiting = pending.add(count, ordering: .relaxed).newValue
        queue.async { [self] in
            bytes.forEachRegion { region in
                for index in digests.indices { digests[index].update(region) }
            }
            pending.subtract(count, ordering: .relaxed)
        }
        if waiting > Self.maxPendingBytes { queue.sync {} }
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
