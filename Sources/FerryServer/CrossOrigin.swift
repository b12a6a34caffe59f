import FerryHTTP

/// CORS for the origins named with `--cors-origin`: the preflight answers, and the headers
/// that let a page of such an origin read Ferry's answers. None by default: a browser on
/// another origin then reads nothing.
public struct CrossOrigin: Sendable {
    /// Request headers a page may send: the upload contract, tus, digests and the token.
    static let allowedHeaders = [
        "Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id",
        "X-Container-Name", "X-File-Path", "X-Host-Path", "X-File-Mode", "X-File-Uid", "X-File-Gid",
        "X-Create-Dirs", "Tus-Resumable", "Upload-Length", "Upload-Defer-Length", "Upload-Metadata",
        "Upload-Offset", "Upload-Checksum", "Content-Digest", "Repr-Digest", "Want-Repr-Digest",
    ].joined(separator: ", ")
    /// Answer headers a page may read.
    static let exposedHeaders = [
        "Location", "Content-Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Upload-Metadata",
        "Upload-Defer-Length",
        "Tus-Resumable", "Tus-Version", "Tus-Max-Size", "Tus-Extension", "Tus-Checksum-Algorithm",
        "Repr-Digest", "X-Request-Id", "Retry-After",
    ].joined(separator: ", ")
    /// Seconds a browser may keep a preflight's answer.
    static let maxAge = "600"

    private let origins: Set<String>

    public init(origins: [String]) {
        self.origins = Set(origins.map { $0.lowercased() })
    }

    /// Whether `text` is an origin: `http` or `https`, a host, maybe a port, nothing else.
    public static func isOrigin(_ text: String) -> Bool {
        let lowered = text.lowercased()
        guard let scheme = ["https://", "http://"].first(where: lowered.hasPrefix) else { return false }
        let authority = lowered.dropFirst(scheme.count)
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@") else { return false }
        return authority.allSatisfy { $0.isLetter || $0.isNumber || "-.:[]".contains($0) }
    }

    /// The allowed origin `head` comes from, if it names one.
    func allowedOrigin(of head: HTTPRequestHead) -> String? {
        let values = head.values(of: "Origin")
        guard values.count == 1, let origin = values.first, origins.contains(origin.lowercased()) else {
            return nil
        }
        return origin
    }

    /// Whether `head` is a preflight (`OPTIONS` with `Access-Control-Request-Method`).
    static func isPreflight(_ head: HTTPRequestHead) -> Bool {
        head.method == "OPTIONS" && !head.values(of: "Origin").isEmpty
            && !head.values(of: "Access-Control-Request-Method").isEmpty
    }

    /// The headers every answer to an allowed origin carries.
    func headers(for head: HTTPRequestHead) -> [(name: String, value: String)] {
        guard !origins.isEmpty else { return [] }
        guard let origin = allowedOrigin(of: head) else { return [("Vary", "Origin")] }
        return [
            ("Access-Control-Allow-Origin", origin), ("Access-Control-Expose-Headers", Self.exposedHeaders),
            ("Vary", "Origin"),
        ]
    }

    /// The answer to a preflight for a route that takes `methods`.
    func preflight(_ head: HTTPRequestHead, methods: String) -> HTTPResponse? {
        guard allowedOrigin(of: head) != nil else { return nil }
        return HTTPResponse(
            status: 204,
            headers: [
                ("Access-Control-Allow-Methods", methods),
                ("Access-Control-Allow-Headers", Self.allowedHeaders),
                ("Access-Control-Max-Age", Self.maxAge),
            ])
    }
}
