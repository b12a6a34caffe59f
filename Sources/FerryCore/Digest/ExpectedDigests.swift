import Foundation
import RawStructuredFieldValues

/// Digests a client announced for a body, to be compared once its last byte is written.
public struct ExpectedDigests: Sendable, Equatable {
    /// Digest bytes by algorithm; several headers may name the same one (all must match).
    public var values: [(algorithm: DigestAlgorithm, digest: [UInt8], field: String)] = []

    public init() {}

    public var isEmpty: Bool { values.isEmpty }

    /// The algorithms to compute.
    public var algorithms: Set<DigestAlgorithm> { Set(values.map(\.algorithm)) }

    public static func == (lhs: ExpectedDigests, rhs: ExpectedDigests) -> Bool {
        lhs.values.elementsEqual(rhs.values) {
            $0.algorithm == $1.algorithm && $0.digest == $1.digest && $0.field == $1.field
        }
    }

    /// Adds the digests of an RFC 9530 field (`Content-Digest`, `Repr-Digest`): a
    /// structured-field dictionary of byte sequences. Algorithms other than `sha-256` and
    /// `sha-512` are ignored, as the RFC allows.
    ///
    /// - Throws: ``DigestFieldError`` for a value that is not such a dictionary, or a digest
    ///   of the wrong size.
    public mutating func add(rfc9530Field field: String, value: String) throws(DigestFieldError) {
        var parser = StructuredFieldValueParser(Array(value.utf8))
        let dictionary: OrderedMap<String, ItemOrInnerList>
        do {
            dictionary = try parser.parseDictionaryFieldValue()
        } catch {
            throw DigestFieldError(field: field, reason: "is not a structured-field dictionary")
        }
        for (key, member) in dictionary {
            guard let algorithm = DigestAlgorithm(rfc9530Name: key) else { continue }
            guard case .item(let item) = member, case .undecodedByteSequence(let base64) = item.bareItem
            else {
                throw DigestFieldError(field: field, reason: "\(key) must be a byte sequence (:BASE64:)")
            }
            guard let digest = Self.decode(base64), digest.count == algorithm.digestSize else {
                throw DigestFieldError(
                    field: field, reason: "\(key) must hold \(algorithm.digestSize) bytes in base64")
            }
            values.append((algorithm, Array(digest), field))
        }
    }

    /// Adds tus's `Upload-Checksum: ALGORITHM BASE64`.
    ///
    /// - Throws: ``DigestFieldError`` for another shape, an algorithm not offered or a
    ///   digest of the wrong size.
    public mutating func add(tusChecksum value: String) throws(DigestFieldError) {
        let parts = value.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2 else {
            throw DigestFieldError(field: "Upload-Checksum", reason: "must be 'ALGORITHM BASE64'")
        }
        guard let algorithm = DigestAlgorithm(tusName: String(parts[0])) else {
            throw DigestFieldError(
                field: "Upload-Checksum",
                reason:
                    "algorithm \(ContractViolation.quoted(String(parts[0]))) is not one of sha1, sha256, md5")
        }
        guard let digest = Self.decode(String(parts[1])), digest.count == algorithm.digestSize else {
            throw DigestFieldError(
                field: "Upload-Checksum", reason: "must hold \(algorithm.digestSize) bytes in base64")
        }
        values.append((algorithm, Array(digest), "Upload-Checksum"))
    }

    /// Base64, with or without its `=` padding (RFC 8941 asks parsers to accept both).
    private static func decode(_ text: String) -> Data? {
        let padding = (4 - text.utf8.count % 4) % 4
        return Data(base64Encoded: text + String(repeating: "=", count: padding == 3 ? 0 : padding))
    }

    /// The first announced digest that `computed` does not match, or nil when all match.
    public func mismatch(_ computed: [DigestAlgorithm: [UInt8]]) -> (
        algorithm: DigestAlgorithm, field: String
    )? {
        values.first { computed[$0.algorithm] != $0.digest }.map { ($0.algorithm, $0.field) }
    }
}

/// An RFC 9530 or tus digest field that cannot be read.
public struct DigestFieldError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public var description: String { "\(field) \(reason)" }
}
