import Dispatch
import FerryCore
import FerryHTTP
import Logging
import Synchronization

/// Ferry's routes: judges each request head, hands upload bodies to an ``UploadStream`` and
/// task requests to ``TaskRoutes``. One router serves every event loop; each call runs on
/// the thread of the loop that got the request.
final class FerryRouter: HTTPHandler, Sendable {
    private let configuration: FerryConfiguration
    private let service: DeliveryService
    private let tasks: TaskRoutes
    private let tus: TusRoutes
    private let stats: StatsRoute
    private let deliveries: DeliveryRoutes
    private let events: EventRoutes
    private let crossOrigin: CrossOrigin
    private let authorizer: Authorizer?
    private let readiness: Readiness
    private let metrics: FerryMetrics
    private let proxies: TrustedProxies
    private let logger: Logger
    private let isDraining = Atomic(false)
    private let acceptFailures = Mutex((lastLogged: -Double.infinity, count: 0))

    /// - Parameter authorizer: the token policy; nil lets anyone who can connect do anything.
    init(
        configuration: FerryConfiguration, service: DeliveryService, authorizer: Authorizer?,
        readiness: Readiness, metrics: FerryMetrics, logger: Logger
    ) {
        self.configuration = configuration
        self.service = service
        self.tasks = TaskRoutes(service: service)
        self.tus = TusRoutes(service: service, configuration: configuration, metrics: metrics)
        self.stats = StatsRoute(service: service, readiness: readiness, metrics: metrics)
        self.deliveries = DeliveryRoutes(service: service)
        self.events = EventRoutes(hub: service.events)
        self.crossOrigin = CrossOrigin(origins: configuration.corsOrigins)
        self.authorizer = authorizer
        self.readiness = readiness
        self.metrics = metrics
        self.proxies = TrustedProxies(configuration.trustedProxies)
        self.logger = logger
    }

    /// Set when shutdown begins: new requests are refused, those in progress finish, and
    /// `/events` streams end (they would hold the shutdown until its deadline).
    var draining: Bool {
        get { isDraining.load(ordering: .relaxed) }
        set {
            isDraining.store(newValue, ordering: .relaxed)
            if newValue { events.endAll() }
        }
    }

    func malformed(_ head: HTTPRequestHead, _ problem: MalformedHead) -> HTTPResponse {
        let error: APIError =
            switch problem {
            case .framing(let violation): .badFraming(violation.reason)
            case .nulByte: .malformedHead(problem.reason)
            }
        guard case .reject(let response) = refuse(error, head) else { return error.response }
        return response
    }

    func acceptFailed(errno: Int32, pause: Double) {
        // Once a second at most, with how many were left out: under attack this happens
        // for every connection attempt.
        metrics.acceptFailures.increment()
        let now = Monotonic.seconds()
        let skipped = acceptFailures.withLock { state -> Int? in
            state.count += 1
            guard now - state.lastLogged >= 1 else { return nil }
            defer { state = (now, 0) }
            return state.count - 1
        }
        guard let skipped else { return }
        logger.warning(
            "cannot accept connections; listening again shortly",
            metadata: [
                "error": "\(SystemError(call: "accept", errno: errno))",
                "pause": "\(Monotonic.format(pause))s",
                "failures_not_logged": "\(skipped)",
            ])
    }

    func extraHeaders(for head: HTTPRequestHead) -> [(name: String, value: String)] {
        let tusHeaders: [(name: String, value: String)] =
            TusRoutes.matches(head.path) ? [("Tus-Resumable", TusRoutes.version)] : []
        return tusHeaders + crossOrigin.headers(for: head)
    }

    func answered(_ head: HTTPRequestHead, status: Int) {
        metrics.countRequest(route: Self.routeName(head.path), status: status)
    }

    /// The route a path belongs to, as a metric label (never the raw path: ids and junk
    /// would make a label per request).
    static func routeName(_ path: String) -> String {
        switch path {
        case "/upload", "/healthz", "/readyz", "/metrics", "/tasks", StatsRoute.path, EventRoutes.path,
            "/deliveries", "/deliveries/pause", "/deliveries/resume":
            return path
        case _ where ConsoleRoutes.matches(path): return "/ui/"
        case _ where TusRoutes.matches(path):
            return TusRoutes.uploadID(path) == nil ? "/files/" : "/files/{id}"
        case _ where path.hasPrefix("/tasks/"):
            return path.hasSuffix("/retry") ? "/tasks/{id}/retry" : "/tasks/{id}"
        default: return "other"
        }
    }

    func admit(_ head: HTTPRequestHead) -> HTTPAdmission {
        if draining { return refuse(.shuttingDown, head) }
        if CrossOrigin.isPreflight(head), let methods = Self.preflightMethods(head.path) {
            guard let answer = crossOrigin.preflight(head, methods: methods) else {
                return refuse(.originNotAllowed(head.values(of: "Origin").joined(separator: ", ")), head)
            }
            return .accept(Answer { answer })
        }
        if TusRoutes.matches(head.path) {
            if head.method == "OPTIONS" { return .accept(Answer { [tus] in tus.options() }) }
            switch authenticate(head) {
            case .success(let rule):
                return tus.admit(
                    head, rule: rule, logger: logger.with(head, client: proxies.client(of: head)),
                    refuse: { refuse($0, head) })
            case .failure(let error): return refuse(error, head)
            }
        }
        if head.path == "/upload" {
            guard head.method == "POST" else { return refuse(.methodNotAllowed(allowed: "POST"), head) }
            switch authenticate(head) {
            case .success(let rule): return admitUpload(head, rule: rule)
            case .failure(let error): return refuse(error, head)
            }
        }
        if let probe = probe(head.path) {
            guard head.method == "GET" || head.method == "HEAD" else {
                return refuse(.methodNotAllowed(allowed: "GET, HEAD"), head)
            }
            if let refusal = Self.bodyRefusal(head) { return refuse(refusal, head) }
            // /metrics counts tasks in the store: never on a loop's thread.
            return .accept(Answer(probe, offLoop: head.path == "/metrics"))
        }
        if ConsoleRoutes.matches(head.path) {
            guard head.method == "GET" || head.method == "HEAD" else {
                return refuse(.methodNotAllowed(allowed: "GET, HEAD"), head)
            }
            if let refusal = Self.bodyRefusal(head) { return refuse(refusal, head) }
            return .accept(Answer { ConsoleRoutes.answer(head) })
        }
        let api: ((HTTPRequestHead, TokenRule?) -> Result<@Sendable () -> HTTPResponse, APIError>)? =
            switch head.path {
            case _ where TaskRoutes.matches(head.path): tasks.route
            case _ where DeliveryRoutes.matches(head.path): deliveries.route
            case StatsRoute.path: stats.route
            case EventRoutes.path: events.route
            default: nil
            }
        if let api {
            // Authentication first: a stranger learns nothing from how a body is judged.
            let route = authenticate(head).flatMap { rule in
                Self.bodyRefusal(head).map { .failure($0) } ?? api(head, rule)
            }
            switch route {
            // These read the store and touch the spool: never on a loop's thread (an event
            // stream's answer only subscribes).
            case .success(let answer): return .accept(Answer(answer, offLoop: head.path != EventRoutes.path))
            case .failure(let error): return refuse(error, head)
            }
        }
        return refuse(.notFound(path: head.path), head)
    }

    /// The methods a CORS preflight may ask for on `path`; nil where there is no API.
    private static func preflightMethods(_ path: String) -> String? {
        if path == "/upload" { return "POST" }
        if TusRoutes.matches(path) { return TusRoutes.methods(path) }
        if TaskRoutes.matches(path) { return "GET, POST, DELETE" }
        if DeliveryRoutes.matches(path) { return "GET, POST" }
        if path == StatsRoute.path || path == EventRoutes.path { return "GET" }
        return nil
    }

    /// Routes other than `/upload` take no body: one announced (a non-zero length, or any
    /// chunked body) is refused from the head, before a byte of it is read into memory.
    private static func bodyRefusal(_ head: HTTPRequestHead) -> APIError? {
        head.framing == .none ? nil : .bodyNotAllowed
    }

    /// The answer-maker of a read-only route that needs no token (`/healthz`, `/readyz`,
    /// `/metrics`), or nil for any other path.
    private func probe(_ path: String) -> (@Sendable () -> HTTPResponse)? {
        switch path {
        case "/healthz":
            return { JSON.response(200, ["status": "serving"]) }
        case "/readyz":
            return { [readiness, service] in
                // A pause is shown, and never makes Ferry unready: it is an operator's choice.
                var report = readiness.report
                report.checks["deliveries"] = PausesView(service.pausedDeliveries).readinessCheck
                return Self.readinessAnswer(report)
            }
        case "/metrics":
            return { [metrics, service, readiness, events] in
                HTTPResponse(
                    status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                    body: metrics.exposition(
                        service: service, readiness: readiness, eventListeners: events.listenerCount))
            }
        default:
            return nil
        }
    }

    private static func readinessAnswer(_ report: Readiness.Report) -> HTTPResponse {
        struct Body: Encodable {
            var status: String
            var checks: [String: Readiness.Check]
            /// Only with `--remote`.
            var remotes: [String: Readiness.Check]?
        }
        return JSON.response(
            report.isReady ? 200 : 503,
            Body(
                status: report.isReady ? "ready" : "not_ready", checks: report.checks,
                remotes: report.remotes.isEmpty ? nil : report.remotes))
    }

    /// The rule of the bearer token, checked before anything else about the request; nil
    /// when no policy is in force.
    private func authenticate(_ head: HTTPRequestHead) -> Result<TokenRule?, APIError> {
        guard let authorizer else { return .success(nil) }
        let values = head.values(of: "Authorization")
        if values.count > 1 { return .failure(.contract(.duplicateHeader("Authorization"))) }
        guard let value = values.first else { return .failure(.unauthorized("a bearer token is required")) }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            return .failure(.unauthorized("the Authorization header must be 'Bearer TOKEN'"))
        }
        guard let rule = authorizer.rule(forToken: String(parts[1]).trimmingOptionalWhitespace()) else {
            return .failure(.unauthorized("the token is not known"))
        }
        return .success(rule)
    }

    private func admitUpload(_ head: HTTPRequestHead, rule: TokenRule?) -> HTTPAdmission {
        let started = Monotonic.seconds()
        let request: UploadRequest
        // nil: a chunked body. The HTTP layer judged the framing already.
        let declaredLength = head.framing.announcedLength
        let idempotencyKey: String?
        let digests: ExpectedDigests
        do throws(APIError) {
            request = try validate(head)
            idempotencyKey = try Self.idempotencyKey(head)
            digests = try Self.expectedDigests(head, fields: ["Content-Digest", "Repr-Digest"])
        } catch {
            return refuse(error, head)
        }
        if let declaredLength, declaredLength > configuration.maxBodySize {
            return refuse(.bodyTooLarge(limit: configuration.maxBodySize), head, request)
        }
        if let rule, let refusal = rule.refusal(of: request, size: declaredLength) {
            return refuse(.forbidden(refusal), head, request)
        }
        let tokenLimit = rule.flatMap { rule in
            rule.maxUpload.map { limit in
                (
                    bytes: limit,
                    refusal: AccessRefusal(
                        token: rule.name, rule: "max_upload", detail: "more than \(limit) bytes")
                )
            }
        }
        let plan = UploadPlan(
            request: request, announcedLength: declaredLength, idempotencyKey: idempotencyKey,
            owner: rule?.name,
            quota: rule?.quota, maxBodySize: configuration.maxBodySize, tokenLimit: tokenLimit,
            minFreeDisk: configuration.minFreeDisk, requestID: head.requestID, expectedDigests: digests)
        let admission: UploadAdmission
        do {
            admission = try service.begin(plan)
        } catch {
            if case .storage(let reason) = error {
                logger.error("cannot begin upload", metadata: ["error": "\(reason)"])
            }
            return refuse(APIError(error), head, request)
        }
        switch admission {
        case .repeated(let record):
            logger.info(
                "upload repeated",
                metadata: [
                    "task": "\(record.id)", "idempotency_key": "\(idempotencyKey ?? "")",
                    "request_id": "\(head.requestID)",
                ])
            // The first task's answer; the repeated body is not read.
            return .reject(UploadAnswer.accepted(record))
        case .receiving(let upload):
            return .accept(
                UploadStream(
                    upload: upload, logger: logger.with(head, client: proxies.client(of: head)),
                    metrics: metrics, started: started, protocolName: "upload", answer: UploadAnswer.accepted)
            )
        }
    }

    private func validate(_ head: HTTPRequestHead) throws(APIError) -> UploadRequest {
        // The values were read as UTF-8 with bad bytes replaced: a destination from one of
        // them would not be the one the client named.
        if let name = UploadContract.headers.first(where: head.isNotUTF8) {
            throw .contract(.notUTF8(name))
        }
        do {
            return try UploadContract.validate(head.values(of:), remotes: configuration.remoteNames)
        } catch {
            throw .contract(error)
        }
    }

    /// The RFC 9530 digests of `fields` in `head` (every value of each: all must match).
    static func expectedDigests(_ head: HTTPRequestHead, fields: [String]) throws(APIError) -> ExpectedDigests
    {
        var digests = ExpectedDigests()
        for field in fields {
            for value in head.values(of: field) {
                do throws(DigestFieldError) {
                    try digests.add(rfc9530Field: field, value: value)
                } catch {
                    throw .badDigestField(error)
                }
            }
        }
        return digests
    }

    /// `Idempotency-Key`: once, 1-255 visible ASCII characters.
    private static func idempotencyKey(_ head: HTTPRequestHead) throws(APIError) -> String? {
        let keys = head.values(of: "Idempotency-Key")
        if keys.count > 1 { throw .contract(.duplicateHeader("Idempotency-Key")) }
        guard let key = keys.first else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw .badQuery("Idempotency-Key must be 1-255 visible ASCII characters")
        }
        return key
    }

    private func refuse(_ error: APIError, _ head: HTTPRequestHead, _ request: UploadRequest? = nil)
        -> HTTPAdmission
    {
        var metadata: Logger.Metadata = [
            "method": "\(head.method)", "path": "\(ContractViolation.quoted(head.path))",
            "status": "\(error.status)", "error": "\(error.code)", "client": "\(proxies.client(of: head))",
            "request_id": "\(head.requestID)", "peer": "\(head.peer)",
        ]
        if let request {
            metadata["container"] = "\(request.container)"
            metadata["destination"] = "\(request.path)"
        }
        logger.info(head.path == "/upload" ? "upload refused" : "request refused", metadata: metadata)
        return .reject(error.response)
    }
}

/// A route whose answer is computed once the (empty) body has been read.
final class Answer: HTTPBodyConsumer {
    private let make: @Sendable () -> HTTPResponse
    private let offLoop: Bool

    /// - Parameter offLoop: compute the answer on another thread (it may wait for the disk).
    init(_ make: @escaping @Sendable () -> HTTPResponse, offLoop: Bool = false) {
        self.make = make
        self.offLoop = offLoop
    }

    func consume(_ chunk: BodyChunk) -> HTTPBodyVerdict { .proceed }
    func finish(respond: @escaping @Sendable (HTTPResponse) -> Void) {
        guard offLoop else { return respond(make()) }
        DispatchQueue.global().async { [make] in respond(make()) }
    }
    func abort(reason: String) {}
}

extension Logger {
    /// This logger with the request's id and client in every line.
    fileprivate func with(_ head: HTTPRequestHead, client: String) -> Logger {
        var logger = self
        logger[metadataKey: "request_id"] = "\(head.requestID)"
        logger[metadataKey: "client"] = "\(client)"
        // The connection's own address: with a proxy in front, which of its connections.
        logger[metadataKey: "peer"] = "\(head.peer)"
        return logger
    }
}
