import FerryCore
import FerryHTTP
import Foundation

/// `/tasks` routes: status, listing, and the dead-letter actions (retry, delete).
struct TaskRoutes {
    let service: DeliveryService
    static let defaultLimit = 100
    static let maximumLimit = 1000

    /// Whether `path` is a task route.
    static func matches(_ path: String) -> Bool {
        path == "/tasks" || path.hasPrefix("/tasks/")
    }

    /// The answer-maker for a `/tasks` request, or an error decided from the head.
    ///
    /// - Parameter viewer: the token's name; a token sees and acts on its own tasks only
    ///   (nil without `--tokens`).
    func route(_ head: HTTPRequestHead, viewer: String?) -> Result<() -> HTTPResponse, APIError> {
        let segments = head.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let rest = Array(segments.dropFirst()).map(String.init)
        let reading = head.method == "GET" || head.method == "HEAD"
        switch rest.count {
        case 0:
            return reading
                ? list(query: head.query, viewer: viewer) : .failure(.methodNotAllowed(allowed: "GET, HEAD"))
        case 1 where reading:
            let id = rest[0]
            return .success({ [service] in
                guard let record = service.task(id: id, viewer: viewer) else {
                    return APIError.unknownTask(id).response
                }
                return JSON.response(200, TaskView(record))
            })
        case 1 where head.method == "DELETE":
            let id = rest[0]
            return .success({ [service] in
                do throws(TaskActionError) {
                    try service.delete(id: id, viewer: viewer)
                    return HTTPResponse(status: 204)
                } catch {
                    return Self.apiError(error).response
                }
            })
        case 1:
            return .failure(.methodNotAllowed(allowed: "GET, HEAD, DELETE"))
        case 2 where rest[1] == "retry":
            guard head.method == "POST" else { return .failure(.methodNotAllowed(allowed: "POST")) }
            let id = rest[0]
            return .success({ [service] in
                do throws(TaskActionError) {
                    let record = try service.retry(id: id, viewer: viewer)
                    return JSON.response(202, TaskView(record), headers: [("Location", "/tasks/\(id)")])
                } catch {
                    return Self.apiError(error).response
                }
            })
        default:
            return .failure(.notFound(path: head.path))
        }
    }

    private func list(query: String?, viewer: String?) -> Result<() -> HTTPResponse, APIError> {
        var state: TaskState?
        var limit = Self.defaultLimit
        var after: String?
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            let value = parts.count > 1 ? parts[1] : ""
            switch parts[0] {
            case "state":
                guard let parsed = TaskState(rawValue: value) else {
                    let names = TaskState.allCases.map(\.rawValue).joined(separator: ", ")
                    return .failure(.badQuery("state must be one of: \(names)"))
                }
                state = parsed
            case "limit":
                guard let parsed = Int(value), (1...Self.maximumLimit).contains(parsed) else {
                    return .failure(.badQuery("limit must be a number from 1 to \(Self.maximumLimit)"))
                }
                limit = parsed
            case "after":
                after = value
            default:
                return .failure(.badQuery("unknown query parameter \(ContractViolation.quoted(parts[0]))"))
            }
        }
        return .success({ [service] in
            struct Page: Encodable {
                var tasks: [TaskView]
                var next: String?
            }
            let records = service.store.list(state: state, owner: viewer, after: after, limit: limit + 1)
            let page = records.prefix(limit).map(TaskView.init)
            return JSON.response(200, Page(tasks: page, next: records.count > limit ? page.last?.id : nil))
        })
    }

    private static func apiError(_ error: TaskActionError) -> APIError {
        switch error {
        case .unknownTask(let id): .unknownTask(id)
        case .wrongState(let id, let state, let allowed):
            .wrongState(id: id, state: state.rawValue, allowed: allowed.map(\.rawValue))
        case .capacity(.tooManyTasks(let limit)): .queueFull(limit: limit)
        case .capacity(.tooManyBytes(let limit)): .spoolFull(limit: limit)
        case .storage(let error): .serverFault(error.description)
        }
    }
}

/// A task as the API shows it.
struct TaskView: Encodable {
    var id: String
    var state: String
    var attempts: Int
    var lastError: String?
    var container: String
    var path: String
    var bytes: UInt64
    var createdAt: String
    var updatedAt: String
    /// The `X-Request-Id` of the upload that created the task.
    var requestID: String?

    init(_ record: TaskRecord) {
        id = record.id
        state = record.state.rawValue
        attempts = record.attempts
        lastError = record.lastError
        container = record.request.container
        path = record.request.path
        bytes = record.bytes
        createdAt = Self.timestamp(record.createdAt)
        updatedAt = Self.timestamp(record.updatedAt)
        requestID = record.requestID
    }

    enum CodingKeys: String, CodingKey {
        case id, state, attempts, container, path, bytes
        case lastError = "last_error"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case requestID = "request_id"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(state, forKey: .state)
        try container.encode(attempts, forKey: .attempts)
        // Always present, null when there is none.
        try container.encode(lastError, forKey: .lastError)
        try container.encode(self.container, forKey: .container)
        try container.encode(path, forKey: .path)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
        try container.encode(requestID, forKey: .requestID)
    }

    private static func timestamp(_ seconds: Double) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }
}
