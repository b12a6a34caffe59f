/// Why a request head is refused by the HTTP layer before any route sees it.
public enum MalformedHead: Error, Equatable, Sendable {
    /// Its body framing could be read two ways.
    case framing(BodyFraming.Violation)
    /// A NUL byte in the request line or a header field: libevent keeps values as C strings
    /// and would cut them there, so `/srv/x<NUL>y` would be judged as `/srv/x` (RFC 9110
    /// says to reject such a field).
    case nulByte

    /// One line a person can act on.
    public var reason: String {
        switch self {
        case .framing(let violation): violation.reason
        case .nulByte: "the request head holds a NUL byte"
        }
    }
}
