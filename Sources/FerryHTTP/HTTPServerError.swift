/// Why the HTTP layer could not start.
public enum HTTPServerError: Error, CustomStringConvertible {
    case eventLoop(String)
    case invalidAddress(String)
    case bind(address: String, reason: String)
    case streamingUnavailable(String)

    public var description: String {
        switch self {
        case .eventLoop(let reason): "event loop: \(reason)"
        case .invalidAddress(let address): "not a HOST:PORT address: \(address)"
        case .bind(let address, let reason): "cannot listen on \(address): \(reason)"
        case .streamingUnavailable(let reason): "request streaming is not active: \(reason)"
        }
    }
}
