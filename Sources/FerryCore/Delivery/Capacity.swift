import Synchronization

/// How much Ferry holds, and whether it may take more: unfinished tasks (bounded by
/// `--queue-capacity`) and bytes in the spool (bounded by `--spool-max-bytes`), in all and
/// per owner (a token's `max_queued` and `max_spool_bytes`), so that one tenant cannot take
/// the whole server's room.
///
/// An upload reserves its place and its announced bytes when its headers arrive, so a full
/// spool is refused before the body, and an accepted body always finds room. Memory grows
/// with the owners holding something, never with tasks.
public final class Capacity: Sendable {
    public enum Refusal: Error, Sendable, Equatable {
        case tooManyTasks(limit: Int)
        case tooManyBytes(limit: UInt64)
        /// The owner's own `max_queued`.
        case ownerTasks(owner: String, limit: Int)
        /// The owner's own `max_spool_bytes`.
        case ownerBytes(owner: String, limit: UInt64)
    }

    /// What one owner may hold; nil bounds nothing.
    public struct Quota: Sendable, Equatable {
        public var maxTasks: Int?
        public var maxBytes: UInt64?

        public init(maxTasks: Int? = nil, maxBytes: UInt64? = nil) {
            self.maxTasks = maxTasks
            self.maxBytes = maxBytes
        }
    }

    /// Unfinished tasks and bytes held.
    public struct Usage: Sendable, Equatable {
        public var tasks = 0
        public var bytes: UInt64 = 0

        public init(tasks: Int = 0, bytes: UInt64 = 0) {
            self.tasks = tasks
            self.bytes = bytes
        }

        var isEmpty: Bool { tasks == 0 && bytes == 0 }
    }

    private struct State {
        var total = Usage()
        var owners: [String: Usage] = [:]

        mutating func change(_ owner: String?, _ body: (inout Usage) -> Void) {
            body(&total)
            guard let owner else { return }
            var usage = owners[owner] ?? Usage()
            body(&usage)
            owners[owner] = usage.isEmpty ? nil : usage
        }
    }

    public let maxTasks: Int
    public let maxBytes: UInt64?
    private let state = Mutex(State())

    public init(maxTasks: Int, maxBytes: UInt64?) {
        self.maxTasks = maxTasks
        self.maxBytes = maxBytes
    }

    /// Takes a task place and `bytes` of spool for `owner`, or says which bound is reached
    /// (the owner's quota first: that is the answer its client can act on).
    public func reserve(bytes: UInt64, owner: String? = nil, quota: Quota? = nil) throws(Refusal) {
        let refusal = state.withLock { state -> Refusal? in
            if let owner, let quota {
                let held = state.owners[owner] ?? Usage()
                if let limit = quota.maxTasks, held.tasks >= limit {
                    return .ownerTasks(owner: owner, limit: limit)
                }
                if let limit = quota.maxBytes, held.bytes + bytes > limit {
                    return .ownerBytes(owner: owner, limit: limit)
                }
            }
            if state.total.tasks >= maxTasks { return .tooManyTasks(limit: maxTasks) }
            if let maxBytes, state.total.bytes + bytes > maxBytes { return .tooManyBytes(limit: maxBytes) }
            state.change(owner) {
                $0.tasks += 1
                $0.bytes += bytes
            }
            return nil
        }
        if let refusal { throw refusal }
    }

    /// Takes `bytes` more for a body of unannounced length, or says which bound is hit.
    public func grow(by bytes: UInt64, owner: String? = nil, quota: Quota? = nil) -> Refusal? {
        state.withLock { state in
            if let owner, let limit = quota?.maxBytes, (state.owners[owner]?.bytes ?? 0) + bytes > limit {
                return .ownerBytes(owner: owner, limit: limit)
            }
            if let maxBytes, state.total.bytes + bytes > maxBytes { return .tooManyBytes(limit: maxBytes) }
            state.change(owner) { $0.bytes += bytes }
            return nil
        }
    }

    /// Gives back a task place and `bytes` (an upload that was not accepted).
    public func cancel(bytes: UInt64, owner: String? = nil) {
        state.withLock { state in
            state.change(owner) {
                $0.tasks -= 1
                $0.bytes -= bytes
            }
        }
    }

    /// Counts `tasks` unfinished tasks and `bytes` held, over the bounds if need be
    /// (recovery).
    public func adopt(tasks: Int, bytes: UInt64, owner: String? = nil) {
        state.withLock { state in
            state.change(owner) {
                $0.tasks += tasks
                $0.bytes += bytes
            }
        }
    }

    /// A task finished (delivered, failed or deleted): its place is free.
    public func finishTask(owner: String? = nil) {
        state.withLock { state in state.change(owner) { $0.tasks -= 1 } }
    }

    /// Bytes left the spool.
    public func releaseBytes(_ bytes: UInt64, owner: String? = nil) {
        state.withLock { state in state.change(owner) { $0.bytes -= bytes } }
    }

    /// Unfinished tasks and bytes held, reservations included.
    public var usage: (tasks: Int, bytes: UInt64) {
        state.withLock { ($0.total.tasks, $0.total.bytes) }
    }

    /// What `owner` holds now, reservations included.
    public func usage(of owner: String) -> Usage {
        state.withLock { $0.owners[owner] ?? Usage() }
    }
}
