/// A response: status, extra header fields, and a body held in memory or written over
/// time by a ``HTTPResponseStream``.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Writes the body after the head, instead of `body` (a HEAD request gets neither).
    public var stream: (any HTTPResponseStream)?

    public init(
        status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
        stream: (any HTTPResponseStream)? = nil
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream
    }
}
