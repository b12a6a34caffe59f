import CSQLite
import Dispatch
import Glibc
import Synchronization

/// The task store as a SQLite database (`tasks.db` in the spool directory), in WAL mode.
///
/// One writer connection, behind a lock, takes every change; readers (listing, look-ups)
/// use connections of their own and never wait for it. A commit with `durable` syncs the
/// WAL once however many rows it holds, so a group of uploads costs one sync. Other
/// commits (state changes after acceptance) are not synced: a power loss can at worst
/// bring back a task's previous state, and recovery pushes such a task again
/// (at-least-once); WAL mode never corrupts the database for it.
///
/// Memory: SQLite's page caches (a few MiB per connection, bounded), whatever the number
/// of rows. The rows live in acceptance order (`sequence` is the rowid), so listing walks
/// an index instead of sorting.
public final class SQLiteTaskStore: TaskStore {
    /// The file name inside the spool directory.
    public static let fileName = "tasks.db"
    /// The schema this build writes; older ones are migrated at open.
    static let schemaVersion = 2
    /// Read connections kept open for reuse; more are opened when needed and closed after.
    static let idleReaders = 4

    /// Seconds between checkpoints of the WAL, taken off the writer (see ``init(path:)``).
    static let checkpointInterval = 0.2
    /// WAL pages past which the writer checkpoints itself after all (a backstop: 64 MiB).
    static let writerCheckpointPages = 16384

    public let path: String
    private let writer: Mutex<SQLiteConnection>
    private let readers = Mutex<[SQLiteConnection]>([])
    /// Whether anything was committed since the last checkpoint.
    private let written = Atomic(false)
    // Set once in init, cancelled once in deinit; Dispatch sources are thread-safe.
    nonisolated(unsafe) private let checkpointer: any DispatchSourceTimer

    /// Opens (or creates) the database at `path` and brings its schema up to date.
    public init(path: String) throws(StoreError) {
        self.path = path
        // Made 0600 before SQLite opens it: its WAL and shared-memory files take the
        // database's mode, and task records are nobody else's to read.
        let descriptor = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if descriptor >= 0 { close(descriptor) }
        let connection = try SQLiteConnection(path: path, create: true)
        try connection.execute(
            """
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            PRAGMA journal_size_limit = 67108864;
            PRAGMA cache_size = -4096;
            PRAGMA wal_autocheckpoint = \(Self.writerCheckpointPages);
            """)
        try Self.migrate(connection)
        writer = Mutex(connection)
        // SQLite checkpoints in the commit that crosses 1,000 WAL pages, and a checkpoint
        // syncs: every few hundred small uploads, one group's 202s waited for it (the
        // p99 of small ingest). A connection of its own checkpoints instead, without
        // blocking the writer (PASSIVE), on a timer, when something was written.
        checkpointer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ferry.store.checkpoint"))
        let checkpoints = try SQLiteConnection(path: path, create: false)
        checkpointer.setEventHandler { [weak self] in
            guard let self, self.written.exchange(false, ordering: .relaxed) else { return }
            try? checkpoints.execute("PRAGMA wal_checkpoint(PASSIVE)")
        }
        checkpointer.schedule(
            deadline: .now() + Self.checkpointInterval, repeating: Self.checkpointInterval,
            leeway: .milliseconds(50))
        checkpointer.activate()
    }

    deinit {
        checkpointer.cancel()
    }

    /// Creates the tables of schema 1 in an empty database, and brings older ones to the
    /// current schema: 2 adds the SHA-256 of the bytes and the state of uploads in progress
    /// (their announced length and tus metadata). Columns are only ever added: a database
    /// of an older Ferry keeps every task it held.
    private static func migrate(_ connection: SQLiteConnection) throws(StoreError) {
        let version = try connection.statement("PRAGMA user_version").rows { $0.integer(0) }.first ?? 0
        guard version < schemaVersion else { return }
        try connection.transaction { () throws(StoreError) in
            if version < 1 {
                // STRICT: a value of the wrong type is an error, not a silent conversion.
                try connection.execute(
                    """
                    CREATE TABLE tasks (
                        sequence INTEGER PRIMARY KEY,
                        id TEXT NOT NULL UNIQUE,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL,
                        last_error TEXT,
                        container TEXT NOT NULL,
                        path TEXT NOT NULL,
                        mode INTEGER NOT NULL,
                        uid INTEGER NOT NULL,
                        gid INTEGER NOT NULL,
                        create_directories INTEGER NOT NULL,
                        bytes INTEGER NOT NULL,
                        created_at REAL NOT NULL,
                        updated_at REAL NOT NULL,
                        idempotency_key TEXT,
                        request_id TEXT,
                        owner TEXT
                    ) STRICT;
                    CREATE INDEX tasks_by_state ON tasks (state, sequence);
                    CREATE INDEX tasks_by_owner ON tasks (owner, sequence);
                    CREATE INDEX tasks_by_owner_state ON tasks (owner, state, sequence);
                    CREATE INDEX tasks_by_destination ON tasks (container, path);
                    CREATE INDEX tasks_by_idempotency_key ON tasks (idempotency_key, owner)
                        WHERE idempotency_key IS NOT NULL;
                    CREATE INDEX tasks_finished ON tasks (updated_at)
                        WHERE state IN ('delivered', 'failed');
                    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
                    """)
            }
            if version < 2 {
                try connection.execute(
                    """
                    ALTER TABLE tasks ADD COLUMN sha256 TEXT;
                    ALTER TABLE tasks ADD COLUMN upload_length INTEGER;
                    ALTER TABLE tasks ADD COLUMN upload_metadata TEXT;
                    """)
            }
            try connection.execute("PRAGMA user_version = \(schemaVersion)")
        }
    }

    // MARK: Writes

    public func insert(_ records: [TaskRecord], durable: Bool) throws(StoreError) {
        guard !records.isEmpty else { return }
        try write { connection throws(StoreError) in
            try Self.insert(records, on: connection, durable: durable, keepingKnown: false) {
                _ throws(StoreError) in
            }
        }
    }

    /// Inserts `records` in one transaction (with `durable`, that commit alone waits for
    /// the disk), then runs `also` in it. With `keepingKnown`, a task already stored is
    /// kept as it is.
    private static func insert(
        _ records: [TaskRecord], on connection: SQLiteConnection, durable: Bool, keepingKnown: Bool,
        also: (SQLiteConnection) throws(StoreError) -> Void
    ) throws(StoreError) {
        // Only this commit waits for the disk; later ones go back to not syncing.
        if durable { try connection.execute("PRAGMA synchronous = FULL") }
        defer { if durable { try? connection.execute("PRAGMA synchronous = NORMAL") } }
        try connection.transaction { () throws(StoreError) in
            let insert = try connection.statement(
                "INSERT \(keepingKnown ? "OR IGNORE " : "")INTO tasks (\(columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            for record in records { try insert.bind(values(of: record)).run() }
            try also(connection)
        }
    }

    public func update(
        ids: [String], if condition: (TaskRecord) -> Bool, apply change: (inout TaskRecord) -> Void
    ) throws(StoreError) -> [TaskUpdate] {
        guard !ids.isEmpty else { return [] }
        let now = WallClock.now()
        return try write { connection throws(StoreError) in
            try connection.transaction { () throws(StoreError) in
                let update = try connection.statement(
                    "UPDATE tasks SET state = ?, attempts = ?, last_error = ?, updated_at = ? WHERE sequence = ?"
                )
                var results: [TaskUpdate] = []
                results.reserveCapacity(ids.count)
                for id in ids {
                    guard var record = try Self.record(id: id, on: connection) else {
                        results.append(TaskUpdate(updated: nil, current: nil))
                        continue
                    }
                    guard condition(record) else {
                        results.append(TaskUpdate(updated: nil, current: record))
                        continue
                    }
                    change(&record)
                    record.updatedAt = now
                    try update.bind([
                        .text(record.state.rawValue), .integer(Int64(record.attempts)),
                        .text(record.lastError),
                        .real(record.updatedAt), .integer(Int64(record.sequence)),
                    ]).run()
                    results.append(TaskUpdate(updated: record, current: record))
                }
                return results
            }
        }
    }

    public func remove(
        id: String, if condition: (TaskRecord) -> Bool, beforeCommit: (TaskRecord) -> Bool
    ) throws(StoreError) -> TaskUpdate {
        try write { connection throws(StoreError) in
            try connection.execute("BEGIN IMMEDIATE")
            do throws(StoreError) {
                guard let record = try Self.record(id: id, on: connection) else {
                    try connection.execute("COMMIT")
                    return TaskUpdate(updated: nil, current: nil)
                }
                guard condition(record) else {
                    try connection.execute("COMMIT")
                    return TaskUpdate(updated: nil, current: record)
                }
                try connection.statement("DELETE FROM tasks WHERE sequence = ?")
                    .bind([.integer(Int64(record.sequence))]).run()
                guard beforeCommit(record) else {
                    try connection.execute("ROLLBACK")
                    return TaskUpdate(updated: nil, current: record)
                }
                try connection.execute("COMMIT")
                return TaskUpdate(updated: record, current: nil)
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    public func advance(id: String, _ progress: UploadProgress, durable: Bool) throws(StoreError)
        -> TaskRecord?
    {
        let now = WallClock.now()
        return try write { connection throws(StoreError) in
            if durable { try connection.execute("PRAGMA synchronous = FULL") }
            defer { if durable { try? connection.execute("PRAGMA synchronous = NORMAL") } }
            return try connection.transaction { () throws(StoreError) -> TaskRecord? in
                guard var record = try Self.record(id: id, on: connection), record.state == .receiving else {
                    return nil
                }
                record.bytes = progress.offset
                record.length = progress.length
                record.updatedAt = now
                if let sha256 = progress.completedWith {
                    record.state = .queued
                    record.sha256 = sha256
                    record.length = nil
                    record.uploadMetadata = nil
                }
                try connection.statement(
                    """
                    UPDATE tasks SET state = ?, bytes = ?, upload_length = ?, sha256 = ?, upload_metadata = ?,
                        updated_at = ? WHERE sequence = ?
                    """
                ).bind([
                    .text(record.state.rawValue), .integer(Int64(record.bytes)),
                    record.length.map { .integer(Int64($0)) } ?? .null, .text(record.sha256),
                    .text(record.uploadMetadata), .real(now), .integer(Int64(record.sequence)),
                ]).run()
                return record
            }
        }
    }

    public func remove(ids: [String]) throws(StoreError) {
        guard !ids.isEmpty else { return }
        try write { connection throws(StoreError) in
            try connection.transaction { () throws(StoreError) in
                let delete = try connection.statement("DELETE FROM tasks WHERE id = ?")
                for id in ids { try delete.bind([.text(id)]).run() }
            }
        }
    }

    public func expire(finishedBefore cutoff: Double, limit: Int) throws(StoreError) -> [TaskRecord] {
        try write { connection throws(StoreError) in
            try connection.transaction { () throws(StoreError) in
                // The partial index of finished tasks by time: no scan of the unfinished.
                try connection.statement(
                    """
                    DELETE FROM tasks WHERE sequence IN (
                        SELECT sequence FROM tasks INDEXED BY tasks_finished
                        WHERE state IN ('delivered', 'failed') AND updated_at < ?
                        ORDER BY updated_at LIMIT ?)
                    RETURNING \(Self.columns)
                    """
                ).bind([.real(cutoff), .integer(Int64(limit))]).rows(Self.record(from:)).compactMap { $0 }
            }
        }
    }

    public func setting(_ key: String) throws(StoreError) -> String? {
        try read { connection throws(StoreError) in
            try connection.statement("SELECT value FROM settings WHERE key = ?").bind([.text(key)])
                .rows { $0.text(0) }.first ?? nil
        }
    }

    /// Adopts tasks of an older spool and records `key` in the same transaction, so a
    /// crash in between leaves either both or neither. A task already known is kept as it
    /// is (an adoption interrupted before its old files were removed runs again).
    func adopt(_ records: [TaskRecord], marking key: String) throws(StoreError) {
        try write { connection throws(StoreError) in
            try Self.insert(records, on: connection, durable: true, keepingKnown: true) {
                connection throws(StoreError) in
                try connection.statement("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)")
                    .bind([.text(key), .text(String(WallClock.now()))]).run()
            }
        }
    }

    public func setSetting(_ key: String, to value: String?) throws(StoreError) {
        try write { connection throws(StoreError) in
            // A setting is rare and must survive a crash: its commit waits for the disk.
            try connection.execute("PRAGMA synchronous = FULL")
            defer { try? connection.execute("PRAGMA synchronous = NORMAL") }
            if let value {
                try connection.statement("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)")
                    .bind([.text(key), .text(value)]).run()
            } else {
                try connection.statement("DELETE FROM settings WHERE key = ?").bind([.text(key)]).run()
            }
        }
    }

    // MARK: Reads

    public func record(id: String) throws(StoreError) -> TaskRecord? {
        try read { connection throws(StoreError) in try Self.record(id: id, on: connection) }
    }

    public func record(idempotencyKey key: String, owner: String?) throws(StoreError) -> TaskRecord? {
        try read { connection throws(StoreError) in
            try connection.statement(
                """
                SELECT \(Self.columns) FROM tasks INDEXED BY tasks_by_idempotency_key
                WHERE idempotency_key = ? AND owner IS ? ORDER BY sequence DESC LIMIT 1
                """
            ).bind([.text(key), .text(owner)]).rows(Self.record(from:)).first ?? nil
        }
    }

    public func list(_ query: TaskQuery) throws(StoreError) -> [TaskRecord]? {
        try read { connection throws(StoreError) -> [TaskRecord]? in
            var start: UInt64 = 0
            if let after = query.after {
                guard let cursor = try Self.record(id: after, on: connection),
                    query.owner == nil || cursor.owner == query.owner
                else { return nil }
                start = cursor.sequence
            }
            // Only the clauses asked for, so that each shape of query gets its own plan
            // (and its own cached statement) on the index that serves it.
            var clauses = ["sequence > ?"]
            var values: [SQLiteValue] = [.integer(Int64(start))]
            if let owner = query.owner {
                clauses.append("owner = ?")
                values.append(.text(owner))
            }
            if let state = query.state {
                clauses.append("state = ?")
                values.append(.text(state.rawValue))
            }
            if let container = query.container {
                clauses.append("container = ?")
                values.append(.text(container))
            }
            if let prefix = query.pathPrefix, !prefix.isEmpty {
                // A range on the text, so the destination index can serve it: every byte
                // of UTF-8 is below 0xFF.
                clauses.append("path >= ? AND path < (? || CAST(x'ff' AS TEXT))")
                values.append(.text(prefix))
                values.append(.text(prefix))
            }
            if let prefix = query.idPrefix, !prefix.isEmpty {
                // A range on the unique index of ids: every id starting with the prefix
                // sorts between it and it followed by 0xFF (above any byte of UTF-8).
                clauses.append("id >= ? AND id < (? || CAST(x'ff' AS TEXT))")
                values.append(.text(prefix))
                values.append(.text(prefix))
            }
            values.append(.integer(Int64(query.limit)))
            return try connection.statement(
                "SELECT \(Self.columns) FROM tasks WHERE \(clauses.joined(separator: " AND ")) ORDER BY sequence LIMIT ?"
            ).bind(values).rows(Self.record(from:)).compactMap { $0 }
        }
    }

    public func counts(owner: String?) throws(StoreError) -> [TaskState: Int] {
        try read { connection throws(StoreError) in
            var counts: [TaskState: Int] = [:]
            let count = try connection.statement(
                owner == nil
                    ? "SELECT count(*) FROM tasks INDEXED BY tasks_by_state WHERE state = ?"
                    : "SELECT count(*) FROM tasks INDEXED BY tasks_by_owner_state WHERE state = ? AND owner = ?"
            )
            for state in TaskState.allCases {
                let values: [SQLiteValue] = [.text(state.rawValue)] + (owner.map { [.text($0)] } ?? [])
                counts[state] = try count.bind(values).rows { Int($0.integer(0)) }.first ?? 0
            }
            return counts
        }
    }

    public func holdingBytes() throws(StoreError) -> [TaskRecord] {
        try read { connection throws(StoreError) in
            try connection.statement(
                "SELECT \(Self.columns) FROM tasks WHERE state != 'delivered' ORDER BY sequence"
            ).rows(Self.record(from:)).compactMap { $0 }
        }
    }

    public func lastSequence() throws(StoreError) -> UInt64 {
        try read { connection throws(StoreError) in
            UInt64(
                try connection.statement("SELECT ifnull(max(sequence), 0) FROM tasks").rows { $0.integer(0) }
                    .first ?? 0)
        }
    }

    // MARK: Connections

    private func write<Result>(_ body: (SQLiteConnection) throws(StoreError) -> Result) throws(StoreError)
        -> Result
    {
        defer { written.store(true, ordering: .relaxed) }
        return try writer.withLock { connection throws(StoreError) in try body(connection) }
    }

    /// Runs `body` on a read connection of its own: it sees the last commit, and neither
    /// waits for the writer nor makes it wait.
    private func read<Result>(_ body: (SQLiteConnection) throws(StoreError) -> Result) throws(StoreError)
        -> Result
    {
        let connection: SQLiteConnection
        if let idle = readers.withLock({ $0.popLast() }) {
            connection = idle
        } else {
            connection = try openReader()
        }
        defer {
            readers.withLock { idle in
                if idle.count < Self.idleReaders { idle.append(connection) }
            }
        }
        return try connection.read { () throws(StoreError) in try body(connection) }
    }

    private func openReader() throws(StoreError) -> SQLiteConnection {
        let connection = try SQLiteConnection(path: path, create: false)
        try connection.execute("PRAGMA query_only = 1; PRAGMA cache_size = -2048;")
        return connection
    }

    // MARK: Rows

    private static let columns =
        "sequence, id, state, attempts, last_error, container, path, mode, uid, gid, create_directories, bytes, created_at, updated_at, idempotency_key, request_id, owner, sha256, upload_length, upload_metadata"

    private static func values(of record: TaskRecord) -> [SQLiteValue] {
        [
            .integer(Int64(record.sequence)), .text(record.id), .text(record.state.rawValue),
            .integer(Int64(record.attempts)), .text(record.lastError), .text(record.request.container),
            .text(record.request.path), .integer(Int64(record.request.mode)),
            .integer(Int64(record.request.uid)),
            .integer(Int64(record.request.gid)), .integer(record.request.createDirectories ? 1 : 0),
            .integer(Int64(record.bytes)), .real(record.createdAt), .real(record.updatedAt),
            .text(record.idempotencyKey), .text(record.requestID), .text(record.owner), .text(record.sha256),
            record.length.map { .integer(Int64($0)) } ?? .null, .text(record.uploadMetadata),
        ]
    }

    /// The record in the current row of a statement that selected ``columns``; nil for a
    /// row this build cannot read (a state it does not know).
    private static func record(from row: SQLiteStatement) -> TaskRecord? {
        guard let id = row.text(1), let state = row.text(2).flatMap(TaskState.init(rawValue:)),
            let container = row.text(5), let path = row.text(6)
        else { return nil }
        let request = UploadRequest(
            container: container, path: path, mode: UInt32(truncatingIfNeeded: row.integer(7)),
            uid: UInt32(truncatingIfNeeded: row.integer(8)), gid: UInt32(truncatingIfNeeded: row.integer(9)),
            createDirectories: row.integer(10) != 0)
        var record = TaskRecord(
            id: id, sequence: UInt64(row.integer(0)), request: request, bytes: UInt64(row.integer(11)),
            createdAt: row.real(12), idempotencyKey: row.text(14), requestID: row.text(15),
            owner: row.text(16))
        record.state = state
        record.attempts = Int(row.integer(3))
        record.lastError = row.text(4)
        record.updatedAt = row.real(13)
        record.sha256 = row.text(17)
        record.length = row.isNull(18) ? nil : UInt64(row.integer(18))
        record.uploadMetadata = row.text(19)
        return record
    }

    private static func record(id: String, on connection: SQLiteConnection) throws(StoreError) -> TaskRecord?
    {
        try connection.statement("SELECT \(columns) FROM tasks WHERE id = ?").bind([.text(id)])
            .rows(record(from:)).first ?? nil
    }
}
