/// How a request says its body is delimited, judged from the head on every route.
///
/// libevent accepts framings that two parties could read differently (Debian's patch
/// refuses `Transfer-Encoding` with `Content-Length` and `identity`, but takes two
/// `Content-Length`s and uses the first), so every request is checked here before any
/// route sees it.
public enum BodyFraming: Equatable, Sendable {
    /// No body.
    case none
    /// `Content-Length: N`.
    case length(UInt64)
    /// `Transfer-Encoding: chunked`.
    case chunked

    /// The framing of `head`, or why it is refused.
    public static func of(_ head: HTTPRequestHead) -> Result<BodyFraming, Violation> {
        let lengths = head.values(of: "Content-Length")
        let encodings = head.values(of: "Transfer-Encoding")
        if lengths.count > 1 { return .failure(Violation("Content-Length appears more than once")) }
        if !encodings.isEmpty {
            if !lengths.isEmpty {
                return .failure(Violation("Content-Length together with Transfer-Encoding"))
            }
            if encodings.count > 1 || encodings[0].lowercased() != "chunked" {
                return .failure(Violation("the only Transfer-Encoding accepted is chunked"))
            }
            return .success(.chunked)
        }
        guard let text = lengths.first else { return .success(.none) }
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let length = UInt64(text)
        else { return .failure(Violation("Content-Length is not a number")) }
        return .success(length == 0 ? .none : .length(length))
    }

    /// The announced length, nil for a chunked body or none.
    public var announcedLength: UInt64? {
        if case .length(let length) = self { return length }
        return self == .none ? 0 : nil
    }

    /// A framing that is refused, and why (one line).
    public struct Violation: Error, Equatable, Sendable {
        public var reason: String

        public init(_ reason: String) {
            self.reason = reason
        }
    }
}
