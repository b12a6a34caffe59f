import FerryHTTP

/// What a read-only route without parameters (`/stats`, `/events`, `/deliveries`) refuses
/// from its head: another method than GET or HEAD, or any query.
enum ReadOnlyRoute {
    static func refusal(_ head: HTTPRequestHead) -> APIError? {
        guard head.method == "GET" || head.method == "HEAD" else {
            return .methodNotAllowed(allowed: "GET, HEAD")
        }
        if head.query.map({ !$0.isEmpty }) ?? false { return .badQuery("\(head.path) takes no query") }
        return nil
    }
}
