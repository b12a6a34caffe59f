/// The name of an Incus remote, as `incus remote add NAME` made it: Ferry pushes to
/// `REMOTE:INSTANCE` only for the remotes the operator allowed (`--remote`).
public enum RemoteName {
    /// Why `name` cannot be a remote Ferry pushes to, or nil if it can.
    ///
    /// Letters, digits, `-`, `_` and `.`, starting with a letter or digit: what `incus
    /// remote add` accepts, narrowed so that a name can never be taken for an option, a
    /// path or a URL. `local` is this host's daemon, which an instance name alone reaches:
    /// two names for one destination would let two pushes to one file run at once.
    public static func problem(with name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty || bytes.count > 63 { return "a remote name must be 1-63 characters" }
        let allowed = bytes.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a)
                || (byte >= 0x61 && byte <= 0x7a) || byte == 0x2d || byte == 0x5f || byte == 0x2e
        }
        if !allowed { return "a remote name may hold only letters, digits, '-', '_' and '.'" }
        if [0x2d, 0x5f, 0x2e].contains(bytes[0]) {
            return "a remote name must start with a letter or a digit"
        }
        if name == "local" { return "'local' is this host's daemon: name the instance alone" }
        return nil
    }
}
