import Synchronization

/// How much Ferry holds, and whether it may take more: unfinished tasks (bounded by
/// `--queue-capacity`) and bytes in the spool (bounded by `--spool-max-bytes`).
///
/// An upload reserves its place and its announced bytes when its headers arrive, so a full
/// spool is refused before the body, and an accepted body always finds room.
public final class Capacity: Sendable {
    public enum Refusal: Error, Sendable, Equatable {
        case tooManyTasks(limit: Int)
        case tooManyBytes(limit: UInt64)
    }

    private struct State {
        var tasks = 0
        var bytes: UInt64 = 0
    }

    public let maxTasks: Int
    public let maxBytes: UInt64?
    private let state = Mutex(State())

    public init(maxTasks: Int, maxBytes: UInt64?) {
        self.maxTasks = maxTasks
        self.maxBytes = maxBytes
    }

    /// Takes a task place and `bytes` of spool, or says which bound is reached.
    public func reserve(bytes: UInt64) throws(Refusal) {
        let refusal = state.withLock { state -> Refusal? in
            if state.tasks >= maxTasks { return .tooManyTasks(limit: maxTasks) }
            if let maxBytes, state.bytes + bytes > maxBytes { return .tooManyBytes(limit: maxBytes) }
            state.tasks += 1
            state.bytes += bytes
            return nil
        }
        if let refusal { throw refusal }
    }

    /// Takes `bytes` more for a body of unannounced length. False when the spool bound is hit.
    public func grow(by bytes: UInt64) -> Bool {
        state.withLock { state in
            if let maxBytes, state.bytes + bytes > maxBytes { return false }
            state.bytes += bytes
            return true
        }
    }

    /// Gives back a task place and `bytes` (an upload that was not accepted).
    public func cancel(bytes: UInt64) {
        state.withLock {
            $0.tasks -= 1
            $0.bytes -= bytes
        }
    }

    /// Counts `tasks` unfinished tasks and `bytes` held, over the bounds if need be
    /// (recovery, or a dead letter sent back to the queue).
    public func adopt(tasks: Int, bytes: UInt64) {
        state.withLock {
            $0.tasks += tasks
            $0.bytes += bytes
        }
    }

    /// A task finished (delivered, failed or deleted): its place is free.
    public func finishTask() {
        state.withLock { $0.tasks -= 1 }
    }

    /// Bytes left the spool.
    public func releaseBytes(_ bytes: UInt64) {
        state.withLock { $0.bytes -= bytes }
    }

    /// Unfinished tasks and bytes held, reservations included.
    public var usage: (tasks: Int, bytes: UInt64) {
        state.withLock { ($0.tasks, $0.bytes) }
    }
}
