/// Request ids: the one a client (or a proxy in front) sent in `X-Request-Id`, or a new one.
///
/// Every answer carries the id back, so a client can quote it and an operator can find the
/// request's log lines.
public enum RequestID {
    /// The header that carries the id both ways.
    public static let header = "X-Request-Id"

    /// `value` if it can serve as an id: 1-128 visible ASCII characters, nothing that could
    /// break a log line or a header.
    public static func adopt(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count),
            value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f })
        else { return nil }
        return value
    }

    /// A new id: 16 hex digits from the system's random source.
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let bits = String(generator.next() as UInt64, radix: 16)
        return String(repeating: "0", count: 16 - bits.count) + bits
    }
}
