/// Rules for the destination path inside the container, and how the final path is built.
public enum DestinationPath {
    /// The longest `X-File-Path` accepted, in bytes (Linux's PATH_MAX).
    public static let maximumLength = 4096
    /// The longest segment (one file or directory name), in bytes (Linux's NAME_MAX).
    public static let maximumSegmentLength = 255

    /// Builds the full destination path from `X-File-Path` and the client's `X-Host-Path`.
    ///
    /// A trailing `/` means "into this directory", and the file name is then the base name of
    /// the host path. `incus file push` would otherwise append the *spool* file's name.
    /// - Throws: ``ContractViolation/invalidPath(_:)`` or ``ContractViolation/missingFileName(_:)``.
    public static func resolve(filePath: String, hostPath: String?) throws(ContractViolation) -> String {
        if let problem = problem(with: filePath) { throw .invalidPath(problem) }
        guard filePath.hasSuffix("/") else { return filePath }
        guard let hostPath else {
            throw .missingFileName("X-Host-Path is missing")
        }
        guard let name = baseName(of: hostPath) else {
            throw .missingFileName("X-Host-Path has no usable file name")
        }
        let full = filePath + name
        if full.utf8.count > maximumLength { throw .invalidPath("longer than \(maximumLength) bytes") }
        return full
    }

    /// Why `path` is not acceptable as a destination, or nil if it is.
    static func problem(with path: String) -> String? {
        let bytes = Array(path.utf8)
        if bytes.isEmpty { return "empty" }
        if bytes.count > maximumLength { return "longer than \(maximumLength) bytes" }
        if bytes.first != 0x2f { return "must be absolute (start with /)" }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return "contains control characters" }
        // "/" is the root directory: the file name then comes from X-Host-Path.
        if path == "/" { return nil }
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if path.hasSuffix("/") { segments = segments.dropLast() }
        for segment in segments {
            if segment.isEmpty { return "contains an empty segment (//)" }
            if segment == "." || segment == ".." { return "contains a '.' or '..' segment" }
            // Linux's NAME_MAX: Incus would refuse it, and the task would be retried for nothing.
            if segment.utf8.count > maximumSegmentLength {
                return "has a segment longer than \(maximumSegmentLength) bytes"
            }
        }
        return nil
    }

    /// The last segment of a client path (`/` or `\` separated), if it is a usable file name.
    static func baseName(of hostPath: String) -> String? {
        let last = hostPath.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init)
        guard let name = last, name != ".", name != "..", name.utf8.count <= 255,
            !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f })
        else { return nil }
        return name
    }
}
