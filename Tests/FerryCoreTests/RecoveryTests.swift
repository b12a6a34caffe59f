import CSystem
import FerryCore
import Foundation
import Logging
import Synchronization
import XCTest

/// Start-up on a real directory and a real store: what was acknowledged comes back in
/// acceptance order, what was not goes, a round-1 spool is adopted, and a state that
/// cannot be stored never loses a task.
final class RecoveryTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "ferry-recovery-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Holds every push until released; then says it could not start, which changes no
    /// count, so the tasks stay as recovery left them.
    final class HeldPusher: Pusher {
        let pushed = Mutex<[String]>([])
        let gate = DispatchSemaphore(value: 0)
        let released = Atomic(false)
        let deliver: Bool

        init(deliver: Bool = false) {
            self.deliver = deliver
        }

        func push(_ task: UploadTask) -> PushResult {
            pushed.withLock { $0.append(task.id) }
            if deliver { return .delivered }
            if !released.load(ordering: .acquiring) { gate.wait() }
            return .failed(PushFailure(kind: .unstarted, message: "released by the test"))
        }

        func push(_ tasks: [UploadTask], sources: [String]) -> PushResult {
            tasks.map(push).first ?? .delivered
        }

        func release() {
            released.store(true, ordering: .releasing)
            for _ in 0..<16 { gate.signal() }
        }
    }

    private func service(store: any TaskStore, pusher: any Pusher, retention: Double = 86_400) throws
        -> DeliveryService
    {
        var settings = DeliveryService.Settings()
        settings.workers = 1
        settings.batchMax = 1
        settings.durable = false
        settings.retention = retention
        settings.retryPolicy = RetryPolicy(maxAttempts: 5, base: 0.01, cap: 0.05)
        return DeliveryService(
            spool: try Spool(directory: directory), store: store, pusher: pusher, settings: settings,
            logger: Logger(label: "test"))
    }

    /// The spool's files but the store's and the empty spares (emptied data files kept for
    /// reuse).
    private func names() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { name in
            if name.hasPrefix("tasks.db") { return false }
            guard name.hasSuffix(".spare") else { return true }
            return (try? FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")[.size] as? Int)
                != 0
        }.sorted()
    }

    private func write(_ name: String, _ bytes: [UInt8]) {
        FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data(bytes))
    }

    // MARK: Round 1

    func testASpoolWrittenByTheRoundOneReleaseIsAdoptedAndItsTasksQueuedInAcceptanceOrder() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/round1-spool/spool.tar.gz").standardized.path
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["--xattrs", "--xattrs-include=user.*", "-xzf", fixture, "-C", directory]
        try tar.run()
        tar.waitUntilExit()
        XCTAssertEqual(tar.terminationStatus, 0)
        XCTAssertEqual(try names().filter { $0.hasSuffix(".json") }.count, 3, "the fixture is round 1's")

        let store = try SQLiteTaskStore(path: "\(directory)/tasks.db")
        let pusher = HeldPusher()
        let first = try service(store: store, pusher: pusher)
        let recovery = try first.start()
        defer {
            pusher.release()
            first.shutdown(deadline: Monotonic.seconds() + 5)
        }

        XCTAssertEqual(recovery.adopted, 9, "every record the old release wrote")
        XCTAssertEqual(recovery.dataRemoved, 1, "the body that was arriving when it was killed")
        XCTAssertEqual(recovery.lost, [])
        let requeued = try recovery.requeued.map { try XCTUnwrap(store.record(id: $0)).request.path }
        XCTAssertEqual(requeued.count, 6)
        XCTAssertEqual(
            requeued.map { $0.count > 100 ? "long" : $0 },
            [
                "/srv/hold-1.txt", "/srv/hold-2.txt", "/srv/queued-1.txt", "/srv/queued-2.txt", "long",
                "/srv/queued-3.txt",
            ],
            "acceptance order, the pushes it was making included")
        XCTAssertEqual(try store.record(id: recovery.requeued[4])?.request.path.utf8.count, 3_859)
        XCTAssertEqual(try store.record(id: recovery.requeued[4])?.request.createDirectories, true)

        let all = try XCTUnwrap(store.list(TaskQuery(limit: 100)))
        XCTAssertEqual(all.count, 9)
        let delivered = all.filter { $0.state == .delivered }.map(\.request.path)
        XCTAssertEqual(delivered, ["/srv/done-1.txt", "/srv/done-2.txt"])
        let failed = try XCTUnwrap(all.first { $0.state == .failed })
        XCTAssertEqual(failed.request.path, "/srv/fail-1.txt")
        XCTAssertEqual(failed.owner, "bob")
        XCTAssertEqual(failed.attempts, 1)
        XCTAssertEqual(failed.lastError, "Error: Instance not found")
        XCTAssertEqual(Set(all.map { $0.owner ?? "-" }), ["alice", "bob"])

        XCTAssertEqual(
            try store.record(idempotencyKey: "alice-key-1", owner: "alice")?.request.path, "/srv/done-2.txt")
        XCTAssertEqual(
            try store.record(idempotencyKey: "bob-key-1", owner: "bob")?.request.path, "/srv/queued-2.txt")
        XCTAssertNil(try store.record(idempotencyKey: "alice-key-1", owner: "bob"))

        // The old records are gone; the bytes stay under their names.
        let left = try names()
        XCTAssertEqual(left.filter { !$0.hasSuffix(".data") }, [], "no record files")
        XCTAssertEqual(left.count, 7, "the bytes of the six unfinished tasks and the failed one")
        for name in left {
            XCTAssertLessThan(getxattr("\(directory)/\(name)", "user.ferry.record", nil, 0), 0, name)
        }
        XCTAssertTrue(left.contains("\(failed.id).data"), "a dead letter keeps its bytes")

        pusher.release()
        first.shutdown(deadline: Monotonic.seconds() + 5)

        // A second start adopts nothing more and finds the same work.
        let again = try service(
            store: try SQLiteTaskStore(path: "\(directory)/tasks.db"), pusher: HeldPusher(deliver: true))
        let second = try again.start()
        defer { again.shutdown(deadline: Monotonic.seconds() + 5) }
        XCTAssertEqual(second.adopted, 0)
        XCTAssertEqual(second.requeued, recovery.requeued)
    }

    // MARK: Reconciling store and spool

    func testStoreAndDataFilesAreReconciledAtStart() throws {
        let store = try SQLiteTaskStore(path: "\(directory)/tasks.db")
        var delivered = TaskStoreTests.record("done", 4)
        delivered.state = .delivered
        try store.insert(
            [
                TaskStoreTests.record("whole", 1), TaskStoreTests.record("cut", 2),
                TaskStoreTests.record("gone", 3), delivered,
            ], durable: false)
        write("whole.data", [1])  // record 1 says 1 byte
        write("cut.data", [1])  // record 2 says 2 bytes
        write("done.data", [1, 2, 3, 4])  // delivered, but its bytes were not removed yet
        write("stray.data", [9])  // a body that was arriving: no task
        try FileManager.default.createDirectory(
            atPath: "\(directory)/abc.batch", withIntermediateDirectories: false)
        write("abc.batch/link", [1])
        write("old.part", [1])

        let pusher = HeldPusher()
        let service = try service(store: store, pusher: pusher)
        let recovery = try service.start()
        pusher.release()
        service.shutdown(deadline: Monotonic.seconds() + 5)

        XCTAssertEqual(recovery.requeued, ["whole"])
        XCTAssertEqual(recovery.damaged, ["cut"])
        XCTAssertEqual(recovery.lost, ["gone"])
        XCTAssertEqual(recovery.dataRemoved, 2, "the delivered task's bytes and the stray body")
        XCTAssertEqual(recovery.temporariesRemoved, 2, "the staged batch and the old partial")
        XCTAssertEqual(try names(), ["cut.data", "whole.data"])
        let cut = try XCTUnwrap(store.record(id: "cut"))
        XCTAssertEqual(cut.state, .failed, "never pushed: it is not the file that was accepted")
        XCTAssertTrue(cut.lastError?.contains("1 bytes, the upload had 2") == true, cut.lastError ?? "")
        XCTAssertNil(try store.record(id: "gone"))
        XCTAssertEqual(try store.record(id: "done")?.state, .delivered)
    }

    // MARK: Failed writes

    /// The real store, but "delivered" cannot be written while `refuseDelivered` is set.
    final class RefusingStore: TaskStore, @unchecked Sendable {
        let inner: SQLiteTaskStore
        let refuseDelivered = Atomic(true)
        let refusals = Atomic(0)

        init(_ inner: SQLiteTaskStore) { self.inner = inner }

        func update(
            ids: [String], if condition: (TaskRecord) -> Bool, apply change: (inout TaskRecord) -> Void
        ) throws(StoreError) -> [TaskUpdate] {
            var probe = TaskStoreTests.record("probe", 1)
            change(&probe)
            if probe.state == .delivered && refuseDelivered.load(ordering: .acquiring) {
                refusals.add(1, ordering: .relaxed)
                throw StoreError(code: 13, message: "database or disk is full (injected)")
            }
            return try inner.update(ids: ids, if: condition, apply: change)
        }

        func insert(_ records: [TaskRecord], durable: Bool) throws(StoreError) {
            try inner.insert(records, durable: durable)
        }
        func record(id: String) throws(StoreError) -> TaskRecord? { try inner.record(id: id) }
        func record(idempotencyKey key: String, owner: String?) throws(StoreError) -> TaskRecord? {
            try inner.record(idempotencyKey: key, owner: owner)
        }
        func remove(id: String, if condition: (TaskRecord) -> Bool, beforeCommit: (TaskRecord) -> Bool)
            throws(StoreError) -> TaskUpdate
        { try inner.remove(id: id, if: condition, beforeCommit: beforeCommit) }
        func remove(ids: [String]) throws(StoreError) { try inner.remove(ids: ids) }
        func list(_ query: TaskQuery) throws(StoreError) -> [TaskRecord]? { try inner.list(query) }
        func expire(finishedBefore cutoff: Double, limit: Int) throws(StoreError) -> [TaskRecord] {
            try inner.expire(finishedBefore: cutoff, limit: limit)
        }
        func advance(id: String, _ progress: UploadProgress, durable: Bool) throws(StoreError) -> TaskRecord?
        {
            try inner.advance(id: id, progress, durable: durable)
        }
        func counts(owner: String?) throws(StoreError) -> [TaskState: Int] { try inner.counts(owner: owner) }
        func setting(_ key: String) throws(StoreError) -> String? { try inner.setting(key) }
        func setSetting(_ key: String, to value: String?) throws(StoreError) {
            try inner.setSetting(key, to: value)
        }
        func holdingBytes() throws(StoreError) -> [TaskRecord] { try inner.holdingBytes() }
        func lastSequence() throws(StoreError) -> UInt64 { try inner.lastSequence() }
    }

    func testADeliveryThatCannotBeRecordedKeepsItsBytesAndIsPushedAgain() throws {
        let store = RefusingStore(try SQLiteTaskStore(path: "\(directory)/tasks.db"))
        let pusher = HeldPusher(deliver: true)
        let service = try service(store: store, pusher: pusher)
        _ = try service.start()
        defer { service.shutdown(deadline: Monotonic.seconds() + 5) }

        let id = try accept(Array("payload".utf8), on: service)
        try waitUntil("the push is made again") { pusher.pushed.withLock { $0.count } >= 2 }
        let stored = try XCTUnwrap(store.record(id: id))
        XCTAssertNotEqual(stored.state, .delivered)
        XCTAssertFalse(stored.state.isFinished, "the store says what will happen: it is pushed again")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/\(id).data"), "its bytes are kept")
        XCTAssertGreaterThanOrEqual(store.refusals.load(ordering: .relaxed), 1)

        store.refuseDelivered.store(false, ordering: .releasing)
        try waitUntil("delivered once it can be recorded") { try store.record(id: id)?.state == .delivered }
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: "\(directory)/\(id).data"), "bytes removed after")
    }

    /// Accepts `body` as an upload through the service's own upload type.
    private func accept(_ body: [UInt8], on service: DeliveryService) throws -> String {
        let plan = UploadPlan(
            request: UploadRequest(container: "c1", path: "/srv/file"), announcedLength: UInt64(body.count),
            idempotencyKey: nil, owner: nil, quota: nil, maxBodySize: 1 << 20, tokenLimit: nil,
            minFreeDisk: 0,
            requestID: "test")
        guard case .receiving(let upload) = try service.begin(plan) else {
            XCTFail("a new upload is received")
            throw UploadRefusal.storage("not received")
        }
        XCTAssertNil(upload.admit(body.count))
        XCTAssertNil(
            upload.write(body.count) { descriptor throws(SystemError) -> any HashableBytes in
                guard Glibc.write(descriptor, body, body.count) == body.count else {
                    throw SystemError(call: "write", errno: errno)
                }
                return WrittenArray(body)
            })
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<TaskRecord, UploadRefusal>?>(nil)
        upload.commit { outcome in
            result.withLock { $0 = outcome }
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        return try XCTUnwrap(result.withLock { $0 }).get().id
    }

    private func waitUntil(_ what: String, _ condition: () throws -> Bool) throws {
        let deadline = Monotonic.seconds() + 10
        while try !condition() {
            guard Monotonic.seconds() < deadline else { return XCTFail("timed out: \(what)") }
            usleep(10_000)
        }
    }
}

/// Bytes a test wrote, to be hashed as the HTTP side's would be.
struct WrittenArray: HashableBytes {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: Int { bytes.count }

    func forEachRegion(_ body: (UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeBytes(body)
    }
}
