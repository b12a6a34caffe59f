import FerryCore
import FerryHTTP
import Foundation

/// Every refusal Ferry answers with, and the one place that maps each to an HTTP status.
enum APIError: Error {
    case notFound(path: String)
    case methodNotAllowed(allowed: String)
    case contract(ContractViolation)
    case badFraming(String)
    /// A head the HTTP layer refuses for what it holds (a NUL byte).
    case malformedHead(String)
    /// A body on a route that takes none.
    case bodyNotAllowed
    case bodyTooLarge(limit: UInt64)
    case queueFull(limit: Int)
    case spoolFull(limit: UInt64)
    /// A token's own `max_queued` or `max_spool_bytes` is reached.
    case quotaExceeded(token: String, rule: String, limit: String)
    case shuttingDown
    case tooManyConnections(limit: Int)
    case unknownTask(String)
    case wrongState(id: String, state: String, allowed: [String])
    case idempotencyKeyInProgress
    /// The key was used for an upload with another destination, mode, owner or length.
    case idempotencyKeyMismatch(id: String)
    case badQuery(String)
    case unauthorized(String)
    case forbidden(AccessRefusal)
    case insufficientStorage(String)
    case serverFault(String)
    /// A digest field (RFC 9530, tus's `Upload-Checksum`) that cannot be read.
    case badDigestField(DigestFieldError)
    /// The bytes do not match a `Content-Digest` or `Repr-Digest`.
    case digestMismatch(field: String, algorithm: String)
    /// tus: no `Tus-Resumable: 1.0.0`.
    case tusVersion
    /// tus: a PATCH that is not `application/offset+octet-stream`.
    case unsupportedMediaType(String)
    /// tus: `Upload-Offset` is not the upload's (shown when it is durable).
    case offsetMismatch(current: UInt64?)
    /// tus: a PATCH's bytes do not match its `Upload-Checksum`.
    case checksumMismatch(algorithm: String)
    case unknownUpload(String)
    /// tus: a newer request for the upload took over from this one.
    case superseded
    /// tus: more bytes than `Upload-Length`.
    case beyondLength(UInt64)
    /// tus: a header of the protocol that cannot be read.
    case badTusHeader(String)
    /// tus: another request holds the upload while it stores its end.
    case uploadLocked
    /// A CORS preflight from an origin not named with `--cors-origin`.
    case originNotAllowed(String)

    var status: Int {
        switch self {
        case .notFound: 404
        case .methodNotAllowed: 405
        case .contract, .badFraming, .malformedHead: 400
        case .bodyTooLarge, .bodyNotAllowed: 413
        case .queueFull, .spoolFull, .quotaExceeded, .shuttingDown, .tooManyConnections: 503
        case .unknownTask: 404
        case .wrongState, .idempotencyKeyInProgress: 409
        case .idempotencyKeyMismatch: 422
        case .badQuery: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .insufficientStorage: 507
        case .serverFault: 500
        case .badDigestField, .digestMismatch, .badTusHeader: 400
        case .tusVersion: 412
        case .unsupportedMediaType: 415
        case .offsetMismatch, .superseded: 409
        case .checksumMismatch: 460
        case .unknownUpload: 404
        case .beyondLength: 413
        case .originNotAllowed: 403
        case .uploadLocked: 423
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
        case .malformedHead: "malformed_head"
        case .bodyTooLarge: "body_too_large"
        case .bodyNotAllowed: "body_not_allowed"
        case .queueFull: "queue_full"
        case .spoolFull: "spool_full"
        case .quotaExceeded: "quota_exceeded"
        case .shuttingDown: "shutting_down"
        case .tooManyConnections: "too_many_connections"
        case .unknownTask: "unknown_task"
        case .wrongState: "wrong_state"
        case .idempotencyKeyInProgress: "idempotency_key_in_progress"
        case .idempotencyKeyMismatch: "idempotency_key_mismatch"
        case .badQuery: "bad_query"
        case .unauthorized: "unauthorized"
        case .forbidden: "forbidden"
        case .insufficientStorage: "insufficient_storage"
        case .serverFault: "internal_error"
        case .badDigestField: "invalid_header"
        case .digestMismatch: "digest_mismatch"
        case .tusVersion: "unsupported_tus_version"
        case .unsupportedMediaType: "unsupported_media_type"
        case .offsetMismatch: "offset_mismatch"
        case .checksumMismatch: "checksum_mismatch"
        case .unknownUpload: "unknown_upload"
        case .superseded: "superseded"
        case .beyondLength: "beyond_upload_length"
        case .badTusHeader: "invalid_header"
        case .originNotAllowed: "origin_not_allowed"
        case .uploadLocked: "upload_locked"
        }
    }

    /// One line a person can act on.
    var detail: String {
        switch self {
        case .notFound(let path): "no route for \(ContractViolation.quoted(path))"
        case .methodNotAllowed(let allowed): "this route accepts \(allowed)"
        case .contract(let violation): violation.description
        case .badFraming(let reason), .malformedHead(let reason): reason
        case .bodyTooLarge(let limit): "the body is larger than the limit of \(limit) bytes"
        case .bodyNotAllowed: "this route takes no request body"
        case .queueFull(let limit): "\(limit) uploads are waiting for delivery; retry later"
        case .spoolFull(let limit): "the spool holds its limit of \(limit) bytes; retry later"
        case .quotaExceeded(let token, let rule, let limit):
            "token '\(token)' holds its quota of \(limit) (rule: \(rule)); retry once its uploads are delivered"
        case .shuttingDown: "the server is shutting down; retry later"
        case .tooManyConnections(let limit): "more than \(limit) connections are open; retry later"
        case .unknownTask(let id): "no task \(ContractViolation.quoted(id))"
        case .wrongState(let id, let state, let allowed):
            "task \(id) is \(state); this needs \(allowed.joined(separator: " or "))"
        case .idempotencyKeyInProgress: "an upload with this Idempotency-Key is still being received"
        case .idempotencyKeyMismatch(let id):
            "this Idempotency-Key was used for task \(id), whose container, destination, mode, owner or length differ"
        case .badQuery(let reason): reason
        case .unauthorized(let reason): reason
        case .forbidden(let refusal): refusal.description
        case .insufficientStorage(let reason): "the spool has no room: \(reason)"
        case .serverFault: "the server failed; the upload was not accepted"
        case .badDigestField(let error): error.description
        case .digestMismatch(let field, let algorithm):
            "the bytes received do not match the \(algorithm) digest in \(field); nothing was kept"
        case .tusVersion: "this route speaks tus: send Tus-Resumable: 1.0.0"
        case .unsupportedMediaType(let type):
            "a PATCH must be Content-Type: application/offset+octet-stream, not \(ContractViolation.quoted(type))"
        case .offsetMismatch(let current):
            "Upload-Offset is not the upload's offset\(current.map { " (\($0))" } ?? ""); ask with HEAD"
        case .checksumMismatch(let algorithm):
            "the PATCH's bytes do not match its \(algorithm) Upload-Checksum; they were discarded"
        case .unknownUpload(let id):
            "no upload \(ContractViolation.quoted(id)) (finished, terminated or expired?)"
        case .superseded:
            "a newer request for this upload took over; this one's bytes after that were dropped"
        case .beyondLength(let length): "the upload would be longer than its Upload-Length of \(length) bytes"
        case .badTusHeader(let reason): reason
        case .originNotAllowed(let origin):
            "origin \(ContractViolation.quoted(origin)) may not call this server from a browser (see --cors-origin)"
        case .uploadLocked: "another request for this upload is storing its end; retry in a moment"
        }
    }

    var response: HTTPResponse {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        switch self {
        case .methodNotAllowed(let allowed): headers.append(("Allow", allowed))
        case .queueFull, .spoolFull, .quotaExceeded, .shuttingDown, .tooManyConnections:
            headers.append(("Retry-After", "5"))
        case .unauthorized: headers.append(("WWW-Authenticate", "Bearer realm=\"ferry\""))
        case .tusVersion: headers.append(("Tus-Version", "1.0.0"))
        case .uploadLocked: headers.append(("Retry-After", "1"))
        case .offsetMismatch(let current?): headers.append(("Upload-Offset", String(current)))
        default: break
        }
        let body = JSON.encode(["error": code, "detail": detail])
        return HTTPResponse(status: status, headers: headers, body: body)
    }
}

extension APIError {
    /// The answer to a bound of ``Capacity`` that is reached.
    init(_ refusal: Capacity.Refusal) {
        switch refusal {
        case .tooManyTasks(let limit): self = .queueFull(limit: limit)
        case .tooManyBytes(let limit): self = .spoolFull(limit: limit)
        case .ownerTasks(let owner, let limit):
            self = .quotaExceeded(token: owner, rule: "max_queued", limit: "\(limit) unfinished uploads")
        case .ownerBytes(let owner, let limit):
            self = .quotaExceeded(token: owner, rule: "max_spool_bytes", limit: "\(limit) bytes")
        }
    }
}

extension APIError {
    /// The answer to an upload refused before, during or at the end of its body.
    init(_ refusal: UploadRefusal) {
        switch refusal {
        case .bodyTooLarge(let limit): self = .bodyTooLarge(limit: limit)
        case .forbidden(let refusal): self = .forbidden(refusal)
        case .capacity(let refusal): self = APIError(refusal)
        case .insufficientStorage(let reason): self = .insufficientStorage(reason)
        case .storage(let reason): self = .serverFault(reason)
        case .idempotencyKeyMismatch(let id): self = .idempotencyKeyMismatch(id: id)
        case .idempotencyKeyInProgress: self = .idempotencyKeyInProgress
        case .digestMismatch(let field, let algorithm):
            self = .digestMismatch(field: field, algorithm: algorithm.rfc9530Name ?? algorithm.rawValue)
        case .checksumMismatch(let algorithm): self = .checksumMismatch(algorithm: algorithm.rawValue)
        case .beyondLength(let length): self = .beyondLength(length)
        case .superseded: self = .superseded
        }
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
