import Glibc

/// Generates task identifiers: `NODE-` and 128 random bits as 32 lowercase hex digits
/// (`n1-6f20f795559a4106874b980d897b4814`). The node part tells a front end which Ferry
/// node holds the task's bytes (`--node-id`); ids of older versions, and of a service
/// started without a node, are the 32 digits alone, and stay valid.
public enum TaskID {
    /// A new id, made by `node` (nil: no node part).
    public static func make(node: String? = nil) -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        let random = hex(high) + hex(low)
        return node.map { "\($0)-\(random)" } ?? random
    }

    /// The node named in `id`, or nil for an id without one.
    public static func node(of id: String) -> String? {
        guard let dash = id.lastIndex(of: "-") else { return nil }
        return String(id[..<dash])
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// A Ferry node's name in a fleet (`--node-id`): the first part of every id it makes, so
/// that nginx can send a task's or an upload's requests to the node that holds it.
public enum NodeID {
    /// Why `id` cannot be a node's name, or nil: 1-32 lowercase letters, digits and `-`,
    /// starting and ending with a letter or digit (a DNS label, lower case: a name that
    /// fits into a URL path, an nginx upstream name and a file name as it is).
    public static func problem(with id: String) -> String? {
        let bytes = Array(id.utf8)
        if bytes.isEmpty || bytes.count > 32 { return "a node id must be 1-32 characters" }
        let isLetterOrDigit = { (byte: UInt8) in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7a)
        }
        guard bytes.allSatisfy({ isLetterOrDigit($0) || $0 == 0x2d }) else {
            return "a node id may hold only lowercase letters, digits and '-'"
        }
        guard isLetterOrDigit(bytes[0]), isLetterOrDigit(bytes[bytes.count - 1]) else {
            return "a node id must start and end with a letter or a digit"
        }
        return nil
    }

    /// A node id made from `hostName`: lowercased, other characters as `-`, cut to 32
    /// (`Web-01.example.com` is `web-01-example-com`); `ferry` when nothing is left.
    public static func from(hostName: String) -> String {
        var id = ""
        for scalar in hostName.lowercased().unicodeScalars {
            let keep = (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9")
            if keep {
                id.unicodeScalars.append(scalar)
            } else if !id.isEmpty && !id.hasSuffix("-") {
                id += "-"
            }
        }
        while id.hasSuffix("-") { id.removeLast() }
        id = String(id.prefix(32))
        while id.hasSuffix("-") { id.removeLast() }
        return id.isEmpty ? "ferry" : id
    }

    /// This machine's host name as a node id.
    public static func ofThisHost() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "ferry" }
        return from(hostName: String(cString: name))
    }
}
