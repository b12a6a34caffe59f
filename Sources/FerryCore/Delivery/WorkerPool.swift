import Dispatch
import Logging

/// Takes tasks from a ``DeliveryQueue`` and pushes at most `workers` of them at once.
///
/// A transient failure puts the task back in the queue after a backoff wait; a waiting task
/// holds no worker. When a task ends for good, `settle` is told (it removes or keeps the
/// spool file), then the queue frees its place.
public final class WorkerPool: Sendable {
    private let queue: DeliveryQueue
    private let pusher: any Pusher
    private let retryPolicy: RetryPolicy
    private let slots: DispatchSemaphore
    private let logger: Logger
    private let settle: @Sendable (UploadTask, DeliveryOutcome) -> Void

    public init(
        queue: DeliveryQueue, pusher: any Pusher, workers: Int, retryPolicy: RetryPolicy,
        logger: Logger, settle: @escaping @Sendable (UploadTask, DeliveryOutcome) -> Void
    ) {
        self.queue = queue
        self.pusher = pusher
        self.retryPolicy = retryPolicy
        self.slots = DispatchSemaphore(value: workers)
        self.logger = logger
        self.settle = settle
    }

    /// Starts the dispatcher thread. The pool runs for the life of the process.
    public func start() {
        let dispatcher = DispatchQueue(label: "ferry.dispatcher")
        let workers = DispatchQueue(label: "ferry.workers", attributes: .concurrent)
        dispatcher.async {
            while true {
                self.slots.wait()
                let task = self.queue.next()
                workers.async {
                    self.attempt(task)
                    self.slots.signal()
                }
            }
        }
    }

    private func attempt(_ queued: UploadTask) {
        var task = queued
        task.attempts += 1
        let started = DispatchTime.now()
        let result = pusher.push(task)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        var metadata: Logger.Metadata = [
            "task": "\(task.id)", "container": "\(task.request.container)",
            "path": "\(task.request.path)", "attempt": "\(task.attempts)",
            "duration": "\(Monotonic.format(seconds))s",
        ]
        switch result {
        case .delivered:
            metadata["outcome"] = "delivered"
            metadata["exit"] = "0"
            logger.info("push", metadata: metadata)
            finish(task, .delivered)
        case .failed(let failure):
            metadata["exit"] = "\(failure.exitStatus.map(String.init) ?? "none")"
            metadata["incus"] = "\(failure.message)"
            if failure.kind == .transient && retryPolicy.allowsRetry(afterAttempt: task.attempts) {
                var generator = SystemRandomNumberGenerator()
                let delay = retryPolicy.delay(afterAttempt: task.attempts, using: &generator)
                metadata["outcome"] = "retry"
                metadata["retry_in"] = "\(Monotonic.format(delay))s"
                logger.warning("push", metadata: metadata)
                let retried = task
                DispatchQueue.global().asyncAfter(deadline: .now() + delay) {
                    self.queue.enqueue(retried)
                }
            } else {
                metadata["outcome"] = failure.kind == .permanent ? "permanent_failure" : "gave_up"
                logger.warning("push", metadata: metadata)
                logger.error(
                    "delivery failed",
                    metadata: [
                        "task": "\(task.id)", "container": "\(task.request.container)",
                        "path": "\(task.request.path)", "attempts": "\(task.attempts)",
                        "incus": "\(failure.message)",
                    ])
                finish(task, .failed(failure))
            }
        }
    }

    private func finish(_ task: UploadTask, _ outcome: DeliveryOutcome) {
        settle(task, outcome)
        queue.settle()
    }
}
