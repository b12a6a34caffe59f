import Foundation

/// A `/tasks` request as its method, path and query say, parsed without trusting any of
/// them: every input gives a value or a ``TaskRequest/Problem``, never a trap. Stands alone
/// (Foundation only) so that `make fuzz` can compile it into a fuzzer.
enum TaskRequest: Equatable {
    /// `GET /tasks?...`.
    case list(ListQuery)
    /// `GET /tasks/ID`.
    case show(id: String)
    /// `DELETE /tasks/ID`.
    case delete(id: String)
    /// `POST /tasks/ID/retry`.
    case retry(id: String)
    /// `POST /tasks/retry?state=failed[&container=C]`: every failed task (of the asker).
    case retryAll(container: String?)
    /// `DELETE /tasks?state=failed[&container=C]`: every failed task (of the asker).
    case deleteAll(container: String?)

    /// Why a request is not a task request Ferry can answer.
    enum Problem: Error, Equatable {
        case notFound
        case methodNotAllowed(allowed: String)
        case badQuery(String)
    }

    /// The listing's query: `state`, `limit` and `after`, each at most once.
    struct ListQuery: Equatable {
        var state: String?
        var limit: Int
        var after: String?
        /// Only tasks for this container.
        var container: String?
        /// Only tasks whose destination starts with this.
        var pathPrefix: String?
        /// Only tasks whose id starts with this (a search by id).
        var idPrefix: String?
        /// The parameters given (not part of what the query means: not compared).
        var keys: Set<String> = []

        static func == (lhs: ListQuery, rhs: ListQuery) -> Bool {
            (lhs.state, lhs.limit, lhs.after, lhs.container, lhs.pathPrefix, lhs.idPrefix)
                == (rhs.state, rhs.limit, rhs.after, rhs.container, rhs.pathPrefix, rhs.idPrefix)
        }
    }

    static let defaultLimit = 100
    static let maximumLimit = 1000

    /// Parses a request for a path that starts with `/tasks`.
    ///
    /// - Parameter states: the task states `state=` may name.
    static func parse(method: String, path: String, query: String?, states: [String]) -> Result<
        TaskRequest, Problem
    > {
        let all = path.split(separator: "/", omittingEmptySubsequences: false)
        // "/tasks..." only: the empty segment before the first "/", then "tasks".
        guard all.count >= 2, all[0].isEmpty, all[1] == "tasks" else { return .failure(.notFound) }
        let segments = all.dropFirst()
        let rest = Array(segments.dropFirst())
        let reading = method == "GET" || method == "HEAD"
        switch rest.count {
        case 0:
            if method == "DELETE" { return parseBulk(query, states: states).map(TaskRequest.deleteAll) }
            guard reading else { return .failure(.methodNotAllowed(allowed: "GET, HEAD, DELETE")) }
            return parseList(query, states: states).map(TaskRequest.list)
        case 1 where rest[0] == "retry":
            // No task has this id (ids are hex): the collection's own action.
            guard method == "POST" else { return .failure(.methodNotAllowed(allowed: "POST")) }
            return parseBulk(query, states: states).map(TaskRequest.retryAll)
        case 1 where !rest[0].isEmpty:
            let id = String(rest[0])
            if reading { return .success(.show(id: id)) }
            if method == "DELETE" { return .success(.delete(id: id)) }
            return .failure(.methodNotAllowed(allowed: "GET, HEAD, DELETE"))
        case 2 where !rest[0].isEmpty && rest[1] == "retry":
            guard method == "POST" else { return .failure(.methodNotAllowed(allowed: "POST")) }
            return .success(.retry(id: String(rest[0])))
        default:
            return .failure(.notFound)
        }
    }

    /// A bulk action's query: `state=failed` (required: a bulk action on other states is
    /// not offered, and an empty query must never mean "all") and `container=C`.
    static func parseBulk(_ query: String?, states: [String]) -> Result<String?, Problem> {
        parseList(query, states: states).flatMap { list in
            guard list.state == "failed" else {
                return .failure(.badQuery("a bulk action needs state=failed (it acts on dead letters only)"))
            }
            guard list.keys.isSubset(of: ["state", "container"]) else {
                return .failure(.badQuery("a bulk action takes state and container only"))
            }
            return .success(list.container)
        }
    }

    /// `state=S&limit=N&after=ID&container=C&path_prefix=P&id_prefix=I`, percent-decoded;
    /// empty pairs (`&&`) are ignored.
    static func parseList(_ query: String?, states: [String]) -> Result<ListQuery, Problem> {
        var result = ListQuery(state: nil, limit: defaultLimit, after: nil)
        var seen: Set<String> = []
        for pair in (query ?? "").split(separator: "&") {
            let (rawKey, rawValue) =
                pair.firstIndex(of: "=").map { (pair[..<$0], pair[pair.index(after: $0)...]) }
                ?? (pair[...], "")
            guard let key = String(rawKey).removingPercentEncoding,
                let value = String(rawValue).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            else {
                return .failure(.badQuery("the query has a broken %-escape"))
            }
            guard !value.utf8.contains(0) else {
                return .failure(.badQuery("query parameter \(quoted(key)) holds a NUL byte"))
            }
            guard seen.insert(key).inserted else {
                return .failure(.badQuery("query parameter \(quoted(key)) is given more than once"))
            }
            switch key {
            case "state":
                guard states.contains(value) else {
                    return .failure(.badQuery("state must be one of: \(states.joined(separator: ", "))"))
                }
                result.state = value
            case "limit":
                guard value.utf8.count <= 4, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                    let limit = Int(value), (1...maximumLimit).contains(limit)
                else {
                    return .failure(.badQuery("limit must be a number from 1 to \(maximumLimit)"))
                }
                result.limit = limit
            case "after":
                guard !value.isEmpty else { return .failure(.badQuery("after must name a task id")) }
                result.after = value
            case "container":
                guard !value.isEmpty else { return .failure(.badQuery("container must name a container")) }
                result.container = value
            case "path_prefix":
                guard value.hasPrefix("/") else {
                    return .failure(.badQuery("path_prefix must be an absolute path (start with /)"))
                }
                result.pathPrefix = value
            case "id_prefix":
                // An id is NODE-HEX (or, made by older versions, HEX alone).
                guard (1...65).contains(value.utf8.count),
                    value.utf8.allSatisfy({
                        ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2d
                    })
                else {
                    return .failure(
                        .badQuery(
                            "id_prefix must be 1-65 lowercase letters, digits and '-' (the start of an id)"))
                }
                result.idPrefix = value
            default:
                return .failure(.badQuery("unknown query parameter \(quoted(key))"))
            }
        }
        result.keys = seen
        return .success(result)
    }

    /// A client's text, shown without control characters and cut short.
    private static func quoted(_ text: String) -> String {
        let cleaned = text.unicodeScalars.prefix(64).map {
            $0.value < 0x20 || $0.value == 0x7f ? "?" : String($0)
        }.joined()
        return "'\(cleaned)\(text.unicodeScalars.count > 64 ? "..." : "")'"
    }
}
