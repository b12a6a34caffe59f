import FerryCore
import FerryHTTP
import Logging

/// Ferry's routes: judges each request head and hands upload bodies to an ``UploadStream``.
final class UploadEndpoint: HTTPHandler {
    private let configuration: FerryConfiguration
    private let spool: Spool
    private let queue: DeliveryQueue
    private let logger: Logger

    init(configuration: FerryConfiguration, spool: Spool, queue: DeliveryQueue, logger: Logger) {
        self.configuration = configuration
        self.spool = spool
        self.queue = queue
        self.logger = logger
    }

    func admit(_ head: HTTPRequestHead) -> HTTPAdmission {
        switch head.path {
        case "/upload":
            guard head.method == "POST" else { return refuse(.methodNotAllowed(allowed: "POST"), head) }
            return admitUpload(head)
        case "/healthz":
            guard head.method == "GET" || head.method == "HEAD" else {
                return refuse(.methodNotAllowed(allowed: "GET, HEAD"), head)
            }
            return .accept(FixedAnswer(JSON.response(200, ["status": "serving"])))
        default:
            return refuse(.notFound(path: head.path), head)
        }
    }

    private func admitUpload(_ head: HTTPRequestHead) -> HTTPAdmission {
        let started = Monotonic.seconds()
        let request: UploadRequest
        let declaredLength: UInt64?
        do throws(APIError) {
            request = try Self.validate(head)
            declaredLength = try Self.declaredLength(head)
        } catch {
            return refuse(error, head)
        }
        if let declaredLength, declaredLength > configuration.maxBodySize {
            return refuse(.bodyTooLarge(limit: configuration.maxBodySize), head, request)
        }
        guard queue.reserve() else { return refuse(.queueFull, head, request) }
        let id = TaskID.make()
        let file: SpoolFile
        do {
            file = try spool.create(id: id)
        } catch {
            queue.cancelReservation()
            if error.isNoSpace { return refuse(.insufficientStorage(error.description), head, request) }
            logger.error("cannot create spool file", metadata: ["error": "\(error)"])
            return refuse(.serverFault(error.description), head, request)
        }
        return .accept(
            UploadStream(
                request: request, file: file, queue: queue, maxBodySize: configuration.maxBodySize,
                logger: logger, started: started, peer: head.peer))
    }

    private static func validate(_ head: HTTPRequestHead) throws(APIError) -> UploadRequest {
        do {
            return try UploadContract.validate(head.values(of:))
        } catch {
            throw .contract(error)
        }
    }

    /// The body length announced by the head; rejects framing that libevent would accept
    /// but that two parties could read differently.
    private static func declaredLength(_ head: HTTPRequestHead) throws(APIError) -> UInt64? {
        let lengths = head.values(of: "Content-Length")
        let encodings = head.values(of: "Transfer-Encoding")
        if lengths.count > 1 { throw .badFraming("Content-Length appears more than once") }
        if !encodings.isEmpty {
            if !lengths.isEmpty { throw .badFraming("Content-Length together with Transfer-Encoding") }
            if encodings.count > 1 || encodings[0].lowercased() != "chunked" {
                throw .badFraming("the only Transfer-Encoding accepted is chunked")
            }
            return nil
        }
        guard let text = lengths.first else { return nil }
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let length = UInt64(text)
        else { throw .badFraming("Content-Length is not a number") }
        return length
    }

    private func refuse(_ error: APIError, _ head: HTTPRequestHead, _ request: UploadRequest? = nil)
        -> HTTPAdmission
    {
        var metadata: Logger.Metadata = [
            "method": "\(head.method)", "path": "\(ContractViolation.quoted(head.path))",
            "status": "\(error.status)", "error": "\(error.code)", "peer": "\(head.peer)",
        ]
        if let request {
            metadata["container"] = "\(request.container)"
            metadata["destination"] = "\(request.path)"
        }
        logger.info(
            error.status == 404 || head.path != "/upload" ? "request refused" : "upload refused",
            metadata: metadata)
        return .reject(error.response)
    }
}

/// A route whose answer does not depend on the body (the body, if any, is read and dropped).
final class FixedAnswer: HTTPBodyConsumer {
    private let response: HTTPResponse

    init(_ response: HTTPResponse) {
        self.response = response
    }

    func consume(_ chunk: BodyChunk) -> HTTPBodyVerdict { .proceed }
    func finish(respond: @escaping @Sendable (HTTPResponse) -> Void) { respond(response) }
    func abort(reason: String) {}
}
