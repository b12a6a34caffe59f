import Dispatch
import Logging
import Synchronization

/// Takes tasks from a ``DeliveryQueue`` and pushes at most `workers` of them at once.
///
/// A transient failure puts the task back in the queue after a backoff wait; a waiting task
/// holds no worker. What happens to a task is reported to a ``DeliveryLifecycle``.
public final class WorkerPool: Sendable {
    private let queue: DeliveryQueue
    private let pusher: any Pusher
    private let retryPolicy: RetryPolicy
    private let slots: DispatchSemaphore
    private let running = DispatchGroup()
    private let stopping = Atomic(false)
    private let logger: Logger
    private let lifecycle: any DeliveryLifecycle

    public init(
        queue: DeliveryQueue, pusher: any Pusher, workers: Int, retryPolicy: RetryPolicy,
        logger: Logger, lifecycle: any DeliveryLifecycle
    ) {
        self.queue = queue
        self.pusher = pusher
        self.retryPolicy = retryPolicy
        self.slots = DispatchSemaphore(value: workers)
        self.logger = logger
        self.lifecycle = lifecycle
    }

    /// Starts the dispatcher thread.
    public func start() {
        let dispatcher = DispatchQueue(label: "ferry.dispatcher")
        let workers = DispatchQueue(label: "ferry.workers", attributes: .concurrent)
        dispatcher.async {
            while true {
                self.slots.wait()
                let task = self.queue.next()
                // After shutdown began, a task stays as its record says (queued or retrying)
                // and is taken up again by the next process.
                if self.stopping.load(ordering: .acquiring) { return }
                self.running.enter()
                workers.async {
                    self.attempt(task)
                    self.running.leave()
                    self.slots.signal()
                }
            }
        }
    }

    /// Stops starting pushes, waits for running ones until `deadline` (monotonic seconds),
    /// then kills what still runs. Killed pushes are not counted as attempts: their tasks
    /// are pushed again after a restart.
    ///
    /// - Returns: whether every running push ended on its own.
    @discardableResult
    public func shutdown(deadline: Double) -> Bool {
        stopping.store(true, ordering: .releasing)
        let remaining = max(0, deadline - Monotonic.seconds())
        if running.wait(timeout: .now() + remaining) == .success { return true }
        ChildProcess.killAll()
        _ = running.wait(timeout: .now() + 5)
        return false
    }

    private func attempt(_ queued: UploadTask) {
        guard lifecycle.willPush(queued) else { return }
        var task = queued
        task.attempts += 1
        let started = Monotonic.seconds()
        let result = pusher.push(task)
        if stopping.load(ordering: .acquiring) && result != .delivered {
            logger.notice("push interrupted by shutdown", metadata: ["task": "\(task.id)"])
            return
        }
        var metadata: Logger.Metadata = [
            "task": "\(task.id)", "container": "\(task.request.container)",
            "path": "\(task.request.path)", "attempt": "\(task.attempts)",
            "duration": "\(Monotonic.format(Monotonic.seconds() - started))s",
        ]
        switch result {
        case .delivered:
            metadata["outcome"] = "delivered"
            metadata["exit"] = "0"
            logger.info("push", metadata: metadata)
            lifecycle.finished(task, .delivered)
        case .failed(let failure):
            metadata["exit"] = "\(failure.exitStatus.map(String.init) ?? "none")"
            metadata["incus"] = "\(failure.message)"
            if failure.kind == .transient && retryPolicy.allowsRetry(afterAttempt: task.attempts) {
                var generator = SystemRandomNumberGenerator()
                let delay = retryPolicy.delay(afterAttempt: task.attempts, using: &generator)
                metadata["outcome"] = "retry"
                metadata["retry_in"] = "\(Monotonic.format(delay))s"
                logger.warning("push", metadata: metadata)
                lifecycle.willRetry(task, after: failure, delay: delay)
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
                lifecycle.finished(task, .failed(failure))
            }
        }
    }
}
