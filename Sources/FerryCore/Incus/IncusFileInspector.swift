import Glibc

/// Tells what destination paths are inside an instance before a push, by asking the Incus
/// daemon's SFTP endpoint (`GET /1.0/instances/NAME/sftp`, upgraded to SFTP v3).
///
/// The files API cannot be used for this: its HEAD and GET report a FIFO as a file, and a GET
/// on a FIFO hangs (and holds a daemon thread). A STAT over SFTP reads `st_mode` and opens
/// nothing.
public struct IncusFileInspector: Sendable {
    /// Why the daemon could not be asked; a caller then pushes without the check.
    public enum InspectionError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The daemon's socket could not be connected to (missing, refused, not permitted).
        case unreachable(SystemError)
        /// The daemon answered the upgrade with `status` (404 for an unknown instance) and
        /// its error message.
        case refused(status: Int, message: String)
        /// The connection closed or failed after it was made.
        case connectionLost(String)
        /// The peer sent something that is not the HTTP or SFTP Ferry expects.
        case protocolViolation(String)
        /// The answers did not all arrive within the inspector's timeout.
        case timedOut(seconds: Double)
        /// The server could not stat `path`, for another reason than a missing file or a
        /// parent that is not a directory (permission denied, a symlink loop).
        case statFailed(path: String, code: UInt32, message: String)
        /// Not a valid instance name, so not sent.
        case invalidInstanceName(String)
        /// A remote the inspector was not given (not allowed with `--remote`).
        case unknownRemote(String)

        public var description: String {
            switch self {
            case .unreachable(let error): "cannot reach the Incus daemon: \(error)"
            case .refused(let status, let message): "the Incus daemon refused SFTP (\(status)): \(message)"
            case .connectionLost(let reason): "the SFTP connection failed: \(reason)"
            case .protocolViolation(let reason): "unexpected answer from the Incus daemon: \(reason)"
            case .timedOut(let seconds): "no answer from the Incus daemon within \(seconds)s"
            case .statFailed(let path, let code, let message):
                "cannot stat \(path) (SFTP status \(code)): \(message)"
            case .invalidInstanceName(let reason): "invalid instance name: \(reason)"
            case .unknownRemote(let name): "remote '\(name)' is not one Ferry pushes to"
            }
        }
    }

    /// The daemon's unix socket.
    public let socketPath: String
    /// The remotes a destination may be on, by name: asked over TLS.
    public let remotes: [String: IncusRemote]
    /// The `openssl` program that carries TLS to a remote.
    public let openssl: String
    /// Seconds one ``inspect(instance:paths:followingSymlinks:)`` call may take in all.
    public let timeout: Double

    /// Requests sent before their answers are read: enough to hide the round trips, few
    /// enough that the answers always fit the socket buffers (so neither side blocks).
    static let window = 64

    public init(
        socketPath: String, remotes: [String: IncusRemote] = [:], openssl: String = "openssl",
        timeout: Double = 5
    ) {
        self.socketPath = socketPath
        self.remotes = remotes
        self.openssl = openssl
        self.timeout = timeout
    }

    /// The socket the `incus` client would use: `$INCUS_SOCKET`, else
    /// `$INCUS_DIR/unix.socket`, else `/run/incus/unix.socket` if it exists (as the client
    /// checks first), else `/var/lib/incus/unix.socket`.
    public static func defaultSocketPath(environment: [String: String]) -> String {
        if let socket = environment["INCUS_SOCKET"], !socket.isEmpty { return socket }
        if let directory = environment["INCUS_DIR"], !directory.isEmpty {
            return directory.hasSuffix("/") ? directory + "unix.socket" : directory + "/unix.socket"
        }
        var status = stat()
        if lstat("/run/incus/unix.socket", &status) == 0 { return "/run/incus/unix.socket" }
        return "/var/lib/incus/unix.socket"
    }

    /// Stats each of `paths` (absolute) inside `instance`, over one SFTP connection.
    ///
    /// - Parameters:
    ///   - instance: a valid Incus instance name, in the default project.
    ///   - paths: absolute paths inside the instance; any number, asked over one connection.
    ///   - followingSymlinks: STAT rather than LSTAT; true by default because a push writes
    ///     through a symlink.
    /// - Returns: one kind per path, in order.
    /// - Throws: ``InspectionError`` when the daemon cannot be asked (no socket, unknown
    ///   instance, protocol error, timeout) or one path cannot be stat'ed.
    public func inspect(
        instance: String, remote: String? = nil, paths: [String], followingSymlinks: Bool = true
    ) throws(InspectionError) -> [DestinationKind] {
        if paths.isEmpty { return [] }
        // The name goes into the request line unescaped: only Incus's own rule keeps it safe.
        if let problem = InstanceName.problem(with: instance) { throw .invalidInstanceName(problem) }
        let endpoint: IncusSFTPSession.Endpoint
        if let remote {
            guard let known = remotes[remote] else { throw .unknownRemote(remote) }
            endpoint = .remote(known, openssl: openssl)
        } else {
            endpoint = .socket(socketPath)
        }
        var session = try IncusSFTPSession.open(
            endpoint: endpoint, instance: instance, deadline: Monotonic.seconds() + timeout, timeout: timeout)
        var kinds = [DestinationKind?](repeating: nil, count: paths.count)
        var sent = 0
        var answered = 0
        while answered < paths.count {
            var requests: [SFTPPacket] = []
            while sent < paths.count && sent - answered < Self.window {
                requests.append(
                    .stat(id: UInt32(sent), path: paths[sent], followingSymlinks: followingSymlinks))
                sent += 1
            }
            try session.send(requests)
            let reply = try session.nextReply()
            guard let id = reply.id.map(Int.init), id < sent, kinds[id] == nil else {
                throw .protocolViolation("an answer to no waiting request: \(reply)")
            }
            kinds[id] = try Self.kind(of: reply, path: paths[id])
            answered += 1
        }
        // Every request was answered once, so none is left nil.
        return kinds.compactMap { $0 }
    }

    /// What every component of each of `paths` is, symlinks not followed, over one SFTP
    /// connection: a component that several paths share (a batch's directory) is asked
    /// once. Nothing is kept after the call: the instance can change at any time.
    ///
    /// - Returns: the kind of each component (see ``DestinationCheck/components(of:)``).
    public func lstatComponents(instance: String, remote: String? = nil, paths: [String])
        throws(InspectionError) -> [String: DestinationKind]
    {
        var seen = Set<String>()
        var components: [String] = []
        for path in paths {
            for component in DestinationCheck.components(of: path) where seen.insert(component).inserted {
                components.append(component)
            }
        }
        let kinds = try inspect(
            instance: instance, remote: remote, paths: components, followingSymlinks: false)
        return Dictionary(zip(components, kinds), uniquingKeysWith: { first, _ in first })
    }

    /// The kind that the answer to a STAT of `path` means.
    private static func kind(of reply: SFTPPacket.Reply, path: String) throws(InspectionError)
        -> DestinationKind
    {
        switch reply {
        case .attributes(_, let mode?):
            return DestinationKind(mode: mode)
        case .status(_, SFTPPacket.noSuchFile, _):
            return .missing
        // The server (Go's pkg/sftp) gives only ENOENT and EACCES/EPERM codes of their own;
        // ENOTDIR comes as a FAILURE carrying Go's text for the errno.
        case .status(_, SFTPPacket.failure, let message) where message.hasSuffix("not a directory"):
            return .notADirectoryOnTheWay
        case .status(_, let code, let message):
            throw .statFailed(path: path, code: code, message: message)
        case .attributes(_, nil), .version:
            throw .protocolViolation("\(reply) in answer to a STAT")
        }
    }
}
