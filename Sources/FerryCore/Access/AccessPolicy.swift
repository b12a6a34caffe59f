import Crypto
import Foundation
import Yams

/// The tokens Ferry accepts, read from the `--tokens` file (YAML).
///
/// ```yaml
/// tokens:
///   - name: ci-deployer
///     sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
///     containers: ["web-*", "api"]
///     paths: ["/srv/app", "/etc/app"]
///     max_upload: 100M
///     allow_setid: false
///     allow_owner: false
///     max_queued: 100
///     max_spool_bytes: 2G
/// ```
///
/// A key Ferry does not know is an error, not a silence: a misspelled `max-upload` would
/// otherwise leave its limit unenforced.
public struct AccessPolicy: Sendable, Equatable {
    public var rules: [TokenRule]

    public init(rules: [TokenRule]) {
        self.rules = rules
    }

    /// Reads and checks a policy file.
    ///
    /// - Throws: ``PolicyError`` naming the file, the token and the problem.
    public static func load(path: String) throws(PolicyError) -> AccessPolicy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PolicyError("cannot read \(path)")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    /// Parses policy text (YAML).
    public static func parse(_ text: String, source: String = "policy") throws(PolicyError) -> AccessPolicy {
        let file: PolicyFile
        do {
            file = try YAMLDecoder().decode(PolicyFile.self, from: text)
        } catch {
            throw PolicyError("\(source): not a valid policy: \(Self.describe(error))")
        }
        var rules: [TokenRule] = []
        var names = Set<String>()
        var digests = Set<[UInt8]>()
        for (index, entry) in file.tokens.enumerated() {
            let label = "\(source): token \(index + 1) (\(entry.name))"
            guard !entry.name.isEmpty, names.insert(entry.name).inserted else {
                throw PolicyError("\(label): names must be present and unique")
            }
            guard let digest = Self.hexBytes(entry.sha256), digest.count == 32 else {
                throw PolicyError(
                    "\(label): sha256 must be 64 hex digits (the SHA-256 of the token, never the token)")
            }
            guard digests.insert(digest).inserted else { throw PolicyError("\(label): the same token twice") }
            guard !entry.containers.isEmpty else { throw PolicyError("\(label): containers is empty") }
            for pattern in entry.containers
            where pattern.isEmpty
                || !pattern.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-*?".contains($0)) })
            {
                throw PolicyError(
                    "\(label): container pattern '\(pattern)' may hold letters, digits, '-', '*', '?'")
            }
            guard !entry.paths.isEmpty else { throw PolicyError("\(label): paths is empty") }
            for prefix in entry.paths {
                let trimmed = prefix.count > 1 && prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
                if trimmed != "/", let problem = DestinationPath.problem(with: trimmed) {
                    throw PolicyError("\(label): path prefix '\(prefix)': \(problem)")
                }
            }
            var maxUpload: UInt64?
            if let text = entry.maxUpload {
                guard let bytes = ByteCount.parse(text) else {
                    throw PolicyError("\(label): max_upload '\(text)' is not a size (e.g. 512K, 100M, 2G)")
                }
                maxUpload = bytes
            }
            var maxSpoolBytes: UInt64?
            if let text = entry.maxSpoolBytes {
                guard let bytes = ByteCount.parse(text) else {
                    throw PolicyError(
                        "\(label): max_spool_bytes '\(text)' is not a size (e.g. 512K, 100M, 2G)")
                }
                maxSpoolBytes = bytes
            }
            if let maxQueued = entry.maxQueued, maxQueued < 1 {
                throw PolicyError("\(label): max_queued must be at least 1")
            }
            rules.append(
                TokenRule(
                    name: entry.name, digest: digest, containers: entry.containers, pathPrefixes: entry.paths,
                    maxUpload: maxUpload, allowSetID: entry.allowSetID ?? false,
                    allowOwner: entry.allowOwner ?? false, maxQueued: entry.maxQueued,
                    maxSpoolBytes: maxSpoolBytes, remotes: entry.remotes ?? []))
        }
        return AccessPolicy(rules: rules)
    }

    /// The rule whose token is `token`, comparing digests in constant time and always
    /// against every rule, so timing tells nothing about which tokens exist.
    public func rule(forToken token: String) -> TokenRule? {
        let presented = Array(SHA256.hash(data: Data(token.utf8)))
        var found: TokenRule?
        for rule in rules where Self.constantTimeEqual(rule.digest, presented) {
            found = rule
        }
        return found
    }

    /// The SHA-256 of a token as 64 hex digits (what a policy file stores).
    public static func digest(ofToken token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func constantTimeEqual(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }

    private static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.lowercased().utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16)
            else {
                return nil
            }
            bytes.append(byte)
        }
        return bytes
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            "missing '\(key.stringValue)' at \(path(context))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            "\(context.debugDescription) at \(path(context))"
        default:
            "\(error)"
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(
            separator: ".")
        return path.isEmpty ? "top level" : path
    }
}

/// The file's shape. Both levels refuse keys they do not know.
private struct PolicyFile: Decodable {
    struct Entry: Decodable {
        var name: String
        var sha256: String
        var containers: [String]
        var paths: [String]
        var maxUpload: String?
        var allowSetID: Bool?
        var allowOwner: Bool?
        var maxQueued: Int?
        var maxSpoolBytes: String?
        var remotes: [String]?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, sha256, containers, paths, remotes
            case maxUpload = "max_upload"
            case allowSetID = "allow_setid"
            case allowOwner = "allow_owner"
            case maxQueued = "max_queued"
            case maxSpoolBytes = "max_spool_bytes"
        }

        init(from decoder: any Decoder) throws {
            try KnownKeys.check(decoder, CodingKeys.self)
            let values = try decoder.container(keyedBy: CodingKeys.self)
            name = try values.decode(String.self, forKey: .name)
            sha256 = try values.decode(String.self, forKey: .sha256)
            containers = try values.decode([String].self, forKey: .containers)
            paths = try values.decode([String].self, forKey: .paths)
            maxUpload = try values.decodeIfPresent(String.self, forKey: .maxUpload)
            allowSetID = try values.decodeIfPresent(Bool.self, forKey: .allowSetID)
            allowOwner = try values.decodeIfPresent(Bool.self, forKey: .allowOwner)
            maxQueued = try values.decodeIfPresent(Int.self, forKey: .maxQueued)
            maxSpoolBytes = try values.decodeIfPresent(String.self, forKey: .maxSpoolBytes)
            remotes = try values.decodeIfPresent([String].self, forKey: .remotes)
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tokens
    }

    var tokens: [Entry]

    init(from decoder: any Decoder) throws {
        try KnownKeys.check(decoder, CodingKeys.self)
        tokens = try decoder.container(keyedBy: CodingKeys.self).decode([Entry].self, forKey: .tokens)
    }
}

/// Refuses a mapping that holds a key outside `Keys`, naming it.
private enum KnownKeys {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static func check<Keys: CodingKey & CaseIterable>(_ decoder: any Decoder, _ keys: Keys.Type) throws {
        let known = Set(Keys.allCases.map(\.stringValue))
        let present = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
        if let unknown = present.sorted().first(where: { !known.contains($0) }) {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription:
                        "unknown key '\(unknown)' (known: \(Keys.allCases.map(\.stringValue).joined(separator: ", ")))"
                ))
        }
    }
}

/// A policy file that cannot be used, with a message naming where and why.
public struct PolicyError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
