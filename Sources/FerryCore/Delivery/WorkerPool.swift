import Dispatch
import Logging
import Synchronization

/// Takes tasks from a ``DeliveryQueue`` and pushes at most `workers` batches at once.
///
/// A batch (tasks for one container directory, owner and mode) goes out in one push; if
/// that fails, its tasks are pushed one by one, so one bad file cannot fail the others. A
/// transient failure puts the task back in the queue after a backoff wait; a waiting task
/// holds no worker. What happens to a task is reported to a ``DeliveryLifecycle``.
public final class WorkerPool: Sendable {
    private let queue: DeliveryQueue
    private let pusher: any Pusher
    private let staging: any BatchStaging
    private let batchMax: Int
    private let retryPolicy: RetryPolicy
    private let slots: DispatchSemaphore
    private let workers: Int
    private let running = DispatchGroup()
    private let stopping = Atomic(false)
    private let logger: Logger
    private let lifecycle: any DeliveryLifecycle
    private let metrics = DeliveryMetrics()
    /// Pushes running now: while some are (or uploads arrive in a stream), an idle worker
    /// lingers for a fuller batch.
    private let pushing = Atomic(0)
    /// How long a worker waits for a batch to fill while other pushes run. Against a real
    /// daemon a push takes tens of milliseconds, so this costs a delivery little and saves
    /// processes: with a fast pusher and no linger, four workers pushed 16 files a call.
    static let batchLinger = 0.025

    /// - Parameter batchMax: the most tasks one push may carry (1: no batching).
    public init(
        queue: DeliveryQueue, pusher: any Pusher, staging: any BatchStaging, workers: Int, batchMax: Int,
        retryPolicy: RetryPolicy, logger: Logger, lifecycle: any DeliveryLifecycle
    ) {
        self.queue = queue
        self.pusher = pusher
        self.staging = staging
        self.batchMax = max(1, batchMax)
        self.retryPolicy = retryPolicy
        self.slots = DispatchSemaphore(value: workers)
        self.workers = max(1, workers)
        self.logger = logger
        self.lifecycle = lifecycle
    }

    /// Starts one thread per worker, each taking a batch and pushing it, the semaphore
    /// bounding how many push at once.
    ///
    /// Pushes run on threads of their own, started here once, not on GCD's queues: a push
    /// blocks for as long as its process runs, and GCD runs blocking work items only about
    /// one per core at once (on 2 cores, 4 pushes of 500 ms took 1 s), so `--workers 4`
    /// would not mean 4. Starting them all now means no push can wait for a thread that the
    /// system cannot give later (a thread that fails to start would hold its batch for
    /// ever).
    ///
    /// - Throws: when a thread cannot be started.
    public func start() throws(SystemError) {
        for _ in 0..<workers {
            try WorkerThread.start(named: "ferry-push") {
                while true {
                    self.slots.wait()
                    let busy = self.pushing.load(ordering: .relaxed) > 0 || self.queue.arrivalsStreaming
                    let batch = self.queue.next(limit: self.batchMax, linger: busy ? Self.batchLinger : nil)
                    // After shutdown began, a task stays as its record says (queued or
                    // retrying) and is taken up again by the next process.
                    if self.stopping.load(ordering: .acquiring) {
                        self.slots.signal()
                        return
                    }
                    self.running.enter()
                    self.pushing.add(1, ordering: .relaxed)
                    self.deliver(batch)
                    self.queue.pushEnded(batch)
                    self.pushing.subtract(1, ordering: .relaxed)
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

    private func deliver(_ batch: [UploadTask]) {
        let tasks = lifecycle.willPush(batch)
        if tasks.count < batch.count {
            let going = Set(tasks.map(\.id))
            for task in batch where !going.contains(task.id) { queue.release(task) }
        }
        if tasks.count == 1 { attempt(tasks[0]) }
        guard tasks.count > 1 else { return }
        let staged: StagedBatch
        do {
            staged = try staging.stage(tasks)
        } catch {
            logger.error(
                "cannot stage a batch; pushing its files one by one", metadata: ["error": "\(error)"])
            tasks.forEach(attempt)
            return
        }
        let started = Monotonic.seconds()
        let result = pusher.push(tasks, sources: staged.sources)
        staging.discard(staged)
        let duration = Monotonic.seconds() - started
        if stopping.load(ordering: .acquiring) && result != .delivered {
            logger.notice("batch push interrupted by shutdown", metadata: ["files": "\(tasks.count)"])
            return
        }
        if case .failed(let failure) = result, !failure.started {
            // Refused before the push or never started: nothing was attempted.
        } else {
            metrics.batches.increment()
            metrics.attempt(result, seconds: duration, files: tasks.count, remote: tasks[0].request.remote)
        }
        let first = tasks[0]
        var metadata: Logger.Metadata = [
            "files": "\(tasks.count)", "container": "\(first.request.container)",
            "directory": "\(first.destinationDirectory)",
            "duration": "\(Monotonic.format(duration))s",
        ]
        switch result {
        case .delivered:
            metadata["outcome"] = "delivered"
            logger.info("batch push", metadata: metadata)
            let delivered = tasks.map { task in
                var task = task
                task.attempts += 1
                return task
            }
            guard lifecycle.finished(delivered, .delivered) else {
                for task in tasks { requeueUnrecorded(task) }
                return
            }
            for task in delivered {
                queue.release(task)
                logger.info(
                    "push",
                    metadata: [
                        "task": "\(task.id)", "container": "\(task.request.container)",
                        "path": "\(task.request.path)", "attempt": "\(task.attempts)", "outcome": "delivered",
                        "batch_files": "\(tasks.count)",
                    ])
            }
        case .failed(let failure) where failure.kind == .unstarted:
            metadata["outcome"] = "not_started"
            metadata["incus"] = "\(failure.message)"
            logger.warning("batch push", metadata: metadata)
            for task in tasks { postpone(task, after: failure) }
        case .failed(let failure):
            // Not counted as an attempt of any member: each gets its own try now.
            metadata["outcome"] = "one_by_one"
            metadata["incus"] = "\(failure.message)"
            logger.warning("batch push", metadata: metadata)
            tasks.forEach(attempt)
        }
    }

    /// Queues `task` again after a wait, its attempts as they were: its push never started.
    private func postpone(_ task: UploadTask, after failure: PushFailure) {
        var generator = SystemRandomNumberGenerator()
        // At least the first backoff step, so a system out of descriptors is not asked
        // again at once by every waiting task.
        let delay = max(0.1, retryPolicy.delay(afterAttempt: 1, using: &generator))
        lifecycle.willRetry(task, after: failure, delay: delay)
        DispatchQueue.global().asyncAfter(deadline: .now() + delay) {
            self.queue.enqueue(task)
        }
    }

    /// Queues `task` again after a wait, its attempts as they were: its outcome could not be
    /// recorded, and pushing it once more is better than forgetting it unrecorded.
    private func requeueUnrecorded(_ task: UploadTask) {
        var generator = SystemRandomNumberGenerator()
        let delay = max(0.1, retryPolicy.delay(afterAttempt: 1, using: &generator))
        logger.warning(
            "push outcome not recorded; pushing again",
            metadata: ["task": "\(task.id)", "retry_in": "\(delay)s"])
        DispatchQueue.global().asyncAfter(deadline: .now() + delay) {
            self.queue.enqueue(task)
        }
    }

    private func attempt(_ queued: UploadTask) {
        var task = queued
        task.attempts += 1
        let started = Monotonic.seconds()
        let result = pusher.push(task)
        let duration = Monotonic.seconds() - started
        if stopping.load(ordering: .acquiring) && result != .delivered {
            logger.notice("push interrupted by shutdown", metadata: ["task": "\(task.id)"])
            return
        }
        // A push that could not start is no attempt; one refused by the destination check
        // counts, as the permanent failure it makes.
        if case .failed(let failure) = result, failure.kind == .unstarted {
        } else {
            metrics.attempt(result, seconds: duration, remote: task.request.remote)
        }
        var metadata: Logger.Metadata = [
            "task": "\(task.id)", "container": "\(task.request.container)",
            "path": "\(task.request.path)", "attempt": "\(task.attempts)",
            "duration": "\(Monotonic.format(duration))s",
        ]
        switch result {
        case .delivered:
            // The record first, then the log line: whoever reads the log may ask the API.
            guard lifecycle.finished([task], .delivered) else { return requeueUnrecorded(queued) }
            queue.release(task)
            metadata["outcome"] = "delivered"
            metadata["exit"] = "0"
            logger.info("push", metadata: metadata)
        case .failed(let failure) where failure.kind == .unstarted:
            metadata["outcome"] = "not_started"
            metadata["incus"] = "\(failure.message)"
            logger.warning("push", metadata: metadata)
            postpone(queued, after: failure)
        case .failed(let failure):
            metadata["exit"] = "\(failure.exitStatus.map(String.init) ?? "none")"
            metadata["incus"] = "\(failure.message)"
            if failure.kind == .transient && retryPolicy.allowsRetry(afterAttempt: task.attempts) {
                var generator = SystemRandomNumberGenerator()
                let delay = retryPolicy.delay(afterAttempt: task.attempts, using: &generator)
                lifecycle.willRetry(task, after: failure, delay: delay)
                metrics.retries.increment()
                metadata["outcome"] = "retry"
                metadata["retry_in"] = "\(Monotonic.format(delay))s"
                logger.warning("push", metadata: metadata)
                // The task keeps its destination while it waits: a later upload to the same
                // path must not overtake it.
                let retried = task
                DispatchQueue.global().asyncAfter(deadline: .now() + delay) {
                    self.queue.enqueue(retried)
                }
            } else {
                guard lifecycle.finished([task], .failed(failure)) else { return requeueUnrecorded(queued) }
                queue.release(task)
                metadata["outcome"] = failure.kind == .permanent ? "permanent_failure" : "gave_up"
                logger.warning("push", metadata: metadata)
                logger.error(
                    "delivery failed",
                    metadata: [
                        "task": "\(task.id)", "container": "\(task.request.container)",
                        "path": "\(task.request.path)", "attempts": "\(task.attempts)",
                        "incus": "\(failure.message)",
                    ])
            }
        }
    }
}
