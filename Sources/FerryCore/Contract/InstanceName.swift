/// Incus's rule for instance names (`IsHostname`).
public enum InstanceName {
    /// Why `name` is not a valid instance name, or nil if it is.
    public static func problem(with name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty || bytes.count > 63 { return "must be 1-63 characters" }
        let allowed = bytes.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a)
                || (byte >= 0x61 && byte <= 0x7a) || byte == 0x2d
        }
        if !allowed { return "only letters, digits and '-' are allowed" }
        if bytes.first == 0x2d || bytes.last == 0x2d { return "must not start or end with '-'" }
        if bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { return "must not be all digits" }
        return nil
    }
}
