/// Decides, from the head alone, what happens to a request.
///
/// Called on the event loop's thread before any body byte is read (so before `100 Continue`).
public protocol HTTPHandler: AnyObject {
    func admit(_ head: HTTPRequestHead) -> HTTPAdmission
    /// The answer to `head` was handed to libevent (for counting; called on the loop's
    /// thread). Answers libevent makes on its own (its 400 and 413) are not reported.
    func answered(_ head: HTTPRequestHead, status: Int)
    /// The answer to a head the HTTP layer refuses (the connection is closed after it).
    func malformed(_ head: HTTPRequestHead, _ problem: MalformedHead) -> HTTPResponse
    /// Accepting a connection failed with `errno` (descriptors or memory ran out); the
    /// listener pauses for `pause` seconds instead of trying again at once. Called on the
    /// loop's thread.
    func acceptFailed(errno: Int32, pause: Double)
    /// Header fields added to every answer to `head` (CORS, say), whoever made it.
    func extraHeaders(for head: HTTPRequestHead) -> [(name: String, value: String)]
}

extension HTTPHandler {
    public func answered(_ head: HTTPRequestHead, status: Int) {}
    public func malformed(_ head: HTTPRequestHead, _ problem: MalformedHead) -> HTTPResponse {
        HTTPResponse(
            status: 400, headers: [("Content-Type", "text/plain; charset=utf-8")],
            body: Array((problem.reason + "\n").utf8))
    }
    public func acceptFailed(errno: Int32, pause: Double) {}
    public func extraHeaders(for head: HTTPRequestHead) -> [(name: String, value: String)] { [] }
}

/// The outcome of judging a request head.
public enum HTTPAdmission {
    /// Answer now; the body is never read and the connection is closed after the answer.
    case reject(HTTPResponse)
    /// Read the body into `consumer`.
    case accept(HTTPBodyConsumer)
}

/// What a consumer wants after a piece of body.
public enum HTTPBodyVerdict {
    case proceed
    /// Stop reading, answer with this and close the connection.
    case stop(HTTPResponse)
}

/// Receives one request's body as it arrives. All calls come on the loop's thread.
public protocol HTTPBodyConsumer: AnyObject {
    /// A piece of body arrived. Move what you keep out of `chunk` before returning.
    func consume(_ chunk: BodyChunk) -> HTTPBodyVerdict
    /// The whole body arrived. Call `respond` exactly once, from any thread.
    func finish(respond: @escaping @Sendable (HTTPResponse) -> Void)
    /// The body will never complete (client gone, malformed framing, size limit).
    func abort(reason: String)
}
