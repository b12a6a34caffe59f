import Glibc

/// How the process's descriptors are shared out, from `RLIMIT_NOFILE` at start-up.
///
/// Connections take a socket and, for an upload, a spool file; an answer given before the
/// body keeps a duplicate of its socket while it lingers. Pushes need pipes, the spool and
/// the loops need a few of their own. Whatever clients do, connections must leave those
/// free: a push that cannot start for want of a descriptor delays an accepted upload.
struct DescriptorBudget: Equatable {
    /// Descriptors every process needs whatever it serves: standard streams, loops,
    /// listeners, the spool directory, the committer, readiness checks, logs.
    static let fixed = 64
    /// Descriptors one running push needs: two socket pairs for its output, the child's
    /// copies while it starts, and an inspection socket.
    static let perPush = 8
    /// Descriptors one event loop needs (its base, its wake-up pipe, its listener).
    static let perLoop = 4

    /// Connections past which requests get 503.
    var maxConnections: Int
    /// Connections past which accepted sockets are closed unread.
    var connectionCap: Int
    /// Sockets that may linger after an early answer.
    var lingeringCap: Int
    /// Whether `maxConnections` was lowered to fit the limit.
    var lowered: Bool

    /// The budget for `descriptors` in all.
    static func plan(descriptors: Int, requestedConnections: Int, workers: Int, loops: Int)
        -> DescriptorBudget
    {
        let reserve = fixed + perPush * workers + perLoop * loops
        func needed(_ connections: Int) -> Int {
            let budget = shares(connections)
            return reserve + 2 * budget.cap + budget.lingering
        }
        var connections = max(1, requestedConnections)
        while connections > 1 && needed(connections) > descriptors {
            connections = max(1, connections * 9 / 10)
        }
        let budget = shares(connections)
        return DescriptorBudget(
            maxConnections: connections, connectionCap: budget.cap, lingeringCap: budget.lingering,
            lowered: connections < requestedConnections)
    }

    private static func shares(_ connections: Int) -> (cap: Int, lingering: Int) {
        (connections + max(16, connections / 16), min(1024, connections / 4 + 16))
    }

    /// Raises the soft descriptor limit to the hard one and says what it is now.
    static func raiseLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }
}
