import Foundation

/// Sends uploads the way a well-behaved client does.
enum Uploads {
    /// POSTs `body` to /upload with a Content-Length and returns the answer.
    static func post(to ferry: FerryProcess, _ headers: [(String, String)], body: [UInt8]) throws
        -> RawResponse
    {
        let client = try RawHTTPClient(port: ferry.port)
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
