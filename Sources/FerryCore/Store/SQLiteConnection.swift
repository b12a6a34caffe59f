import CSQLite

/// A failed SQLite call: which one, and what SQLite said.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// SQLite's extended result code (`SQLITE_FULL`, `SQLITE_IOERR_FSYNC`, …).
    public var code: Int32
    public var message: String

    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    /// Whether the disk was full: the client is told 507, not 500.
    public var isNoSpace: Bool { code & 0xff == SQLITE_FULL }

    public var description: String { "task store: \(message) (SQLite \(code))" }
}

/// One SQLite connection, used by one thread at a time (the owner's lock sees to that, so
/// it may move between threads).
///
/// A thin layer over SQLite's C API: statements are prepared once and kept by their text,
/// values are bound by position, and every result code is checked.
final class SQLiteConnection: @unchecked Sendable {
    private let handle: OpaquePointer
    private var statements: [String: SQLiteStatement] = [:]

    /// Opens (and with `create`, makes) the database at `path`.
    init(path: String, create: Bool, readOnly: Bool = false) throws(StoreError) {
        var handle: OpaquePointer?
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE
        flags |= readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        if create { flags |= SQLITE_OPEN_CREATE }
        let code = sqlite3_open_v2(path, &handle, flags, nil)
        guard code == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            throw StoreError(code: code, message: "open \(path): \(message)")
        }
        self.handle = handle
        sqlite3_extended_result_codes(handle, 1)
        // Another connection's checkpoint or write is a wait of milliseconds, not an error.
        sqlite3_busy_timeout(handle, 5_000)
    }

    deinit {
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Runs `sql` (one or more statements without parameters).
    func execute(_ sql: String) throws(StoreError) {
        let code = sqlite3_exec(handle, sql, nil, nil, nil)
        guard code == SQLITE_OK else { throw error(code, sql) }
    }

    /// The prepared statement for `sql`, reset and with its bindings cleared.
    func statement(_ sql: String) throws(StoreError) -> SQLiteStatement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        var prepared: OpaquePointer?
        let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &prepared, nil)
        guard code == SQLITE_OK, let prepared else { throw error(code, sql) }
        let statement = SQLiteStatement(prepared, connection: self)
        statements[sql] = statement
        return statement
    }

    /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
    func transaction<Result>(_ body: () throws(StoreError) -> Result) throws(StoreError) -> Result {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            // A failed COMMIT may have rolled back already; a second rollback is harmless.
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Runs `body` in one read transaction: one snapshot of the database throughout.
    func read<Result>(_ body: () throws(StoreError) -> Result) throws(StoreError) -> Result {
        try execute("BEGIN")
        defer { try? execute("COMMIT") }
        return try body()
    }

    /// Rows changed by the last statement.
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// The error for result `code` of the statement `sql`, with SQLite's message.
    func error(_ code: Int32, _ sql: String) -> StoreError {
        // The extended code (SQLITE_IOERR_FSYNC, …) when SQLite kept one for this failure.
        let extended = sqlite3_extended_errcode(handle)
        let verb = sql.split(separator: " ", maxSplits: 2).prefix(2).joined(separator: " ")
        return StoreError(
            code: extended & 0xff == code & 0xff ? extended : code,
            message: "\(verb): \(String(cString: sqlite3_errmsg(handle)))")
    }
}

/// A value to bind to a statement's `?`.
enum SQLiteValue {
    case integer(Int64)
    case real(Double)
    case text(String)
    case null

    static func text(_ value: String?) -> SQLiteValue {
        value.map { .text($0) } ?? .null
    }
}

/// A prepared statement: bind, step through rows, read columns.
final class SQLiteStatement {
    private let handle: OpaquePointer
    private unowned let connection: SQLiteConnection

    fileprivate init(_ handle: OpaquePointer, connection: SQLiteConnection) {
        self.handle = handle
        self.connection = connection
    }

    deinit {
        sqlite3_finalize(handle)
    }

    fileprivate func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Binds `values` to the parameters, in order.
    @discardableResult
    func bind(_ values: [SQLiteValue]) throws(StoreError) -> SQLiteStatement {
        sqlite3_reset(handle)
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case .integer(let number): code = sqlite3_bind_int64(handle, index, number)
            case .real(let number): code = sqlite3_bind_double(handle, index, number)
            case .text(let text):
                // The length given: a NUL inside must not cut the value short.
                code = sqlite3_bind_text(handle, index, text, Int32(text.utf8.count), CSQLite_transient())
            case .null: code = sqlite3_bind_null(handle, index)
            }
            guard code == SQLITE_OK else { throw connection.error(code, "bind") }
        }
        return self
    }

    /// Runs a statement that returns no rows (or whose rows are not wanted).
    func run() throws(StoreError) {
        while try step() {}
    }

    /// Advances to the next row; false when there is none.
    func step() throws(StoreError) -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE:
            sqlite3_reset(handle)
            return false
        default:
            let failure = connection.error(code, String(cString: sqlite3_sql(handle)))
            sqlite3_reset(handle)
            throw failure
        }
    }

    /// Every row, each made by `row`.
    func rows<Row>(_ row: (SQLiteStatement) -> Row) throws(StoreError) -> [Row] {
        var rows: [Row] = []
        while try step() { rows.append(row(self)) }
        return rows
    }

    func integer(_ column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    func isNull(_ column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_NULL
    }

    func real(_ column: Int32) -> Double {
        sqlite3_column_double(handle, column)
    }

    func text(_ column: Int32) -> String? {
        guard let bytes = sqlite3_column_text(handle, column) else { return nil }
        // Text may hold any byte but NUL, which Ferry refuses in every value it stores.
        return String(cString: bytes)
    }
}
