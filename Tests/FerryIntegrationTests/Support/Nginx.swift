import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// A real nginx on a free loopback port in front of one Ferry, running the shipped
/// `deploy/nginx/ferry-site.conf` (with its snippets) with only its paths, ports and listen
/// lines rewritten, and its temp directories and logs in a private prefix.
final class Nginx {
    let prefix: URL
    private(set) var port: UInt16 = 0
    private var process = Process()
    private var stopped = false

    /// The repository's root, from this file's place in it.
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // Support
        .deletingLastPathComponent()  // FerryIntegrationTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    /// The shipped configuration, used as is.
    static let deployDirectory = repositoryRoot.appendingPathComponent("deploy/nginx")

    /// Where nginx may write a request body it buffers (it must not, for Ferry).
    var clientBodyTemp: URL { prefix.appendingPathComponent("client_body_temp") }
    var errorLog: URL { prefix.appendingPathComponent("logs/error.log") }

    /// Starts nginx proxying to Ferry on `upstreamPort` (the shipped ferry-site.conf) and
    /// waits until it accepts connections.
    convenience init(upstreamPort: UInt16) throws {
        try self.init(site: "ferry-site.conf", upstreams: ["127.0.0.1:8080": upstreamPort])
    }

    /// Starts nginx in front of nodes n1 and n2 on these ports, with the shipped
    /// ferry-nodes.conf.
    convenience init(nodePorts first: UInt16, _ second: UInt16) throws {
        try self.init(
            site: "ferry-nodes.conf", upstreams: ["127.0.0.1:8081": first, "127.0.0.1:8082": second])
    }

    /// Starts nginx with the shipped `site`, each of its `upstreams` addresses pointed at
    /// a loopback port.
    private init(site siteFile: String, upstreams: [String: UInt16]) throws {
        let binary = try Self.binary()
        prefix = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("ferry-nginx-\(UUID().uuidString)")
        for directory in ["logs", "client_body_temp", "proxy_temp", "other_temp"] {
            try FileManager.default.createDirectory(
                at: prefix.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        for file in [siteFile, "ferry-proxy.conf", "ferry-request-id.conf"]
        where !FileManager.default.fileExists(atPath: Self.deployDirectory.appendingPathComponent(file).path)
        {
            throw TestSetupError("the shipped \(file) is missing in \(Self.deployDirectory.path)")
        }
        // Another process may take the free port between our probe and nginx's bind: try again.
        var attempt = 0
        while true {
            attempt += 1
            port = try freeLoopbackPort()
            try site(siteFile, upstreams: upstreams).write(
                to: prefix.appendingPathComponent("ferry-site.conf"), atomically: true, encoding: .utf8)
            try configuration().write(
                to: prefix.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
            if try start(binary) { return }
            let log = (try? String(contentsOf: errorLog, encoding: .utf8)) ?? ""
            guard log.contains("Address already in use"), attempt < 5 else {
                throw TestSetupError("nginx did not start; its error log:\n\(log.suffix(3000))")
            }
        }
    }

    deinit {
        stop()
    }

    /// Stops nginx (fast shutdown) and waits for it to end.
    func stop() {
        guard !stopped else { return }
        stopped = true
        _ = process.end(with: SIGTERM)
    }

    /// Regular files under client_body_temp (nginx names them 0000000001 and so on).
    func clientBodyTempFiles() -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: clientBodyTemp.path) else { return [] }
        return walker.compactMap { entry in
            guard let name = entry as? String else { return nil }
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(
                atPath: clientBodyTemp.appendingPathComponent(name).path, isDirectory: &isDirectory)
            return exists && !isDirectory.boolValue ? name : nil
        }
    }

    /// The error log's lines that contain `fragment`.
    func errorLogLines(containing fragment: String) -> [String] {
        let log = (try? String(contentsOf: errorLog, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").map(String.init).filter { $0.contains(fragment) }
    }

    /// The last lines of the error log, for failure messages.
    func errorLogTail(_ count: Int = 20) -> String {
        let log = (try? String(contentsOf: errorLog, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").suffix(count).joined(separator: "\n")
    }

    /// The shipped site with what only fits a real host rewritten: the snippets' install paths
    /// (to the repository's files), Ferry's port, and `listen 80` (to this nginx's loopback
    /// port). Everything else, the locations and their allow rules, stays as shipped.
    private func site(_ file: String, upstreams: [String: UInt16]) throws -> String {
        let shipped = Self.deployDirectory.appendingPathComponent(file)
        var text = try String(contentsOf: shipped, encoding: .utf8)
        let rewrites =
            [
                ("include /etc/nginx/snippets/", "include \(Self.deployDirectory.path)/"),
                ("\n    listen 80;\n", "\n    listen 127.0.0.1:\(port);\n"),
                ("\n    listen [::]:80;\n", "\n"),
            ] + upstreams.map { ("server \($0.key)", "server 127.0.0.1:\($0.value)") }
        for (old, new) in rewrites {
            // A site that changed shape must fail here, not run half rewritten.
            guard text.contains(old) else {
                throw TestSetupError("\(shipped.path) no longer has \(old.debugDescription)")
            }
            text = text.replacingOccurrences(of: old, with: new)
        }
        return text
    }

    /// nginx.conf: Debian's http level in brief (temp paths and logs in the prefix), then the
    /// site, as Debian's nginx.conf includes sites-enabled/*.
    private func configuration() -> String {
        let root = prefix.path
        return """
            worker_processes 1;
            pid \(root)/nginx.pid;
            error_log \(root)/logs/error.log info;
            events { worker_connections 512; }
            http {
                access_log \(root)/logs/access.log;
                client_body_temp_path \(root)/client_body_temp;
                proxy_temp_path \(root)/proxy_temp;
                fastcgi_temp_path \(root)/other_temp;
                uwsgi_temp_path \(root)/other_temp;
                scgi_temp_path \(root)/other_temp;
                include \(root)/ferry-site.conf;
            }

            """
    }

    /// Runs nginx in the foreground; true once it has written its pid and accepts
    /// connections, false if it exited first.
    private func start(_ binary: String) throws -> Bool {
        try? FileManager.default.removeItem(at: errorLog)
        process = Process()
        stopped = false
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "-p", prefix.path + "/", "-c", prefix.appendingPathComponent("nginx.conf").path,
            "-e", errorLog.path, "-g", "daemon off;",
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let pidFile = prefix.appendingPathComponent("nginx.pid")
        let ownPid = String(process.processIdentifier)
        var ready = false
        try waitUntil("nginx accepts connections on port \(port) or exits", timeout: 20) {
            guard process.isRunning else { return true }
            let written = (try? String(contentsOf: pidFile, encoding: .utf8)) ?? ""
            guard written.trimmingCharacters(in: .whitespacesAndNewlines) == ownPid else { return false }
            ready = (try? RawHTTPClient(port: port)) != nil
            return ready
        }
        if !ready { stopped = true }
        return ready
    }

    /// The nginx executable: NGINX_BIN, or `nginx` on PATH or in the usual sbin directories.
    private static func binary() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["NGINX_BIN"] {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw TestSetupError("NGINX_BIN=\(path) is not an executable nginx")
            }
            return path
        }
        let directories =
            (environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/sbin", "/usr/local/sbin", "/sbin"]
        for directory in directories {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent("nginx").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestSetupError(
            "nginx is not installed (looked on PATH and in /usr/sbin): run scripts/install-deps.sh, "
                + "which installs Debian's nginx-light, or set NGINX_BIN")
    }
}

/// A loopback port nobody listens on right now (the kernel's pick for port 0).
func freeLoopbackPort() throws -> UInt16 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw TestSetupError("socket failed: errno \(errno)") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound else { throw TestSetupError("bind to a free loopback port failed: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}

/// The SHA-256 of bytes produced piece by piece (a body too large to hold), by `sha256sum`.
final class StreamingSHA256 {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sha256sum"]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    func update(_ bytes: [UInt8]) throws {
        try input.fileHandleForWriting.write(contentsOf: bytes)
    }

    /// Ends the input and returns the digest in hex.
    func finish() throws -> String {
        try input.fileHandleForWriting.close()
        let digest = try output.fileHandleForReading.readToEnd() ?? Data()
        return String(decoding: digest, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }
}
