import Crypto
import Foundation

/// Something that answers HTTP on a loopback port: a Ferry, or an nginx in front of one.
protocol HTTPEndpoint {
    var port: UInt16 { get }
}

extension FerryProcess: HTTPEndpoint {}
extension Nginx: HTTPEndpoint {}

/// tus requests over raw sockets, as a tus client sends them.
enum Tus {
    static let resumable = ("Tus-Resumable", "1.0.0")
    static let patchType = ("Content-Type", "application/offset+octet-stream")

    /// `Upload-Metadata` of `pairs` (values base64-encoded).
    static func metadata(_ pairs: [(String, String)]) -> String {
        pairs.map { "\($0.0) \(Data($0.1.utf8).base64EncodedString())" }.joined(separator: ",")
    }

    /// Creates an upload to `container`:`path`; returns the answer.
    static func create(
        _ ferry: some HTTPEndpoint, length: Int?, container: String = "c1", path: String,
        metadata extra: [(String, String)] = [], headers: [(String, String)] = [], body: [UInt8] = []
    ) throws -> RawResponse {
        var fields = [
            resumable, ("Upload-Metadata", metadata([("container", container), ("path", path)] + extra)),
        ]
        fields.append(length.map { ("Upload-Length", String($0)) } ?? ("Upload-Defer-Length", "1"))
        if !body.isEmpty { fields.append(patchType) }
        return try request(ferry, "POST", "/files/", fields + headers, body: body)
    }

    /// Creates an upload and returns its `Location` (fails the test's setup if not 201).
    static func location(
        _ ferry: some HTTPEndpoint, length: Int?, container: String = "c1", path: String,
        metadata extra: [(String, String)] = [], headers: [(String, String)] = []
    ) throws -> String {
        let response = try create(
            ferry, length: length, container: container, path: path, metadata: extra, headers: headers)
        guard response.status == 201, let location = response.header("Location") else {
            throw TestSetupError(
                "creation answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
        return location
    }

    static func patch(
        _ ferry: some HTTPEndpoint, _ location: String, offset: Int, _ body: [UInt8],
        headers: [(String, String)] = []
    ) throws -> RawResponse {
        try request(
            ferry, "PATCH", location, [resumable, patchType, ("Upload-Offset", String(offset))] + headers,
            body: body)
    }

    static func head(_ ferry: some HTTPEndpoint, _ location: String, headers: [(String, String)] = []) throws
        -> RawResponse
    {
        let client = try RawHTTPClient(port: ferry.port)
        try client.sendHead("HEAD", location, [resumable] + headers)
        return try client.readResponse(toHead: true)
    }

    /// The offset HEAD reports (fails the test's setup if it is not 200).
    static func offset(_ ferry: some HTTPEndpoint, _ location: String, headers: [(String, String)] = [])
        throws
        -> Int
    {
        let response = try head(ferry, location, headers: headers)
        guard response.status == 200, let offset = response.header("Upload-Offset").flatMap(Int.init) else {
            throw TestSetupError("HEAD answered \(response.status)")
        }
        return offset
    }

    static func request(
        _ ferry: some HTTPEndpoint, _ method: String, _ target: String, _ headers: [(String, String)],
        body: [UInt8] = []
    ) throws -> RawResponse {
        let client = try RawHTTPClient(port: ferry.port)
        let length =
            method == "POST" || method == "PATCH" || !body.isEmpty
            ? [("Content-Length", String(body.count))] : []
        try client.sendHead(method, target, headers + length)
        if !body.isEmpty { try client.send(body) }
        return try client.readResponse()
    }

    /// The task id in a location (`/files/ID`).
    static func id(_ location: String) -> String {
        String(location.split(separator: "/").last ?? "")
    }
}

/// Digests of test bodies, in the forms the protocols carry them.
enum Digests {
    enum Algorithm { case sha1, sha256, sha512, md5 }

    static func bytes(_ algorithm: Algorithm, _ body: [UInt8]) -> [UInt8] {
        switch algorithm {
        case .sha1: Array(Insecure.SHA1.hash(data: body))
        case .sha256: Array(SHA256.hash(data: body))
        case .sha512: Array(SHA512.hash(data: body))
        case .md5: Array(Insecure.MD5.hash(data: body))
        }
    }

    static func base64(_ algorithm: Algorithm, _ body: [UInt8]) -> String {
        Data(bytes(algorithm, body)).base64EncodedString()
    }
}
