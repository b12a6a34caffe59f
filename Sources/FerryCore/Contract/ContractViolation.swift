/// Why a request head does not make a valid upload. One case per rule, so callers can map
/// each to a status and the message names what to fix.
public enum ContractViolation: Error, Equatable, Sendable, CustomStringConvertible {
    case missingHeader(String)
    case duplicateHeader(String)
    case invalidContainerName(String)
    case invalidPath(String)
    case missingFileName(String)
    case invalidMode(String)
    case invalidOwner(header: String, value: String)
    case invalidFlag(header: String, value: String)
    /// The value is not UTF-8 (a Latin-1 `é`, say): read as text it would name another file.
    case notUTF8(String)

    public var description: String {
        switch self {
        case .missingHeader(let name): "missing required header \(name)"
        case .duplicateHeader(let name): "header \(name) appears more than once"
        case .invalidContainerName(let reason): "invalid X-Container-Name: \(reason)"
        case .invalidPath(let reason): "invalid X-File-Path: \(reason)"
        case .missingFileName(let reason):
            "X-File-Path names a directory (trailing /) and \(reason)"
        case .invalidMode(let value): "invalid X-File-Mode \(Self.quoted(value)): expected octal 0000-7777"
        case .invalidOwner(let header, let value):
            "invalid \(header) \(Self.quoted(value)): expected a number 0-4294967294"
        case .invalidFlag(let header, let value):
            "invalid \(header) \(Self.quoted(value)): expected true or false"
        case .notUTF8(let name): "invalid \(name): not UTF-8"
        }
    }

    /// Shows a hostile value without control characters and without flooding the log.
    public static func quoted(_ value: String) -> String {
        let cleaned = value.unicodeScalars.prefix(64).map {
            $0.value < 0x20 || $0.value == 0x7f ? "?" : String($0)
        }.joined()
        return "\"\(cleaned)\(value.unicodeScalars.count > 64 ? "..." : "")\""
    }
}
