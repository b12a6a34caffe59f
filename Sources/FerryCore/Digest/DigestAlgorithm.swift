import Crypto

/// A hash function an upload's bytes can be checked against: those of RFC 9530 (`sha-256`,
/// `sha-512`) and those of tus's checksum extension (`sha1`, `sha256`, `md5`).
public enum DigestAlgorithm: String, Sendable, Hashable, CaseIterable {
    case sha256, sha512, sha1, md5

    /// The name in RFC 9530's `Content-Digest` and `Repr-Digest` (only the two it keeps
    /// active).
    public init?(rfc9530Name name: String) {
        switch name {
        case "sha-256": self = .sha256
        case "sha-512": self = .sha512
        default: return nil
        }
    }

    /// The name in tus's `Upload-Checksum` and `Tus-Checksum-Algorithm`.
    public init?(tusName name: String) {
        switch name {
        case "sha1": self = .sha1
        case "sha256": self = .sha256
        case "md5": self = .md5
        default: return nil
        }
    }

    /// The name RFC 9530 gives it (nil for those it deprecates).
    public var rfc9530Name: String? {
        switch self {
        case .sha256: "sha-256"
        case .sha512: "sha-512"
        case .sha1, .md5: nil
        }
    }

    /// The size of a digest, in bytes.
    public var digestSize: Int {
        switch self {
        case .sha256: SHA256.byteCount
        case .sha512: SHA512.byteCount
        case .sha1: Insecure.SHA1.byteCount
        case .md5: Insecure.MD5.byteCount
        }
    }
}

/// One hash being computed: a value, so a copy is a snapshot (swift-crypto's hash states
/// are copied on write, like an array, which is what makes sending a copy safe; 3.x does
/// not mark them Sendable).
public struct RunningDigest: @unchecked Sendable {
    private enum State {
        case sha256(SHA256)
        case sha512(SHA512)
        case sha1(Insecure.SHA1)
        case md5(Insecure.MD5)
        /// Only while ``update(_:)`` runs.
        case taken
    }

    public let algorithm: DigestAlgorithm
    private var state: State

    public init(_ algorithm: DigestAlgorithm) {
        self.algorithm = algorithm
        switch algorithm {
        case .sha256: state = .sha256(SHA256())
        case .sha512: state = .sha512(SHA512())
        case .sha1: state = .sha1(Insecure.SHA1())
        case .md5: state = .md5(Insecure.MD5())
        }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        // The state is taken out first: a hash held twice (in the enum and in the local)
        // would be copied on write, an allocation for every batch.
        let current = state
        state = .taken
        switch consume current {
        case .sha256(var hash):
            hash.update(bufferPointer: bytes)
            state = .sha256(hash)
        case .sha512(var hash):
            hash.update(bufferPointer: bytes)
            state = .sha512(hash)
        case .sha1(var hash):
            hash.update(bufferPointer: bytes)
            state = .sha1(hash)
        case .md5(var hash):
            hash.update(bufferPointer: bytes)
            state = .md5(hash)
        case .taken:
            preconditionFailure("a digest updated while it is being updated")
        }
    }

    /// The digest of everything given so far (the state itself is left as it is).
    public func finalize() -> [UInt8] {
        switch state {
        case .sha256(let hash): Array(hash.finalize())
        case .sha512(let hash): Array(hash.finalize())
        case .sha1(let hash): Array(hash.finalize())
        case .md5(let hash): Array(hash.finalize())
        case .taken: preconditionFailure("a digest finalized while it is being updated")
        }
    }
}

extension Array where Element == UInt8 {
    /// Lowercase hexadecimal, two digits a byte.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(count * 2)
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
