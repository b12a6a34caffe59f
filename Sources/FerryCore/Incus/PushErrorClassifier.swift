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
    }

    public static let permanentRules: [Rule] = [
        Rule(fragments: ["Instance not found"], reason: "instance not found"),
        Rule(fragments: ["not a directory"], reason: "a parent of the destination is not a directory"),
        Rule(fragments: ["is a directory"], reason: "the destination is a directory"),
        Rule(fragments: ["Invalid target"], reason: "invalid target"),
        Rule(fragments: ["The remote \"", "doesn't exist"], reason: "unknown remote"),
        Rule(fragments: ["strconv.ParseInt"], reason: "invalid mode"),
    ]

    /// Classifies a failed push from its stderr.
    public static func classify(standardError: String) -> PushFailure.Kind {
        rule(matching: standardError) == nil ? .transient : .permanent
    }

    /// The permanent rule that `standardError` matches, if any.
    public static func rule(matching standardError: String) -> Rule? {
        permanentRules.first { rule in rule.fragments.allSatisfy { standardError.contains($0) } }
    }
}
