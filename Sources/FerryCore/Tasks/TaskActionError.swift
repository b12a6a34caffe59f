/// Why an operator's action on a task was refused.
public enum TaskActionError: Error, Sendable, Equatable {
    case unknownTask(String)
    /// The task is in a state where the action makes no sense.
    case wrongState(id: String, state: TaskState, allowed: [TaskState])
    case capacity(Capacity.Refusal)
    /// The policy in force now does not let the asker's token do this to the task.
    case forbidden(AccessRefusal)
    /// The spool or the store failed: what it said.
    case storage(String)
}
