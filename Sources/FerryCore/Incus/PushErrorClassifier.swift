/// Sorts `incus file push` failures into permanent and transient, from stderr alone (every
/// failure exits with status 1).
///
/// The one table of known messages. Texts as Incus 6.0.4 words them; newer releases word
/// some differently, so a message that matches nothing is transient (retried, not lost).
public enum PushErrorClassifier {
    /// A permanent failure: every fragment must appear in stderr.
    public struct Rule: Sendable {
        public var fragments: [String]
        public var reason: String

        /// Whether every fragment appears in `text`.
        public func matches(_ text: String) -> Bool {
            fragments.allSatisfy { text.contains($0) }
        }
    }

    public static let permanentRules: [Rule] = [
        Rule(fragments: ["Instance not found"], reason: "instance not found"),
        Rule(fragments: ["not a directory"], reason: "a parent of the destination is not a directory"),
        Rule(fragments: ["is a directory"], reason: "the destination is a directory"),
        Rule(fragments: ["Invalid target"], reason: "invalid target"),
        Rule(fragments: ["The remote \"", "doesn't exist"], reason: "unknown remote"),
        Rule(fragments: ["strconv.ParseInt"], reason: "invalid mode"),
    ]

    /// Failures known to pass: the daemon (here or on a remote) down or unreachable, a TLS
    /// handshake that failed, a remote that no longer trusts Ferry's certificate. Checked
    /// before the permanent rules, so that no wording of theirs can make one permanent: an
    /// operator fixes the network or the trust, and the queued files go.
    public static let transientRules: [Rule] = [
        Rule(fragments: ["Unable to connect to"], reason: "the remote is unreachable"),
        Rule(fragments: ["tls: "], reason: "the TLS handshake with the remote failed"),
        Rule(fragments: ["x509: "], reason: "the remote's certificate is not the one trusted"),
        Rule(fragments: ["not authorized"], reason: "the remote does not trust this client"),
        Rule(fragments: ["doesn't appear to be started"], reason: "the daemon is not running"),
        Rule(fragments: ["needed permissions to talk to the incus daemon"], reason: "the socket refuses"),
    ]

    /// Classifies a failed push from its stderr.
    public static func classify(standardError: String) -> PushFailure.Kind {
        if transientRules.contains(where: { $0.matches(standardError) }) { return .transient }
        return rule(matching: standardError) == nil ? .transient : .permanent
    }

    /// The permanent rule that `standardError` matches, if any.
    public static func rule(matching standardError: String) -> Rule? {
        permanentRules.first { $0.matches(standardError) }
    }
}
