import FerryCore
import Foundation
import Synchronization
import XCTest

/// How the queue hands out batches: one container directory, distinct destinations, and a
/// destination held until its task is released.
final class DeliveryQueueTests: XCTestCase {
    private func task(_ id: String, _ path: String, container: String = "c1", mode: UInt32 = 0o644)
        -> UploadTask
    {
        UploadTask(
            id: id, request: UploadRequest(container: container, path: path, mode: mode),
            sourcePath: "/spool/\(id).data", bytes: 1)
    }

    func testTasksOfOneDirectoryOwnerAndModeGoTogether() {
        let queue = DeliveryQueue()
        queue.enqueue(task("1", "/srv/a"))
        queue.enqueue(task("2", "/srv/b"))
        queue.enqueue(task("3", "/other/c"))
        queue.enqueue(task("4", "/srv/d", mode: 0o600))
        queue.enqueue(task("5", "/srv/e", container: "c2"))
        queue.enqueue(task("6", "/srv/f"))

        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["1", "2", "6"])
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["3"])
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["4"])
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["5"])
        XCTAssertEqual(queue.depth, 0)
    }

    func testAPausedContainersTasksWaitWhileOthersGoAndGoInOrderOnResume() {
        let queue = DeliveryQueue()
        queue.apply(.pause(container: "c1"), at: 100)
        queue.enqueue(task("1", "/srv/a"))
        queue.enqueue(task("2", "/srv/b", container: "c2"))
        queue.enqueue(task("3", "/srv/c"))
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["2"], "c1 is paused")
        XCTAssertEqual(queue.depth, 2, "held tasks still count as waiting")
        // Pausing what is paused keeps its first time; a second container pauses apart.
        XCTAssertEqual(queue.apply(.pause(container: "c1"), at: 200).containers["c1"], 100)
        queue.enqueue(task("4", "/srv/d", container: "c2"))
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["4"])
        XCTAssertTrue(queue.apply(.resume(container: "c1"), at: 300).isEmpty)
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["1", "3"], "in their order, batched")
    }

    func testPausingEverythingHoldsEveryContainerUntilResumeAll() {
        let queue = DeliveryQueue()
        queue.apply(.pauseAll, at: 1)
        queue.apply(.pause(container: "c2"), at: 2)
        queue.enqueue(task("1", "/srv/a"))
        queue.enqueue(task("2", "/srv/b", container: "c2"))
        let taken = Atomic(0)
        let worker = Thread {
            _ = queue.next(limit: 1)
            taken.add(1, ordering: .relaxed)
        }
        worker.start()
        // Resuming c2 alone leaves the pause of all in force.
        XCTAssertTrue(queue.apply(.resume(container: "c2"), at: 3).all)
        XCTAssertEqual(queue.depth, 2)
        XCTAssertEqual(taken.load(ordering: .relaxed), 0)
        XCTAssertTrue(queue.apply(.resumeAll, at: 4).isEmpty)
        let deadline = Date(timeIntervalSinceNow: 5)
        while taken.load(ordering: .relaxed) == 0 && Date() < deadline { usleep(1000) }
        XCTAssertEqual(taken.load(ordering: .relaxed), 1, "the waiting worker took a task on resume")
        XCTAssertEqual(queue.next(limit: 1).count, 1)
    }

    func testARemoteAtItsLimitWaitsWhileOthersGoUntilOneOfItsPushesEnds() {
        let queue = DeliveryQueue(limitPerRemote: 1)
        queue.enqueue(task("1", "/a/x", container: "r2:c3"))
        queue.enqueue(task("2", "/b/x", container: "r2:c3"))
        queue.enqueue(task("3", "/srv/x"))
        queue.enqueue(task("4", "/a/x", container: "r3:c3"))
        let first = queue.next(limit: 64)
        XCTAssertEqual(first.map(\.id), ["1"])
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["3"], "r2 has its one push running")
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["4"], "another remote has its own limit")
        XCTAssertEqual(queue.depth, 1)
        queue.pushEnded(first)
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["2"])
    }

    func testABatchStopsAtItsLimit() {
        let queue = DeliveryQueue()
        for index in 0..<10 { queue.enqueue(task("\(index)", "/srv/\(index)")) }
        XCTAssertEqual(queue.next(limit: 4).count, 4)
        XCTAssertEqual(queue.depth, 6)
    }

    func testALingeringWorkerWaitsForAFullerBatchAndNoLongerThanItsLinger() {
        let queue = DeliveryQueue()
        queue.enqueue(task("first", "/srv/first"))
        let taken = DispatchSemaphore(value: 0)
        let batch = ManagedAtomicCounter()
        DispatchQueue.global().async {
            // Linger of a minute: only a full batch can end the wait this soon.
            for _ in queue.next(limit: 4, linger: 60) { batch.add() }
            taken.signal()
        }
        for index in 0..<3 { queue.enqueue(task("\(index)", "/srv/\(index)")) }
        XCTAssertEqual(taken.wait(timeout: .now() + 10), .success, "a full batch goes at once")
        XCTAssertEqual(batch.value, 4, "the tasks that came while it lingered went with it")

        queue.enqueue(task("lone", "/srv/lone"))
        let started = Monotonic.seconds()
        XCTAssertEqual(queue.next(limit: 4, linger: 0.05).map(\.id), ["lone"])
        XCTAssertGreaterThanOrEqual(Monotonic.seconds() - started, 0.04, "it lingered")
        queue.enqueue(task("idle", "/srv/idle"))
        XCTAssertEqual(queue.next(limit: 4).map(\.id), ["idle"], "without a linger: at once")
    }

    func testOneDestinationIsNeverTwiceInABatchNorHandedOutWhileHeld() {
        let queue = DeliveryQueue()
        let older = task("older", "/srv/same")
        queue.enqueue(older)
        queue.enqueue(task("newer", "/srv/same"))
        queue.enqueue(task("other", "/srv/other"))

        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["older", "other"])
        let handedOut = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            XCTAssertEqual(queue.next(limit: 64).map(\.id), ["newer"])
            handedOut.signal()
        }
        XCTAssertEqual(handedOut.wait(timeout: .now() + 0.3), .timedOut, "held while 'older' is out")
        queue.release(older)
        XCTAssertEqual(handedOut.wait(timeout: .now() + 10), .success, "free once 'older' is released")
    }

    func testABacklogToOneHeldDestinationHoldsBackNoOtherAndKeepsItsOrder() {
        let queue = DeliveryQueue()
        for index in 0..<5_000 { queue.enqueue(task("same-\(index)", "/srv/same")) }
        let first = queue.next(limit: 64)
        XCTAssertEqual(first.map(\.id), ["same-0"], "one destination is never twice in a batch")
        queue.enqueue(task("other", "/elsewhere/x"))
        XCTAssertEqual(queue.next(limit: 64).map(\.id), ["other"], "not behind the held backlog")
        XCTAssertEqual(queue.depth, 4_999)
        var previous = first[0]
        for index in 1..<5_000 {
            queue.release(previous)
            let batch = queue.next(limit: 64)
            XCTAssertEqual(batch.map(\.id), ["same-\(index)"], "in acceptance order")
            previous = batch[0]
        }
        XCTAssertEqual(queue.depth, 0)
    }

    func testATaskWaitingToRetryKeepsItsDestination() {
        let queue = DeliveryQueue()
        let first = task("first", "/srv/x")
        queue.enqueue(first)
        XCTAssertEqual(queue.next().map(\.id), ["first"])
        queue.enqueue(task("second", "/srv/x"))
        queue.enqueue(first)  // back from its backoff wait
        XCTAssertEqual(queue.next().map(\.id), ["first"], "the held destination's own task may go")
    }
}
