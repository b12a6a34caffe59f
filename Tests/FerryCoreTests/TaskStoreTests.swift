import CSQLite
import FerryCore
import Foundation
import XCTest

/// The SQLite task store on a real file: what is written is read back, conditions guard
/// changes, listing pages through indexes, retention removes in batches, and a failed
/// write changes nothing.
final class TaskStoreTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "ferry-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private var path: String { "\(directory)/tasks.db" }

    static func record(
        _ id: String, _ sequence: UInt64, state: TaskState = .queued, owner: String? = nil,
        container: String = "c1", path: String? = nil, key: String? = nil, updatedAt: Double = 0
    ) -> TaskRecord {
        var record = TaskRecord(
            id: id, sequence: sequence,
            request: UploadRequest(container: container, path: path ?? "/srv/\(id)"),
            bytes: sequence, createdAt: 1, idempotencyKey: key, requestID: "request-\(id)", owner: owner)
        record.state = state
        record.updatedAt = updatedAt
        return record
    }

    func testInsertedTasksAreReadBackWholeAfterReopening() throws {
        var first = Self.record("a", 1, owner: "alice", key: "k1")
        first.request = UploadRequest(
            container: "web-1", path: "/srv/é x/ñ.txt", mode: 0o4755, uid: 1000, gid: 33,
            createDirectories: true)
        first.attempts = 3
        first.lastError = "Error: some failure"
        try SQLiteTaskStore(path: path).insert([first, Self.record("b", 2)], durable: true)

        let reopened = try SQLiteTaskStore(path: path)
        XCTAssertEqual(try reopened.record(id: "a"), first, "every field, byte for byte")
        XCTAssertEqual(try reopened.record(id: "b")?.owner, nil)
        XCTAssertNil(try reopened.record(id: "c"))
        XCTAssertEqual(try reopened.lastSequence(), 2)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600, "task records are nobody else's to read")
    }

    func testAGroupIsStoredWholeOrNotAtAll() throws {
        let store = try SQLiteTaskStore(path: path)
        try store.insert([Self.record("a", 1)], durable: false)
        // The second record reuses an id: the write fails, and the first of its group goes too.
        XCTAssertThrowsError(try store.insert([Self.record("b", 2), Self.record("a", 3)], durable: true)) {
            error in
            XCTAssertTrue("\(error)".contains("UNIQUE"), "\(error)")
        }
        XCTAssertNil(try store.record(id: "b"), "nothing of a failed group is kept")
        XCTAssertEqual(try store.list(TaskQuery(limit: 10))?.map(\.id), ["a"])
    }

    func testAnUpdateHappensOnlyWhereItsConditionHolds() throws {
        let store = try SQLiteTaskStore(path: path)
        try store.insert([Self.record("q", 1), Self.record("f", 2, state: .failed)], durable: false)
        let results = try store.update(
            ids: ["q", "f", "missing"], if: { $0.state == .queued },
            apply: {
                $0.state = .pushing
                $0.attempts = 7
            })
        XCTAssertEqual(results[0].updated?.state, .pushing)
        XCTAssertGreaterThan(results[0].updated?.updatedAt ?? 0, 1_000_000, "stamped with the time")
        XCTAssertNil(results[1].updated, "the condition did not hold")
        XCTAssertEqual(results[1].current?.state, .failed, "and it says what the task is")
        XCTAssertEqual(results[2], TaskUpdate(updated: nil, current: nil))
        XCTAssertEqual(try store.record(id: "q")?.attempts, 7)
        XCTAssertEqual(try store.record(id: "f")?.state, .failed)
    }

    func testARemovalIsRolledBackWhenItsBytesCannotGo() throws {
        let store = try SQLiteTaskStore(path: path)
        try store.insert([Self.record("t", 1)], durable: false)
        let kept = try store.remove(id: "t", if: { _ in true }, beforeCommit: { _ in false })
        XCTAssertNil(kept.updated)
        XCTAssertNotNil(try store.record(id: "t"), "still known while its bytes are on disk")
        let refused = try store.remove(id: "t", if: { $0.state == .failed }, beforeCommit: { _ in true })
        XCTAssertEqual(refused.current?.state, .queued)
        let removed = try store.remove(id: "t", if: { _ in true }, beforeCommit: { _ in true })
        XCTAssertEqual(removed.updated?.id, "t")
        XCTAssertNil(try store.record(id: "t"))
    }

    func testListingPagesInAcceptanceOrderWithFilters() throws {
        let store = try SQLiteTaskStore(path: path)
        var records: [TaskRecord] = []
        for sequence in 1...30 {
            let owner = sequence % 3 == 0 ? "bob" : "alice"
            let state: TaskState = sequence % 5 == 0 ? .failed : .queued
            let container = sequence % 2 == 0 ? "c2" : "c1"
            let path = sequence <= 10 ? "/srv/app/\(sequence)" : "/srv/application/\(sequence)"
            records.append(
                Self.record(
                    String(format: "t%02d", sequence), UInt64(sequence), state: state, owner: owner,
                    container: container, path: path))
        }
        // Inserted out of order: listing follows the acceptance number, not the insert.
        try store.insert(records.reversed(), durable: false)

        let firstPage = try XCTUnwrap(store.list(TaskQuery(limit: 4)))
        XCTAssertEqual(firstPage.map(\.id), ["t01", "t02", "t03", "t04"])
        XCTAssertEqual(try store.list(TaskQuery(after: "t04", limit: 2))?.map(\.id), ["t05", "t06"])
        XCTAssertEqual(
            try store.list(TaskQuery(state: .failed, owner: "bob", limit: 10))?.map(\.id), ["t15", "t30"])
        XCTAssertEqual(
            try store.list(TaskQuery(owner: "bob", container: "c2", limit: 3))?.map(\.id),
            ["t06", "t12", "t18"])
        XCTAssertEqual(
            try store.list(TaskQuery(pathPrefix: "/srv/app/", limit: 100))?.count, 10,
            "a prefix is bytes: /srv/app/ is not /srv/application/")
        XCTAssertEqual(try store.list(TaskQuery(pathPrefix: "/srv/app", limit: 100))?.count, 30)
        XCTAssertNil(
            try store.list(TaskQuery(owner: "bob", after: "t01", limit: 1)),
            "alice's cursor tells bob nothing")
        XCTAssertNil(try store.list(TaskQuery(after: "nothing", limit: 1)))
    }

    func testIdempotencyKeysBelongToTheirOwner() throws {
        let store = try SQLiteTaskStore(path: path)
        try store.insert(
            [
                Self.record("alice-1", 1, owner: "alice", key: "shared"),
                Self.record("server-1", 2, owner: nil, key: "shared"),
                Self.record("alice-2", 3, owner: "alice", key: "other"),
            ], durable: false)
        XCTAssertEqual(try store.record(idempotencyKey: "shared", owner: "alice")?.id, "alice-1")
        XCTAssertEqual(try store.record(idempotencyKey: "shared", owner: nil)?.id, "server-1")
        XCTAssertNil(try store.record(idempotencyKey: "shared", owner: "bob"), "bob's key is another key")
        XCTAssertNil(try store.record(idempotencyKey: "other", owner: nil))
    }

    func testRetentionRemovesOnlyOldFinishedTasksInBatches() throws {
        let store = try SQLiteTaskStore(path: path)
        var records: [TaskRecord] = []
        for sequence in 1...25 {
            records.append(
                Self.record("old-\(sequence)", UInt64(sequence), state: .delivered, updatedAt: 100))
        }
        records.append(Self.record("old-failed", 26, state: .failed, updatedAt: 100))
        records.append(Self.record("old-queued", 27, state: .queued, updatedAt: 100))
        records.append(Self.record("recent", 28, state: .delivered, updatedAt: 500))
        try store.insert(records, durable: false)

        XCTAssertEqual(try store.expire(finishedBefore: 200, limit: 10).count, 10, "one batch at a time")
        XCTAssertEqual(try store.expire(finishedBefore: 200, limit: 10).count, 10)
        let last = try store.expire(finishedBefore: 200, limit: 10)
        XCTAssertEqual(last.count, 6)
        XCTAssertTrue(last.contains { $0.id == "old-failed" }, "its bytes are the caller's to remove")
        XCTAssertEqual(try store.expire(finishedBefore: 200, limit: 10), [])
        XCTAssertEqual(try store.list(TaskQuery(limit: 10))?.map(\.id), ["old-queued", "recent"])
        XCTAssertEqual(try store.counts()[.queued], 1)
        XCTAssertEqual(try store.counts()[.delivered], 1)
        XCTAssertEqual(try store.holdingBytes().map(\.id), ["old-queued"])
    }

    func testReadersSeeCommitsWhileTheWriterWorks() throws {
        let store = try SQLiteTaskStore(path: path)
        let group = DispatchGroup()
        let failures = ManagedAtomicCounter()
        for worker in 0..<4 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                for index in 0..<200 {
                    let sequence = UInt64(worker * 1000 + index + 1)
                    let id = "w\(worker)-\(index)"
                    do {
                        try store.insert([Self.record(id, sequence)], durable: false)
                        if try store.record(id: id) == nil { failures.add() }
                        try store.update(ids: [id]) { $0.state = .delivered }
                    } catch {
                        failures.add()
                    }
                }
            }
        }
        group.wait()
        XCTAssertEqual(failures.value, 0, "every write committed and was visible to the next read")
        XCTAssertEqual(try store.counts()[.delivered], 800)
    }

    func testADatabaseOfSchemaOneIsMigratedWithEveryTask() throws {
        // The schema Ferry 0.7 wrote (issues 11-13), with one task, as it left it.
        let path = "\(directory)/old.db"
        var handle: OpaquePointer?
        XCTAssertEqual(sqlite3_open(path, &handle), SQLITE_OK)
        let schemaOne = """
            CREATE TABLE tasks (sequence INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL,
                attempts INTEGER NOT NULL, last_error TEXT, container TEXT NOT NULL, path TEXT NOT NULL,
                mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
                create_directories INTEGER NOT NULL, bytes INTEGER NOT NULL, created_at REAL NOT NULL,
                updated_at REAL NOT NULL, idempotency_key TEXT, request_id TEXT, owner TEXT) STRICT;
            CREATE INDEX tasks_by_state ON tasks (state, sequence);
            CREATE INDEX tasks_by_owner ON tasks (owner, sequence);
            CREATE INDEX tasks_by_owner_state ON tasks (owner, state, sequence);
            CREATE INDEX tasks_by_destination ON tasks (container, path);
            CREATE INDEX tasks_by_idempotency_key ON tasks (idempotency_key, owner)
                WHERE idempotency_key IS NOT NULL;
            CREATE INDEX tasks_finished ON tasks (updated_at) WHERE state IN ('delivered', 'failed');
            CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
            INSERT INTO tasks VALUES (7, 'old', 'failed', 5, 'no such instance', 'c1', '/srv/old', 420, 0, 0,
                0, 12, 1.0, 2.0, 'key', 'request-old', 'alpha');
            PRAGMA user_version = 1;
            """
        XCTAssertEqual(sqlite3_exec(handle, schemaOne, nil, nil, nil), SQLITE_OK)
        sqlite3_close(handle)

        let store = try SQLiteTaskStore(path: path)
        let record = try XCTUnwrap(try store.record(id: "old"))
        XCTAssertEqual(record.state, .failed)
        XCTAssertEqual(record.lastError, "no such instance")
        XCTAssertEqual(record.bytes, 12)
        XCTAssertEqual(record.owner, "alpha")
        XCTAssertNil(record.sha256, "not known for a task of an older Ferry")
        XCTAssertEqual(try store.record(idempotencyKey: "key", owner: "alpha")?.id, "old")
        // And the new columns work.
        var receiving = Self.record("new", 8)
        receiving.state = .receiving
        receiving.length = 100
        receiving.uploadMetadata = "container YzE="
        try store.insert([receiving], durable: true)
        let advanced = try store.advance(id: "new", UploadProgress(offset: 40, length: 100), durable: true)
        XCTAssertEqual(advanced?.bytes, 40)
        let done = try store.advance(
            id: "new",
            UploadProgress(offset: 100, length: 100, completedWith: String(repeating: "a", count: 64)),
            durable: true)
        XCTAssertEqual(done?.state, .queued)
        XCTAssertEqual(try store.record(id: "new")?.sha256, String(repeating: "a", count: 64))
        XCTAssertNil(
            try store.advance(id: "new", UploadProgress(offset: 1, length: 100), durable: false),
            "no longer receiving")
    }
}

/// A counter several threads add to.
final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func add() {
        lock.lock()
        count += 1
        lock.unlock()
    }

    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
}
