import FerryCore
import FerryHTTP
import Foundation

/// `/tasks` routes: status, listing, and the dead-letter actions (retry, delete).
struct TaskRoutes {
    let service: DeliveryService

    /// Whether `path` is a task route.
    static func matches(_ path: String) -> Bool {
        path == "/tasks" || path.hasPrefix("/tasks/")
    }

    /// The answer-maker for a `/tasks` request, or an error decided from the head.
    ///
    /// - Parameter rule: the asking token's rule in the policy in force now (nil without
    ///   `--tokens`). A token sees and acts on its own tasks only, and acts on one only
    ///   while its rule still allows the task's destination.
    func route(_ head: HTTPRequestHead, rule: TokenRule?) -> Result<@Sendable () -> HTTPResponse, APIError> {
        let parsed = TaskRequest.parse(
            method: head.method, path: head.path, query: head.query,
            states: TaskState.allCases.map(\.rawValue))
        let viewer = rule?.name
        // Retrying writes again: every rule applies. Deleting only needs the task's place
        // to be the token's still, so a narrowed size limit does not strand dead letters
        // that count against its quota.
        let authorizeRetry = rule.map { rule in
            { @Sendable (record: TaskRecord) in rule.refusal(of: record.request, size: record.bytes) }
        }
        let authorizeDelete = rule.map { rule in
            { @Sendable (record: TaskRecord) in rule.refusal(ofPlace: record.request) }
        }
        switch parsed {
        case .failure(.notFound):
            return .failure(.notFound(path: head.path))
        case .failure(.methodNotAllowed(let allowed)):
            return .failure(.methodNotAllowed(allowed: allowed))
        case .failure(.badQuery(let reason)):
            return .failure(.badQuery(reason))
        case .success(.list(let query)):
            return .success({ [service] in Self.list(query, viewer: viewer, service: service) })
        case .success(.show(let id)):
            return .success({ [service] in
                do throws(StoreError) {
                    guard let record = try service.task(id: id, viewer: viewer) else {
                        return APIError.unknownTask(id).response
                    }
                    return JSON.response(200, TaskView(record))
                } catch {
                    return APIError.serverFault(error.description).response
                }
            })
        case .success(.delete(let id)):
            return .success({ [service] in
                do throws(TaskActionError) {
                    try service.delete(id: id, viewer: viewer, authorize: authorizeDelete)
                    return HTTPResponse(status: 204)
                } catch {
                    return Self.apiError(error).response
                }
            })
        case .success(.retryAll(let container)):
            return .success({ [service] in
                let outcome = service.retryAll(
                    viewer: viewer, container: container, authorize: authorizeRetry, quota: rule?.quota)
                return Self.bulkAnswer(["retried": outcome.count], outcome.stoppedBy)
            })
        case .success(.deleteAll(let container)):
            return .success({ [service] in
                let outcome = service.deleteAll(
                    viewer: viewer, container: container, authorize: authorizeDelete)
                return Self.bulkAnswer(["deleted": outcome.count], outcome.stoppedBy)
            })
        case .success(.retry(let id)):
            return .success({ [service] in
                do throws(TaskActionError) {
                    let record = try service.retry(
                        id: id, viewer: viewer, authorize: authorizeRetry, quota: rule?.quota)
                    return JSON.response(202, TaskView(record), headers: [("Location", "/tasks/\(id)")])
                } catch {
                    return Self.apiError(error).response
                }
            })
        }
    }

    private static func list(_ query: TaskRequest.ListQuery, viewer: String?, service: DeliveryService)
        -> HTTPResponse
    {
        struct Page: Encodable {
            var tasks: [TaskView]
            /// Null on the last page.
            @NullWhenNil var next: String?
        }
        let found: [TaskRecord]?
        do {
            found = try service.list(
                TaskQuery(
                    state: query.state.flatMap(TaskState.init(rawValue:)), owner: viewer,
                    container: query.container, pathPrefix: query.pathPrefix, idPrefix: query.idPrefix,
                    after: query.after,
                    limit: query.limit + 1))
        } catch {
            return APIError.serverFault(error.description).response
        }
        guard let records = found else {
            return APIError.badQuery(
                "after: no task \(ContractViolation.quoted(query.after ?? "")) of yours is known "
                    + "(deleted or expired?); list again without after"
            ).response
        }
        let page = records.prefix(query.limit).map(TaskView.init)
        return JSON.response(200, Page(tasks: page, next: records.count > query.limit ? page.last?.id : nil))
    }

    /// 200 with the count, or, when a bound or a failure stopped the action part-way, the
    /// refusal's status with the count so far.
    private static func bulkAnswer(_ counts: [String: Int], _ stoppedBy: TaskActionError?) -> HTTPResponse {
        guard let stoppedBy else { return JSON.response(200, counts) }
        var answer = apiError(stoppedBy).response
        answer.headers.append(contentsOf: counts.map { ("X-Ferry-\($0.key.capitalized)", String($0.value)) })
        return answer
    }

    private static func apiError(_ error: TaskActionError) -> APIError {
        switch error {
        case .unknownTask(let id): .unknownTask(id)
        case .wrongState(let id, let state, let allowed):
            .wrongState(id: id, state: state.rawValue, allowed: allowed.map(\.rawValue))
        case .capacity(let refusal): APIError(refusal)
        case .forbidden(let refusal): .forbidden(refusal)
        case .storage(let reason): .serverFault(reason)
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
    /// The SHA-256 of the bytes, hex (null while receiving, and for tasks older than it).
    var sha256: String?
    /// While receiving: bytes stored so far, and the announced length (null: deferred).
    var receiving: (offset: UInt64, length: UInt64?)?

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
        sha256 = record.sha256
        if record.state == .receiving { receiving = (record.bytes, record.length) }
    }

    enum CodingKeys: String, CodingKey {
        case id, state, attempts, container, path, bytes
        case lastError = "last_error"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case requestID = "request_id"
        case sha256, offset, length
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
        try container.encode(sha256, forKey: .sha256)
        if let receiving {
            try container.encode(receiving.offset, forKey: .offset)
            try container.encode(receiving.length, forKey: .length)
        }
    }

    /// `seconds` (since 1970) as ISO 8601 with milliseconds, in UTC. A format style, not an
    /// `ISO8601DateFormatter`: making one of those took about 220 µs here, twice per task
    /// of a listing and once per event. The style truncates, so half a millisecond is added
    /// to round as the formatter did.
    static func timestamp(_ seconds: Double) -> String {
        Date(timeIntervalSince1970: seconds + 0.0005).formatted(Self.timestampStyle)
    }

    private static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}
