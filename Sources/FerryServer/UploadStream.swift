import FerryCore
import FerryHTTP
import Logging

/// One upload body on its way to the spool: the HTTP side of an ``IncomingUpload``. It
/// gathers the body's pieces into large writes, tells the upload, and turns the upload's
/// refusals and its commit into answers. What the upload holds is the upload's business.
final class UploadStream: HTTPBodyConsumer {
    /// Bytes gathered before one vectored write: large enough to make the syscall cost
    /// vanish, small enough to keep memory flat.
    static let writeBatch = 256 * 1024

    private let upload: IncomingUpload
    /// Carries the request id and client in its metadata.
    private let logger: Logger
    private let metrics: FerryMetrics
    private let started: Double
    private let pending = BodyBuffer()

    init(upload: IncomingUpload, logger: Logger, metrics: FerryMetrics, started: Double) {
        self.upload = upload
        self.logger = logger
        self.started = started
        self.metrics = metrics
        metrics.uploadsInFlight.add(1, ordering: .relaxed)
    }

    deinit {
        // A stream dropped without an end (the connection went away) gives all back.
        upload.abandon()
        metrics.uploadsInFlight.subtract(1, ordering: .relaxed)
    }

    func consume(_ chunk: BodyChunk) -> HTTPBodyVerdict {
        metrics.bytesReceived.increment(by: chunk.count)
        if let refusal = upload.admit(chunk.count) { return .stop(refuse(refusal)) }
        pending.append(chunk)
        if pending.count >= Self.writeBatch, let refusal = flush() {
            return .stop(refuse(refusal))
        }
        return .proceed
    }

    func finish(respond: @escaping @Sendable (HTTPResponse) -> Void) {
        if let refusal = flush() {
            respond(refuse(refusal))
            return
        }
        let (logger, started, id) = (self.logger, self.started, upload.id)
        upload.commit { result in
            switch result {
            case .success(let record):
                logger.info(
                    "upload accepted",
                    metadata: [
                        "task": "\(record.id)", "container": "\(record.request.container)",
                        "destination": "\(record.request.path)", "bytes": "\(record.bytes)", "status": "202",
                        "duration": "\(Monotonic.format(Monotonic.seconds() - started))s",
                    ])
                respond(Self.accepted(record))
            case .failure(let refusal):
                logger.error("cannot commit upload", metadata: ["task": "\(id)", "error": "\(refusal)"])
                respond(APIError(refusal).response)
            }
        }
    }

    func abort(reason: String) {
        upload.abandon()
        logger.info(
            "upload aborted",
            metadata: [
                "task": "\(upload.id)", "container": "\(upload.plan.request.container)",
                "destination": "\(upload.plan.request.path)", "bytes": "\(upload.received)",
                "reason": "\(reason)",
            ])
    }

    /// The 202 answer for a task (also repeated for a known `Idempotency-Key`).
    static func accepted(_ record: TaskRecord) -> HTTPResponse {
        struct Accepted: Encodable {
            var id, container, path: String
            var bytes: UInt64
            var status = "queued"
            var message: String
        }
        let body = Accepted(
            id: record.id, container: record.request.container, path: record.request.path,
            bytes: record.bytes,
            message:
                "File '\(record.request.fileName)' queued for processing on container '\(record.request.container)'."
        )
        return JSON.response(202, body, headers: [("Location", "/tasks/\(record.id)")])
    }

    /// Writes what is gathered; on failure says why.
    private func flush() -> UploadRefusal? {
        let refusal = upload.write(pending.count) { descriptor throws(SystemError) in
            do throws(BodyWriteError) {
                try pending.drain(to: descriptor)
            } catch {
                throw SystemError(call: "write", errno: error.errno)
            }
        }
        if case .storage(let reason) = refusal {
            logger.error("cannot write spool file", metadata: ["task": "\(upload.id)", "error": "\(reason)"])
        }
        return refusal
    }

    /// Gives up on this upload mid-body and says why.
    private func refuse(_ refusal: UploadRefusal) -> HTTPResponse {
        upload.abandon()
        let error = APIError(refusal)
        logger.info(
            "upload refused",
            metadata: [
                "task": "\(upload.id)", "container": "\(upload.plan.request.container)",
                "destination": "\(upload.plan.request.path)", "bytes": "\(upload.received)",
                "status": "\(error.status)", "error": "\(error.code)",
            ])
        return error.response
    }
}
