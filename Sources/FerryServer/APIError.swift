import FerryCore
import FerryHTTP
import Foundation

/// Every refusal Ferry answers with, and the one place that maps each to an HTTP status.
enum APIError: Error {
    case notFound(path: String)
    case methodNotAllowed(allowed: String)
    case contract(ContractViolation)
    case badFraming(String)
    case bodyTooLarge(limit: UInt64)
    case queueFull
    case insufficientStorage(String)
    case serverFault(String)

    var status: Int {
        switch self {
        case .notFound: 404
        case .methodNotAllowed: 405
        case .contract, .badFraming: 400
        case .bodyTooLarge: 413
        case .queueFull: 503
        case .insufficientStorage: 507
        case .serverFault: 500
        }
    }

    /// A stable, machine-readable name for the `error` field.
    var code: String {
        switch self {
        case .notFound: "not_found"
        case .methodNotAllowed: "method_not_allowed"
        case .contract(.missingHeader): "missing_header"
        case .contract: "invalid_header"
        case .badFraming: "bad_framing"
        case .bodyTooLarge: "body_too_large"
        case .queueFull: "queue_full"
        case .insufficientStorage: "insufficient_storage"
        case .serverFault: "internal_error"
        }
    }

    /// One line a person can act on.
    var detail: String {
        switch self {
        case .notFound(let path): "no route for \(ContractViolation.quoted(path))"
        case .methodNotAllowed(let allowed): "this route accepts \(allowed)"
        case .contract(let violation): violation.description
        case .badFraming(let reason): reason
        case .bodyTooLarge(let limit): "the body is larger than the limit of \(limit) bytes"
        case .queueFull: "the delivery queue is full; retry later"
        case .insufficientStorage(let reason): "the spool has no room: \(reason)"
        case .serverFault: "the server failed; the upload was not accepted"
        }
    }

    var response: HTTPResponse {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        switch self {
        case .methodNotAllowed(let allowed): headers.append(("Allow", allowed))
        case .queueFull: headers.append(("Retry-After", "5"))
        default: break
        }
        let body = JSON.encode(["error": code, "detail": detail])
        return HTTPResponse(status: status, headers: headers, body: body)
    }
}

/// JSON bodies, encoded with Foundation's encoder.
enum JSON {
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8)) + [0x0a]
    }

    static func response(
        _ status: Int, _ value: some Encodable, headers: [(name: String, value: String)] = []
    )
        -> HTTPResponse
    {
        HTTPResponse(
            status: status, headers: [("Content-Type", "application/json")] + headers, body: encode(value))
    }
}
