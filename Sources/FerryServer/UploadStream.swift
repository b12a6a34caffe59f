import FerryCore
import FerryHTTP
import Logging

/// A token's own upload limit, and the refusal to answer when a body passes it.
struct TokenLimit {
    var bytes: UInt64
    var refusal: AccessRefusal
}

/// One upload body on its way to the spool: written as it arrives, made durable off the
/// event loop by the group committer, then queued for delivery and answered with 202.
final class UploadStream: HTTPBodyConsumer {
    /// Bytes gathered before one vectored write: large enough to make the syscall cost
    /// vanish, small enough to keep memory flat.
    static let writeBatch = 256 * 1024

    private let request: UploadRequest
    private let file: SpoolFile
    private let service: DeliveryService
    private let idempotencyKey: String?
    private let announced: Bool
    private let maxBodySize: UInt64
    private let tokenLimit: TokenLimit?
    private let owner: String?
    private let quota: Capacity.Quota?
    /// For a body of unannounced length: the free space to keep, checked at each write.
    private let minFreeDisk: UInt64?
    /// Carries the request id and client in its metadata.
    private let logger: Logger
    private let metrics: FerryMetrics
    private let started: Double
    private let requestID: String
    private let pending = BodyBuffer()
    private var reservedBytes: UInt64
    private var received: UInt64 = 0
    /// Of the free space promised to the announced body, what is not written yet.
    private var promisedLeft: UInt64

    init(
        request: UploadRequest, file: SpoolFile, service: DeliveryService, reservedBytes: UInt64,
        announced: Bool, idempotencyKey: String?, maxBodySize: UInt64, tokenLimit: TokenLimit?,
        owner: String?, quota: Capacity.Quota?, minFreeDisk: UInt64?, logger: Logger, metrics: FerryMetrics,
        started: Double,
        requestID: String
    ) {
        self.minFreeDisk = minFreeDisk
        self.tokenLimit = tokenLimit
        self.owner = owner
        self.quota = quota
        self.request = request
        self.file = file
        self.service = service
        self.reservedBytes = reservedBytes
        self.promisedLeft = announced ? reservedBytes : 0
        self.announced = announced
        self.idempotencyKey = idempotencyKey
        self.maxBodySize = maxBodySize
        self.logger = logger
        self.started = started
        self.requestID = requestID
        self.metrics = metrics
        metrics.uploadsInFlight.add(1, ordering: .relaxed)
    }

    deinit {
        metrics.uploadsInFlight.subtract(1, ordering: .relaxed)
    }

    func consume(_ chunk: BodyChunk) -> HTTPBodyVerdict {
        let count = UInt64(chunk.count)
        received += count
        metrics.bytesReceived.increment(by: chunk.count)
        if received > maxBodySize {
            return .stop(refuse(.bodyTooLarge(limit: maxBodySize)))
        }
        if let tokenLimit, received > tokenLimit.bytes {
            return .stop(refuse(.forbidden(tokenLimit.refusal)))
        }
        if !announced {
            // A chunked body reserves spool bytes as they come.
            if let refusal = service.capacity.grow(by: count, owner: owner, quota: quota) {
                return .stop(refuse(APIError(refusal)))
            }
            reservedBytes += count
        }
        pending.append(chunk)
        if pending.count >= Self.writeBatch, let failure = flush() {
            return .stop(refuse(failure))
        }
        return .proceed
    }

    func finish(respond: @escaping @Sendable (HTTPResponse) -> Void) {
        if let failure = flush() {
            respond(refuse(failure))
            return
        }
        // All written: whatever of the promise is left was never needed.
        service.spool.settle(promisedLeft)
        promisedLeft = 0
        let service = self.service
        let logger = self.logger
        let started = self.started
        let reservedBytes = self.reservedBytes
        let owner = self.owner
        let idempotencyKey = self.idempotencyKey
        let id = file.id
        service.accept(
            file, request: request, bytes: received, idempotencyKey: idempotencyKey, requestID: requestID,
            owner: owner
        ) { result in
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
            case .failure(let error):
                service.capacity.cancel(bytes: reservedBytes, owner: owner)
                if let idempotencyKey { service.store.release(idempotencyKey: idempotencyKey, owner: owner) }
                logger.error("cannot commit upload", metadata: ["task": "\(id)", "error": "\(error)"])
                let failure: APIError =
                    error.isNoSpace
                    ? .insufficientStorage(error.description) : .serverFault(error.description)
                respond(failure.response)
            }
        }
    }

    func abort(reason: String) {
        giveBack()
        logger.info(
            "upload aborted",
            metadata: [
                "task": "\(file.id)", "container": "\(request.container)", "destination": "\(request.path)",
                "bytes": "\(received)", "reason": "\(reason)",
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

    /// Writes what is gathered; on failure says how to answer.
    private func flush() -> APIError? {
        let count = UInt64(pending.count)
        if let minFreeDisk, let available = try? service.spool.unpromisedBytes(),
            available < count || available - count < minFreeDisk
        {
            return .insufficientStorage(
                "\(available) bytes free and not promised to other uploads, \(minFreeDisk) kept in reserve")
        }
        do {
            try pending.drain(to: file.descriptor)
            let kept = min(count, promisedLeft)
            promisedLeft -= kept
            service.spool.settle(kept)
            return nil
        } catch {
            let failure = SystemError(call: "write", errno: error.errno)
            if failure.isNoSpace { return .insufficientStorage(failure.description) }
            logger.error("cannot write spool file", metadata: ["task": "\(file.id)", "error": "\(failure)"])
            return .serverFault(failure.description)
        }
    }

    /// Gives up on this upload mid-body and says why.
    private func refuse(_ error: APIError) -> HTTPResponse {
        giveBack()
        logger.info(
            "upload refused",
            metadata: [
                "task": "\(file.id)", "container": "\(request.container)", "destination": "\(request.path)",
                "bytes": "\(received)", "status": "\(error.status)", "error": "\(error.code)",
            ])
        return error.response
    }

    /// The partial file, the reservation and the idempotency key go.
    private func giveBack() {
        service.spool.settle(promisedLeft)
        promisedLeft = 0
        file.discard()
        service.capacity.cancel(bytes: reservedBytes, owner: owner)
        if let idempotencyKey { service.store.release(idempotencyKey: idempotencyKey, owner: owner) }
    }
}
