/// Turns the header fields of an upload into an ``UploadRequest``, or says which rule failed.
///
/// Takes a lookup function rather than an HTTP type so it can be used (and tested) without
/// the HTTP layer.
public enum UploadContract {
    public static let containerHeader = "X-Container-Name"
    public static let pathHeader = "X-File-Path"
    public static let hostPathHeader = "X-Host-Path"
    public static let modeHeader = "X-File-Mode"
    public static let uidHeader = "X-File-Uid"
    public static let gidHeader = "X-File-Gid"
    public static let createDirsHeader = "X-Create-Dirs"
    /// Every contract header.
    public static let headers = [
        containerHeader, pathHeader, hostPathHeader, modeHeader, uidHeader, gidHeader, createDirsHeader,
    ]

    /// Validates the contract headers.
    ///
    /// - Parameters:
    ///   - values: all values of a header name (case-insensitive).
    ///   - remotes: the remotes a container may name (`REMOTE:INSTANCE`, `--remote`); with
    ///     none, a name with a `:` is refused like any other bad name.
    /// - Throws: the first ``ContractViolation`` found.
    public static func validate(_ values: (String) -> [String], remotes: Set<String> = [])
        throws(ContractViolation) -> UploadRequest
    {
        func single(_ name: String) throws(ContractViolation) -> String? {
            let found = values(name)
            if found.count > 1 { throw .duplicateHeader(name) }
            return found.first
        }
        guard let container = try single(containerHeader) else {
            throw .missingHeader(containerHeader)
        }
        if let problem = problem(withContainer: container, remotes: remotes) {
            throw .invalidContainerName(problem)
        }
        guard let filePath = try single(pathHeader) else { throw .missingHeader(pathHeader) }
        let hostPath = try single(hostPathHeader)
        let path = try DestinationPath.resolve(filePath: filePath, hostPath: hostPath)

        var mode: UInt32 = 0o644
        if let text = try single(modeHeader) {
            guard (1...5).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }),
                let parsed = UInt32(text, radix: 8), parsed <= 0o7777
            else { throw .invalidMode(text) }
            mode = parsed
        }
        let uid = try owner(uidHeader, try single(uidHeader))
        let gid = try owner(gidHeader, try single(gidHeader))
        var createDirectories = false
        if let text = try single(createDirsHeader) {
            switch text.lowercased() {
            case "true": createDirectories = true
            case "false": createDirectories = false
            default: throw .invalidFlag(header: createDirsHeader, value: text)
            }
        }
        return UploadRequest(
            container: container, path: path, mode: mode, uid: uid, gid: gid,
            createDirectories: createDirectories)
    }

    /// Why `container` (`INSTANCE` or `REMOTE:INSTANCE`) names no destination Ferry may push
    /// to, or nil.
    ///
    /// - Parameter remotes: the remotes allowed (`--remote`); nil: any well-formed name
    ///   (for what only names a container, such as a pause).
    public static func problem(withContainer container: String, remotes: Set<String>?) -> String? {
        let (remote, instance) = UploadRequest.split(container)
        guard let remote else { return InstanceName.problem(with: instance) }
        if let problem = RemoteName.problem(with: remote) { return problem }
        if let remotes, !remotes.contains(remote) {
            return remotes.isEmpty
                ? "a remote ('\(remote):') needs --remote \(remote); this server pushes to its own daemon only"
                : "remote '\(remote)' is not one this server pushes to (--remote: \(remotes.sorted().joined(separator: ", ")))"
        }
        return InstanceName.problem(with: instance)
    }

    private static func owner(_ header: String, _ text: String?) throws(ContractViolation) -> UInt32 {
        guard let text else { return 0 }
        // Digits only: UInt32("+5") parses, and 4294967295 is (uid_t)-1, "no change".
        guard (1...10).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = UInt32(text), value != UInt32.max
        else { throw .invalidOwner(header: header, value: text) }
        return value
    }
}
