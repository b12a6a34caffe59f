/// A request as known once its headers are parsed, before any body byte is read.
public struct HTTPRequestHead: Sendable {
    /// The method as sent (`GET`, `POST`, ...).
    public var method: String
    /// The path of the request target, without the query.
    public var path: String
    /// The query string after `?`, if any.
    public var query: String?
    /// Header fields in arrival order; names as sent.
    public var headers: [(name: String, value: String)]
    /// The peer's address as `host:port`.
    public var peer: String
    /// Names of the header fields whose value is not UTF-8 (as sent). Their value in
    /// `headers` has each bad sequence replaced by U+FFFD, so it is not what the client sent.
    public var notUTF8: [String] = []
    /// How the body is delimited, as the HTTP layer judged it before any route saw the
    /// head (a head whose framing could be read two ways never reaches a route).
    public var framing = BodyFraming.none
    /// The id this request goes by in logs and answers: the client's `X-Request-Id` when it
    /// is usable, else one made up by the server.
    public var requestID: String

    public init(
        method: String, path: String, query: String?, headers: [(name: String, value: String)],
        peer: String, requestID: String = ""
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.peer = peer
        self.requestID = requestID
    }

    /// All values of the header `name`, compared case-insensitively.
    public func values(of name: String) -> [String] {
        let wanted = name.lowercased()
        return headers.compactMap { $0.name.lowercased() == wanted ? $0.value : nil }
    }

    /// Whether some value of the header `name` is not UTF-8 (compared case-insensitively).
    public func isNotUTF8(_ name: String) -> Bool {
        let wanted = name.lowercased()
        return notUTF8.contains { $0.lowercased() == wanted }
    }

    /// The single value of header `name`, or nil if it is absent.
    public func value(of name: String) -> String? {
        values(of: name).first
    }
}
