import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An HTTP/1.1 client on a plain socket: the test decides every byte sent and sees every
/// byte received, which curl would hide (100 Continue, Connection: close, early answers).
final class RawHTTPClient {
    private let descriptor: Int32
    private var received = [UInt8]()

    /// Connects to 127.0.0.1:`port`, from `source` if given (another loopback address such as
    /// 127.0.0.2, so the server sees a peer that is not 127.0.0.1).
    init(port: UInt16, timeout: Double = 30, from source: String? = nil) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            // A throw from here on runs deinit, which closes the socket.
            guard inet_pton(AF_INET, source, &local.sin_addr) == 1 else {
                throw TestSetupError("not an IPv4 address: \(source)")
            }
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else { throw TestSetupError("bind to \(source) failed: errno \(errno)") }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else { throw TestSetupError("connect to port \(port) failed: errno \(errno)") }
    }

    deinit {
        close(descriptor)
    }

    /// Sends a request line and header fields (and the blank line that ends them).
    func sendHead(_ method: String, _ target: String, _ headers: [(String, String)]) throws {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        try send(Array((text + "\r\n").utf8))
    }

    /// Sends a whole request and reads its answer.
    func exchange(_ method: String, _ target: String, _ headers: [(String, String)], body: [UInt8]) throws
        -> RawResponse
    {
        try sendHead(method, target, headers)
        try send(body)
        return try readResponse()
    }

    /// Sends raw bytes.
    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw TestSetupError("send failed: errno \(errno)") }
            offset += sent
        }
    }

    /// Sends `bytes` as one chunk of a chunked body.
    func sendChunk(_ bytes: [UInt8]) throws {
        try send(Array("\(String(bytes.count, radix: 16))\r\n".utf8) + bytes + Array("\r\n".utf8))
    }

    /// Ends a chunked body.
    func sendLastChunk() throws {
        try send(Array("0\r\n\r\n".utf8))
    }

    /// Half-closes and closes the connection abruptly (a client that goes away).
    func abort() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        shutdown(descriptor, Int32(SHUT_RDWR))
    }

    /// Reads one response (an interim 100 Continue counts as a response).
    ///
    /// - Parameter toHead: the request was HEAD, so the answer has no body whatever its
    ///   Content-Length says.
    func readResponse(toHead: Bool = false) throws -> RawResponse {
        while true {
            if let end = headEnd() {
                let headText = String(decoding: received[..<end], as: UTF8.self)
                var lines = headText.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst()
                let parts = statusLine.split(separator: " ", maxSplits: 2)
                guard parts.count >= 2, let status = Int(parts[1]) else {
                    throw TestSetupError("bad status line: \(statusLine)")
                }
                var headers: [(String, String)] = []
                for line in lines where !line.isEmpty {
                    let pieces = line.split(separator: ":", maxSplits: 1)
                    headers.append(
                        (
                            String(pieces[0]),
                            pieces.count > 1 ? pieces[1].trimmingCharacters(in: .whitespaces) : ""
                        ))
                }
                let announced = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) }
                let length = toHead ? 0 : announced ?? 0
                let bodyStart = end + 4
                while received.count < bodyStart + length {
                    guard try fill() else { throw TestSetupError("connection closed mid-body") }
                }
                let body = Array(received[bodyStart..<(bodyStart + length)])
                received.removeFirst(bodyStart + length)
                return RawResponse(status: status, headers: headers, body: body)
            }
            guard try fill() else { throw TestSetupError("connection closed before a response") }
        }
    }

    /// Whether the server closed the connection (reads EOF within the socket timeout).
    func serverClosed() -> Bool {
        var byte: UInt8 = 0
        return received.isEmpty && recv(descriptor, &byte, 1, 0) == 0
    }

    private func headEnd() -> Int? {
        guard received.count >= 4 else { return nil }
        for index in 0...(received.count - 4)
        where received[index] == 13 && received[index + 1] == 10 && received[index + 2] == 13
            && received[index + 3] == 10
        {
            return index
        }
        return nil
    }

    private func fill() throws -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count < 0 { throw TestSetupError("recv failed: errno \(errno)") }
        received += buffer[0..<count]
        return count > 0
    }
}

/// A parsed response.
struct RawResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The body as text (for messages).
    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object.
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }
}
