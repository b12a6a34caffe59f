/// One SFTP v3 conversation with an instance through the Incus daemon: an HTTP/1.1
/// upgrade on the daemon's unix socket (or, for a remote, over TLS with the client's
/// certificate), then INIT/VERSION, then requests.
///
/// The socket closes when the session goes away, on every path.
struct IncusSFTPSession: ~Copyable {
    typealias InspectionError = IncusFileInspector.InspectionError

    private let stream: UnixStream
    private let timeout: Double
    /// Bytes received and not yet consumed.
    private var buffer: [UInt8] = []

    private init(stream: consuming UnixStream, timeout: Double) {
        self.stream = stream
        self.timeout = timeout
    }

    /// Where the daemon is.
    enum Endpoint {
        /// This host's daemon, at its unix socket.
        case socket(String)
        /// A remote's daemon over TLS, through `openssl s_client` (the program named here):
        /// Foundation on Linux cannot present a client certificate, and the client's own
        /// certificate is what the remote trusts.
        case remote(IncusRemote, openssl: String)
    }

    /// Connects, upgrades to SFTP for `instance` and agrees on version 3.
    ///
    /// - Parameters:
    ///   - deadline: on the ``Monotonic`` clock; every later call ends by it too.
    ///   - timeout: only for the error that says the deadline passed.
    static func open(endpoint: Endpoint, instance: String, deadline: Double, timeout: Double)
        throws(InspectionError) -> IncusSFTPSession
    {
        let stream: UnixStream
        switch endpoint {
        case .socket(let path): stream = try connect(to: path, deadline: deadline, timeout: timeout)
        case .remote(let remote, let openssl):
            stream = try tunnel(to: remote, openssl: openssl, deadline: deadline)
        }
        var session = IncusSFTPSession(stream: stream, timeout: timeout)
        try session.upgrade(instance: instance)
        try session.send([.initialize(version: 3)])
        guard case .version(let version) = try session.nextReply() else {
            throw .protocolViolation("no VERSION in answer to INIT")
        }
        guard version == 3 else { throw .protocolViolation("SFTP version \(version) instead of 3") }
        return session
    }

    private static func connect(to socketPath: String, deadline: Double, timeout: Double)
        throws(InspectionError) -> UnixStream
    {
        do {
            return try UnixStream(connectingTo: socketPath, deadline: deadline)
        } catch .system(let error) {
            throw .unreachable(error)
        } catch {
            throw inspectionError(error, timeout: timeout)
        }
    }

    /// A TLS connection to `remote` with the client's certificate, the remote's pinned
    /// certificate as the only one trusted (as the `incus` client pins it; its name is not
    /// checked, its identity is). A handshake that fails ends the tunnel: the upgrade then
    /// finds the connection closed.
    private static func tunnel(to remote: IncusRemote, openssl: String, deadline: Double)
        throws(InspectionError) -> UnixStream
    {
        do {
            let (pid, descriptor) = try ChildProcess.spawnConnected(
                openssl,
                arguments: [
                    "s_client", "-quiet", "-connect", remote.address, "-cert", remote.clientCertificate,
                    "-key", remote.clientKey, "-CAfile", remote.serverCertificate, "-verify_return_error",
                ])
            return UnixStream(adopting: descriptor, child: pid, deadline: deadline)
        } catch {
            throw .unreachable(error)
        }
    }

    /// Sends `packets` in one write.
    func send(_ packets: [SFTPPacket]) throws(InspectionError) {
        if packets.isEmpty { return }
        do {
            try stream.send(packets.flatMap(\.encoded))
        } catch {
            throw Self.inspectionError(error, timeout: timeout)
        }
    }

    /// The next packet the server sends, read as a reply.
    mutating func nextReply() throws(InspectionError) -> SFTPPacket.Reply {
        while true {
            do throws(SFTPPacket.Malformed) {
                if let packet = try SFTPPacket.take(from: &buffer) { return try packet.reply() }
            } catch {
                throw .protocolViolation(error.reason)
            }
            try receive()
        }
    }

    /// Asks the daemon to switch this connection to SFTP for `instance`.
    ///
    /// - Throws: `refused` with the daemon's status and message when it does not answer 101.
    private mutating func upgrade(instance: String) throws(InspectionError) {
        let request =
            "GET /1.0/instances/\(instance)/sftp HTTP/1.1\r\nHost: incus\r\n"
            + "Upgrade: sftp\r\nConnection: Upgrade\r\n\r\n"
        do {
            try stream.send(Array(request.utf8))
        } catch {
            throw Self.inspectionError(error, timeout: timeout)
        }
        let end = Array("\r\n\r\n".utf8)
        var headLength = 0
        while true {
            if let range = buffer.firstRange(of: end) {
                headLength = range.upperBound
                break
            }
            // A head this long is not the daemon's answer to an upgrade.
            guard buffer.count <= 16 * 1024 else { throw .protocolViolation("an HTTP head over 16 KiB") }
            try receive()
        }
        let head = String(decoding: buffer[..<headLength], as: UTF8.self)
        // What follows the head is already SFTP (or the refusal's body).
        buffer.removeFirst(headLength)
        let lines = head.split(separator: "\r\n")
        let statusWords = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard statusWords.count >= 2, statusWords[0].hasPrefix("HTTP/1."), let status = Int(statusWords[1])
        else {
            throw .protocolViolation("not an HTTP status line: \(lines.first ?? "")")
        }
        if status == 101 { return }
        let reason = statusWords.count > 2 ? String(statusWords[2]) : ""
        throw .refused(status: status, message: errorMessage(head: lines) ?? reason)
    }

    /// The `error` field of the JSON body the daemon sends with a refusal, if it arrives
    /// in time (the connection stays open after it, so only Content-Length tells its end).
    private mutating func errorMessage(head lines: [Substring]) -> String? {
        let lengthLine = lines.first { $0.lowercased().hasPrefix("content-length:") }
        guard let lengthLine,
            let length = Int(
                lengthLine.dropFirst("content-length:".count).filter { $0 != " " && $0 != "\t" }),
            length >= 0
        else { return nil }
        // Enough for the message; a longer body is cut, not waited for.
        let wanted = min(length, 8 * 1024)
        while buffer.count < wanted {
            do throws(InspectionError) { try receive() } catch { break }
        }
        return Self.jsonString(named: "error", in: buffer.prefix(wanted))
    }

    /// The value of the string field `name` in a flat JSON object: the daemon's error body
    /// has only scalar fields before `error`, so a scan is enough and needs no JSON parser.
    private static func jsonString(named name: String, in body: ArraySlice<UInt8>) -> String? {
        let key = Array("\"\(name)\":\"".utf8)
        guard let start = body.firstRange(of: key)?.upperBound else { return nil }
        var value: [UInt8] = []
        var index = start
        while index < body.endIndex {
            let byte = body[index]
            if byte == UInt8(ascii: "\"") { return String(decoding: value, as: UTF8.self) }
            if byte == UInt8(ascii: "\\") {
                // The escaped character stands for itself: right for `\"` and `\\`, the
                // only escapes an error message is likely to hold; close enough for others.
                index += 1
                guard index < body.endIndex else { break }
            }
            value.append(body[index])
            index += 1
        }
        return nil
    }

    private mutating func receive() throws(InspectionError) {
        do {
            try stream.receive(into: &buffer)
        } catch {
            throw Self.inspectionError(error, timeout: timeout)
        }
    }

    private static func inspectionError(_ failure: UnixStream.Failure, timeout: Double) -> InspectionError {
        switch failure {
        case .system(let error): .connectionLost(error.description)
        case .timedOut: .timedOut(seconds: timeout)
        case .closed: .connectionLost("closed by the daemon")
        }
    }
}
