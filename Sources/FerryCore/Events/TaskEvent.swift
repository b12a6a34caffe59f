/// One change in a task's life, as ``TaskEventHub`` tells it: the task's new state (or
/// that it is gone), where it goes, and why it failed, if it did.
public struct TaskEvent: Sendable, Equatable {
    /// What happened to the task.
    public enum Change: Sendable, Equatable {
        /// The task entered this state.
        case entered(TaskState)
        /// The task was deleted (by a request, a tus termination or an expiry).
        case deleted

        /// The name clients see: a state's name, or `deleted`.
        public var name: String {
            switch self {
            case .entered(let state): state.rawValue
            case .deleted: "deleted"
            }
        }
    }

    public var id: String
    public var change: Change
    public var container: String
    public var path: String
    public var attempts: Int
    /// The last push failure (retrying and failed tasks).
    public var error: String?
    public var bytes: UInt64
    /// The token whose task it is (nil without `--tokens`): only it sees the event.
    public var owner: String?
    /// Seconds since 1970.
    public var at: Double

    public init(
        id: String, change: Change, container: String, path: String, attempts: Int, error: String?,
        bytes: UInt64, owner: String?, at: Double = WallClock.now()
    ) {
        self.id = id
        self.change = change
        self.container = container
        self.path = path
        self.attempts = attempts
        self.error = error
        self.bytes = bytes
        self.owner = owner
        self.at = at
    }

    /// The event of `record` entering its state (or leaving, with `.deleted`).
    public init(_ record: TaskRecord, _ change: Change? = nil) {
        self.init(
            id: record.id, change: change ?? .entered(record.state), container: record.request.container,
            path: record.request.path, attempts: record.attempts, error: record.lastError,
            bytes: record.bytes, owner: record.owner)
    }

    /// The event of a queued `task` entering `state`.
    init(_ task: UploadTask, _ state: TaskState, error: String? = nil) {
        self.init(
            id: task.id, change: .entered(state), container: task.request.container, path: task.request.path,
            attempts: task.attempts, error: error, bytes: task.bytes, owner: task.owner)
    }
}
