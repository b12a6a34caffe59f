import FerryCore
import FerryHTTP

/// `/deliveries`: which deliveries are paused, and pausing or resuming them, for every
/// container or one (`?container=C`). A paused container's uploads are accepted and queued;
/// their pushes wait, across restarts, until it resumes.
struct DeliveryRoutes {
    let service: DeliveryService

    static func matches(_ path: String) -> Bool {
        path == "/deliveries" || path.hasPrefix("/deliveries/")
    }

    /// The answer-maker for a `/deliveries` request, or an error decided from the head.
    ///
    /// - Parameter rule: the asking token's rule (nil without `--tokens`): a token steers
    ///   the containers its rule admits; all of them at once only with `containers: ["*"]`.
    func route(_ head: HTTPRequestHead, rule: TokenRule?) -> Result<@Sendable () -> HTTPResponse, APIError> {
        let pausing: Bool
        switch head.path {
        case "/deliveries":
            if let refusal = ReadOnlyRoute.refusal(head) { return .failure(refusal) }
            return .success({ [service] in JSON.response(200, PausesView(service.pausedDeliveries)) })
        case "/deliveries/pause": pausing = true
        case "/deliveries/resume": pausing = false
        default: return .failure(.notFound(path: head.path))
        }
        guard head.method == "POST" else { return .failure(.methodNotAllowed(allowed: "POST")) }
        let container: String?
        switch Self.container(head.query) {
        case .success(let named): container = named
        case .failure(let error): return .failure(error)
        }
        if let refusal = rule?.refusal(ofSteering: container) { return .failure(.forbidden(refusal)) }
        let change: DeliveryPauses.Change =
            switch (pausing, container) {
            case (true, let container?): .pause(container: container)
            case (true, nil): .pauseAll
            case (false, let container?): .resume(container: container)
            case (false, nil): .resumeAll
            }
        return .success({ [service] in
            do throws(StoreError) {
                return JSON.response(200, PausesView(try service.changeDeliveries(change)))
            } catch {
                return APIError.serverFault(error.description).response
            }
        })
    }

    /// `container=NAME`, the only parameter, once, a valid instance name; nil: all.
    private static func container(_ query: String?) -> Result<String?, APIError> {
        switch TaskRequest.parseList(query, states: []) {
        case .failure(let problem):
            guard case .badQuery(let reason) = problem else { return .failure(.badQuery("bad query")) }
            return .failure(.badQuery(reason))
        case .success(let list):
            guard list.keys.isSubset(of: ["container"]) else {
                return .failure(.badQuery("pause and resume take container only"))
            }
            // A remote's container is named as uploads name it, REMOTE:INSTANCE (allowed or
            // not: a pause only holds).
            if let name = list.container,
                let problem = UploadContract.problem(withContainer: name, remotes: nil)
            {
                return .failure(.badQuery("container: \(problem)"))
            }
            return .success(list.container)
        }
    }
}

/// The pauses in force, as `/deliveries`, `/stats` and `/events` show them.
struct PausesView: Encodable {
    struct Paused: Encodable {
        var container: String
        var since: String
    }

    var all: Bool
    /// Null while deliveries run.
    @NullWhenNil var allSince: String?
    var containers: [Paused]

    init(_ pauses: DeliveryPauses) {
        all = pauses.all
        allSince = pauses.allSince.map(TaskView.timestamp)
        containers = pauses.containers.sorted { $0.key < $1.key }.map {
            Paused(container: $0.key, since: TaskView.timestamp($0.value))
        }
    }

    enum CodingKeys: String, CodingKey {
        case all, containers
        case allSince = "all_since"
    }

    /// How `/readyz` tells it: never a failure (a pause is an operator's choice).
    var readinessCheck: Readiness.Check {
        if all {
            return Readiness.Check(ok: true, detail: "paused for every container since \(allSince ?? "")")
        }
        if containers.isEmpty { return Readiness.Check(ok: true, detail: "running") }
        return Readiness.Check(
            ok: true,
            detail: "paused for "
                + containers.map { "\($0.container) since \($0.since)" }.joined(separator: ", "))
    }
}
