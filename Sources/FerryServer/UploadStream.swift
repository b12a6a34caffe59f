import Dispatch
import FerryCore
import FerryHTTP
import Logging

/// One upload body on its way to the spool: written as it arrives, synced off the event
/// loop, then queued for delivery and answered with 202.
final class UploadStream: HTTPBodyConsumer {
    /// Bytes gathered before one vectored write: large enough to make the syscall cost
    /// vanish, small enough to keep memory flat.
    static let writeBatch = 256 * 1024
    private static let committer = DispatchQueue(label: "ferry.commit", attributes: .concurrent)

    private let request: UploadRequest
    private let file: SpoolFile
    private let queue: DeliveryQueue
    private let maxBodySize: UInt64
    private let logger: Logger
    private let started: Double
    private let peer: String
    private let pending = BodyBuffer()
    private var received: UInt64 = 0

    init(
        request: UploadRequest, file: SpoolFile, queue: DeliveryQueue, maxBodySize: UInt64,
        logger: Logger, started: Double, peer: String
    ) {
        self.request = request
        self.file = file
        self.queue = queue
        self.maxBodySize = maxBodySize
        self.logger = logger
        self.started = started
        self.peer = peer
    }

    func consume(_ chunk: BodyChunk) -> HTTPBodyVerdict {
        received += UInt64(chunk.count)
        if received > maxBodySize {
            return .stop(refuse(.bodyTooLarge(limit: maxBodySize)))
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
        let task = UploadTask(id: file.id, request: request, sourcePath: file.completePath, bytes: received)
        let commit = Commit(
            task: task, file: file, queue: queue, logger: logger, started: started, peer: peer,
            answer: accepted(task), respond: respond)
        Self.committer.async { commit.run() }
    }

    func abort(reason: String) {
        file.discard()
        queue.cancelReservation()
        logger.info(
            "upload aborted",
            metadata: [
                "task": "\(file.id)", "container": "\(request.container)", "destination": "\(request.path)",
                "bytes": "\(received)", "reason": "\(reason)", "peer": "\(peer)",
            ])
    }

    /// Writes what is gathered; on failure says how to answer.
    private func flush() -> APIError? {
        do {
            try pending.drain(to: file.descriptor)
            return nil
        } catch {
            let failure = SystemError(call: "write", errno: error.errno)
            if failure.isNoSpace { return .insufficientStorage(failure.description) }
            logger.error("cannot write spool file", metadata: ["task": "\(file.id)", "error": "\(failure)"])
            return .serverFault(failure.description)
        }
    }

    /// Gives up on this upload mid-body: the partial file and the reservation go.
    private func refuse(_ error: APIError) -> HTTPResponse {
        file.discard()
        queue.cancelReservation()
        logger.info(
            "upload refused",
            metadata: [
                "task": "\(file.id)", "container": "\(request.container)", "destination": "\(request.path)",
                "bytes": "\(received)", "status": "\(error.status)", "error": "\(error.code)",
                "peer": "\(peer)",
            ])
        return error.response
    }

    private func accepted(_ task: UploadTask) -> HTTPResponse {
        struct Accepted: Encodable {
            var id, container, path: String
            var bytes: UInt64
            var status = "queued"
            var message: String
        }
        let name = task.request.fileName
        let body = Accepted(
            id: task.id, container: task.request.container, path: task.request.path, bytes: task.bytes,
            message: "File '\(name)' queued for processing on container '\(task.request.container)'.")
        return JSON.response(202, body, headers: [("Location", "/tasks/\(task.id)")])
    }
}

/// The part of an upload that runs off the event loop: sync, queue, answer.
private struct Commit: Sendable {
    let task: UploadTask
    let file: SpoolFile
    let queue: DeliveryQueue
    let logger: Logger
    let started: Double
    let peer: String
    let answer: HTTPResponse
    let respond: @Sendable (HTTPResponse) -> Void

    func run() {
        do {
            try file.commit()
        } catch {
            queue.cancelReservation()
            let failure: APIError =
                error.isNoSpace ? .insufficientStorage(error.description) : .serverFault(error.description)
            logger.error("cannot commit upload", metadata: ["task": "\(task.id)", "error": "\(error)"])
            respond(failure.response)
            return
        }
        queue.enqueue(task)
        logger.info(
            "upload accepted",
            metadata: [
                "task": "\(task.id)", "container": "\(task.request.container)",
                "destination": "\(task.request.path)", "bytes": "\(task.bytes)", "status": "202",
                "duration": "\(Monotonic.format(Monotonic.seconds() - started))s", "peer": "\(peer)",
            ])
        respond(answer)
    }
}
