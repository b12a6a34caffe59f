import Foundation

/// Sends uploads the way a well-behaved client does.
enum Uploads {
    /// POSTs `body` to /upload with a Content-Length and returns the answer.
    static func post(to ferry: FerryProcess, _ headers: [(String, String)], body: [UInt8]) throws
        -> RawResponse
    {
        try postPort(ferry.port, headers, body: body)
    }

    /// POSTs `body` to /upload on loopback `port` (Ferry's, or a proxy's).
    static func postPort(_ port: UInt16, _ headers: [(String, String)], body: [UInt8]) throws -> RawResponse {
        let client = try RawHTTPClient(port: port)
        try client.sendHead("POST", "/upload", headers + [("Content-Length", String(body.count))])
        try client.send(body)
        return try client.readResponse()
    }

    /// The task id of a 202 answer.
    static func taskID(_ response: RawResponse) -> String {
        response.json["id"] as? String ?? "(no id)"
    }
}

/// Polls `condition` until it holds (a state to reach, not a delay to hope with).
func waitUntil(_ what: String, timeout: Double = 30, _ condition: () throws -> Bool) throws {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while try !condition() {
        guard Date() < deadline else { throw TestSetupError("timed out waiting until \(what)") }
        usleep(10_000)
    }
}

/// The `/tasks` API, over raw sockets.
enum TaskAPI {
    static func request(_ ferry: FerryProcess, _ method: String, _ target: String, token: String? = nil)
        throws
        -> RawResponse
    {
        try requestPort(ferry.port, method, target, token: token)
    }

    /// A request without a body to loopback `port` (Ferry's, or a proxy's).
    static func requestPort(_ port: UInt16, _ method: String, _ target: String, token: String? = nil) throws
        -> RawResponse
    {
        let client = try RawHTTPClient(port: port)
        try client.sendHead(method, target, token.map { [("Authorization", "Bearer \($0)")] } ?? [])
        return try client.readResponse()
    }

    /// The status of task `id` (fails the test if it is not 200).
    static func get(_ ferry: FerryProcess, _ id: String, token: String? = nil) throws -> [String: Any] {
        let response = try request(ferry, "GET", "/tasks/\(id)", token: token)
        guard response.status == 200 else {
            throw TestSetupError("GET /tasks/\(id) answered \(response.status)")
        }
        return response.json
    }

    static func state(_ ferry: FerryProcess, _ id: String, token: String? = nil) throws -> String {
        try get(ferry, id, token: token)["state"] as? String ?? "?"
    }
}
