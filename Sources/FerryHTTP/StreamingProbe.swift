import CFerryHook
import Glibc

/// Proves on the running process that request bodies stream.
///
/// The interposed `evhttp_request_new` fails silently if a build links libevent with
/// `-Bsymbolic-functions`, LTO, or drops the symbol; evhttp then buffers whole bodies. The
/// probe sends a request head that announces a 1 MiB body and sends no body: only a
/// streaming server can judge that head.
public enum StreamingProbe {
    /// Runs the probe on `loop` (on the calling thread, before the loop serves).
    ///
    /// - Throws: ``HTTPServerError/streamingUnavailable(_:)`` when the head was not judged.
    public static func verify(on loop: EventLoop) throws {
        let witness = ProbeHandler()
        let server = try HTTPServer(loop: loop, handler: witness, maxBodySize: 1 << 20, idleTimeout: 5)
        let address = try server.listen(on: "127.0.0.1:0", backlog: 4)
        let client = try ProbeClient(address: address)
        defer { client.close() }
        client.send(
            "POST /streaming-probe HTTP/1.1\r\nHost: probe\r\nContent-Length: 1048576\r\n\r\n")
        let judged = loop.run(forAtMost: 5) { witness.headSeen }
        let connectionsCounted = CFerryHook_connectionsOpen() > 0
        guard judged else {
            throw HTTPServerError.streamingUnavailable(
                "libevent read the request body before its headers reached Ferry "
                    + "(hooked request objects: \(CFerryHook_requestsSeen())). "
                    + "The executable must export evhttp_request_new (check `nm -D`) and "
                    + "libevent must call it through its PLT.")
        }
        guard CFerryHook_headLineHookRan() else {
            throw HTTPServerError.streamingUnavailable(
                "libevent read a request head without Ferry's line hook, so NUL bytes in heads would go unseen"
            )
        }
        guard CFerryHook_firstLineHookRan() else {
            throw HTTPServerError.streamingUnavailable(
                "libevent parsed a request line without Ferry's hook, so --header-timeout cannot hold")
        }
        guard CFerryHook_largeReadHookRan() else {
            throw HTTPServerError.streamingUnavailable(
                "libevent read a socket without Ferry's read hook, so bodies would be read 4 KiB at a time")
        }
        guard connectionsCounted else {
            throw HTTPServerError.streamingUnavailable(
                "libevent created a connection without Ferry's counting hook, so --max-connections cannot hold"
            )
        }
        _ = loop.run(forAtMost: 1) { client.answered() }
    }
}

private final class ProbeHandler: HTTPHandler {
    var headSeen = false

    func admit(_ head: HTTPRequestHead) -> HTTPAdmission {
        headSeen = true
        return .reject(HTTPResponse(status: 204))
    }
}

/// A blocking loopback client for the probe.
private struct ProbeClient {
    let descriptor: Int32

    init(address: String) throws {
        guard let colon = address.lastIndex(of: ":"),
            let port = UInt16(address[address.index(after: colon)...])
        else { throw HTTPServerError.invalidAddress(address) }
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        target.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let status = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else {
            Glibc.close(descriptor)
            throw HTTPServerError.streamingUnavailable("probe could not connect to \(address)")
        }
    }

    func send(_ text: String) {
        var bytes = Array(text.utf8)
        _ = Glibc.send(descriptor, &bytes, bytes.count, Int32(MSG_NOSIGNAL))
    }

    /// Whether the server's answer has arrived (non-blocking).
    func answered() -> Bool {
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT) | Int32(MSG_PEEK)) >= 0
    }

    func close() {
        Glibc.close(descriptor)
    }
}
