import FerryCore
import FerryHTTP
import Foundation
import Logging
import Metrics

/// One upload body on its way to the spool: the HTTP side of an ``UploadBody`` (a whole
/// upload, or one tus request). It gathers the body's pieces into large writes, tells the
/// upload, and turns the upload's refusals and its commit into answers. What the upload
/// holds is the upload's business.
final class UploadStream<Upload: UploadBody>: HTTPBodyConsumer {
    /// Bytes gathered before one vectored write: large enough to make the syscall cost
    /// vanish, small enough to keep memory flat.
    static var writeBatch: Int { 256 * 1024 }

    private let upload: Upload
    /// Carries the request id and client in its metadata.
    private let logger: Logger
    private let metrics: FerryMetrics
    private let started: Double
    private let pending = BodyBuffer()
    /// The answer to a body kept, and its status (for the log).
    private let answer: @Sendable (Upload.Outcome) -> HTTPResponse
    /// Counts this protocol's body bytes.
    private let bytesReceived: Counter

    init(
        upload: Upload, logger: Logger, metrics: FerryMetrics, started: Double, protocolName: String,
        answer: @escaping @Sendable (Upload.Outcome) -> HTTPResponse
    ) {
        self.upload = upload
        self.logger = logger
        self.started = started
        self.metrics = metrics
        self.answer = answer
        bytesReceived = metrics.uploadBytes(protocolName)
        metrics.uploadsInFlight.started(owner: upload.owner)
    }

    deinit {
        // A stream dropped without an end (the connection went away) gives all back.
        upload.abandon()
        metrics.uploadsInFlight.ended(owner: upload.owner)
    }

    func consume(_ chunk: BodyChunk) -> HTTPBodyVerdict {
        metrics.bytesReceived.increment(by: chunk.count)
        bytesReceived.increment(by: chunk.count)
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
        let (logger, started, id, answer) = (self.logger, self.started, upload.id, self.answer)
        let (request, received) = (upload.request, upload.received)
        upload.commit { result in
            switch result {
            case .success(let outcome):
                let response = answer(outcome)
                logger.info(
                    "upload accepted",
                    metadata: [
                        "task": "\(id)", "container": "\(request.container)",
                        "destination": "\(request.path)", "bytes": "\(received)",
                        "status": "\(response.status)",
                        "duration": "\(Monotonic.format(Monotonic.seconds() - started))s",
                    ])
                respond(response)
            case .failure(let refusal):
                let error = APIError(refusal)
                if error.status >= 500 {
                    logger.error("cannot commit upload", metadata: ["task": "\(id)", "error": "\(refusal)"])
                } else {
                    logger.info(
                        "upload refused",
                        metadata: ["task": "\(id)", "status": "\(error.status)", "error": "\(error.code)"])
                }
                respond(error.response)
            }
        }
    }

    func abort(reason: String) {
        // A tus PATCH keeps what arrived: the bytes gathered are written first.
        if upload.keepsCutOffBytes { _ = flush() }
        upload.abandon()
        logger.info(
            "upload aborted",
            metadata: [
                "task": "\(upload.id)", "container": "\(upload.request.container)",
                "destination": "\(upload.request.path)", "bytes": "\(upload.received)",
                "reason": "\(reason)",
            ])
    }

}

/// The answers to accepted uploads.
enum UploadAnswer {
    /// The 202 answer for a task (also repeated for a known `Idempotency-Key`).
    static func accepted(_ record: TaskRecord) -> HTTPResponse {
        struct Accepted: Encodable {
            var id, container, path: String
            var bytes: UInt64
            var sha256: String?
            var status = "queued"
            var message: String
        }
        let body = Accepted(
            id: record.id, container: record.request.container, path: record.request.path,
            bytes: record.bytes, sha256: record.sha256,
            message:
                "File '\(record.request.fileName)' queued for processing on container '\(record.request.container)'."
        )
        var headers = [("Location", "/tasks/\(record.id)")]
        if let digest = record.reprDigest { headers.append(("Repr-Digest", digest)) }
        return JSON.response(202, body, headers: headers)
    }
}

extension UploadStream {
    /// Writes what is gathered; on failure says why.
    private func flush() -> UploadRefusal? {
        let refusal = upload.write(pending.count) { descriptor throws(SystemError) -> any HashableBytes in
            do throws(BodyWriteError) {
                return try pending.drainKeeping(to: descriptor)
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
                "task": "\(upload.id)", "container": "\(upload.request.container)",
                "destination": "\(upload.request.path)", "bytes": "\(upload.received)",
                "status": "\(error.status)", "error": "\(error.code)",
            ])
        return error.response
    }
}

/// The HTTP side's written bytes are what the upload hashes.
extension WrittenBytes: HashableBytes {}

extension TaskRecord {
    /// RFC 9530's `Repr-Digest` of the task's bytes (nil when its hash is not known).
    var reprDigest: String? {
        guard let hex = sha256 else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex),
            let byte = UInt8(hex[index..<next], radix: 16)
        {
            bytes.append(byte)
            index = next
        }
        return "sha-256=:\(Data(bytes).base64EncodedString()):"
    }
}
