/// Whether a push may write a destination, judged from what each of its components is
/// inside the instance, symlinks not followed (see ``IncusFileInspector/lstatComponents(instance:paths:)``).
///
/// `incus file push` resolves the path inside the instance and follows symlinks, in the
/// parents and in the final name: a symlink planted by anyone who can write a parent
/// directory would turn the upload into a root-owned write elsewhere (`/srv/app/ln ->
/// /etc`). So a destination with a symlink anywhere is refused.
public enum DestinationCheck: Sendable, Equatable {
    /// Nothing in the way: the push may go.
    case writable
    /// `component` (a parent, or the destination itself) is a symlink.
    case symlink(component: String)
    /// The destination exists and is neither a regular file nor a directory.
    case unusable(kind: String)

    /// The components of absolute `path` from the top: `/a/b/c` → `/a`, `/a/b`, `/a/b/c`.
    public static func components(of path: String) -> [String] {
        var prefixes: [String] = []
        var current = ""
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            current += "/" + segment
            prefixes.append(current)
        }
        return prefixes
    }

    /// The verdict for `path`, given the kind of each of its components.
    public static func verdict(for path: String, kinds: [String: DestinationKind]) -> DestinationCheck {
        let components = components(of: path)
        for (index, component) in components.enumerated() {
            switch kinds[component] {
            case .other("symlink"): return .symlink(component: component)
            case .directory: continue
            case .other(let name) where index == components.count - 1: return .unusable(kind: name)
            // Missing (the rest will be created, or the push fails), a regular file (the
            // destination itself, or a parent the push will fail on), or not asked: nothing
            // past it can be a symlink the push would follow.
            default: return .writable
            }
        }
        return .writable
    }
}
