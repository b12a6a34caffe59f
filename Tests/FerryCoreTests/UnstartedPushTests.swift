import FerryCore
import Logging
import Synchronization
import XCTest

/// A push that could not start (no descriptors, no processes) is no attempt: the task waits
/// and is pushed again, and never becomes a dead letter for it.
final class UnstartedPushTests: XCTestCase {
    /// Fails to start `failures` times, then delivers.
    private final class StarvedPusher: Pusher {
        let failures: Int
        let calls = Atomic(0)

        init(failures: Int) { self.failures = failures }

        func push(_ task: UploadTask) -> PushResult {
            let call = calls.add(1, ordering: .relaxed).newValue
            return call <= failures
                ? .failed(PushFailure(kind: .unstarted, message: "socketpair: Too many open files"))
                : .delivered
        }

        func push(_ tasks: [UploadTask], sources: [String]) -> PushResult { push(tasks[0]) }
    }

    private final class Recorder: DeliveryLifecycle {
        let outcomes = Mutex<[DeliveryOutcome]>([])
        let attemptsWhenFinished = Mutex<[Int]>([])
        let delivered = DispatchSemaphore(value: 0)

        func willPush(_ tasks: [UploadTask]) -> [UploadTask] { tasks }
        func willRetry(_ task: UploadTask, after failure: PushFailure, delay: Double) {}
        func finished(_ tasks: [UploadTask], _ outcome: DeliveryOutcome) -> Bool {
            for task in tasks {
                outcomes.withLock { $0.append(outcome) }
                attemptsWhenFinished.withLock { $0.append(task.attempts) }
                delivered.signal()
            }
            return true
        }
    }

    private struct NoStaging: BatchStaging {
        func stage(_ tasks: [UploadTask]) throws(SystemError) -> StagedBatch {
            throw SystemError(call: "link", errno: EPERM)
        }
        func discard(_ batch: StagedBatch) {}
    }

    func testUnstartedPushesAreNotCountedAsAttempts() throws {
        let queue = DeliveryQueue()
        let pusher = StarvedPusher(failures: 3)
        let recorder = Recorder()
        // One attempt in all: any counted failure would make a dead letter.
        let pool = WorkerPool(
            queue: queue, pusher: pusher, staging: NoStaging(), workers: 1, batchMax: 1,
            retryPolicy: RetryPolicy(maxAttempts: 1, base: 0.01, cap: 0.01), logger: Logger(label: "test"),
            lifecycle: recorder)
        try pool.start()
        queue.enqueue(
            UploadTask(
                id: "t", request: UploadRequest(container: "c1", path: "/x"), sourcePath: "/nowhere", bytes: 1
            ))
        XCTAssertEqual(recorder.delivered.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(recorder.outcomes.withLock { $0 }, [.delivered])
        XCTAssertEqual(recorder.attemptsWhenFinished.withLock { $0 }, [1], "only the push that ran counts")
        XCTAssertEqual(pusher.calls.load(ordering: .relaxed), 4)
        pool.shutdown(deadline: Monotonic.seconds() + 1)
    }
}
