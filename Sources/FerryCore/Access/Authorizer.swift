import Synchronization

/// The policy in force, replaceable at run time (SIGHUP) as a whole: a request sees either
/// the old policy or the new one, never a mix; a broken file leaves the old one in force.
public final class Authorizer: Sendable {
    public let path: String
    private let policy: Mutex<AccessPolicy>

    /// Loads the policy file at `path`.
    public init(path: String) throws(PolicyError) {
        self.path = path
        policy = Mutex(try AccessPolicy.load(path: path))
    }

    /// Reads the file again and, if it is valid, puts it in force.
    ///
    /// - Returns: how many tokens the new policy has.
    @discardableResult
    public func reload() throws(PolicyError) -> Int {
        let fresh = try AccessPolicy.load(path: path)
        policy.withLock { $0 = fresh }
        return fresh.rules.count
    }

    /// The rule of the token presented, or nil when no token of the policy matches.
    public func rule(forToken token: String) -> TokenRule? {
        policy.withLock { $0 }.rule(forToken: token)
    }

    /// How many tokens are in force.
    public var tokenCount: Int { policy.withLock { $0.rules.count } }
}
