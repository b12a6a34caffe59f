import CLibEvent

extension HTTPRequestHead {
    /// Reads method, target, header fields and peer of a libevent request.
    init(request: OpaquePointer) {
        let target = evhttp_request_get_uri(request).map { String(cString: $0) } ?? "/"
        let path: String
        let query: String?
        if let mark = target.firstIndex(of: "?") {
            path = String(target[..<mark])
            query = String(target[target.index(after: mark)...])
        } else {
            path = target
            query = nil
        }
        var headers: [(name: String, value: String)] = []
        var notUTF8: [String] = []
        var field = evhttp_request_get_input_headers(request)?.pointee.tqh_first
        while let current = field {
            let name = String(cString: current.pointee.key)
            let value = String(validatingCString: current.pointee.value)
            if value == nil { notUTF8.append(name) }
            headers.append((name, value ?? String(cString: current.pointee.value)))
            field = current.pointee.next.tqe_next
        }
        var peer = "unknown"
        if let connection = evhttp_request_get_connection(request) {
            var host: UnsafeMutablePointer<CChar>?
            var port: UInt16 = 0
            evhttp_connection_get_peer(connection, &host, &port)
            if let host { peer = "\(String(cString: host)):\(port)" }
        }
        self.init(
            method: Self.methodName(evhttp_request_get_command(request)), path: path,
            query: query, headers: headers, peer: peer)
        self.notUTF8 = notUTF8
        requestID = RequestID.adopt(value(of: RequestID.header)) ?? RequestID.make()
    }

    private static func methodName(_ command: evhttp_cmd_type) -> String {
        switch command {
        case EVHTTP_REQ_GET: "GET"
        case EVHTTP_REQ_POST: "POST"
        case EVHTTP_REQ_HEAD: "HEAD"
        case EVHTTP_REQ_PUT: "PUT"
        case EVHTTP_REQ_DELETE: "DELETE"
        case EVHTTP_REQ_OPTIONS: "OPTIONS"
        case EVHTTP_REQ_TRACE: "TRACE"
        case EVHTTP_REQ_CONNECT: "CONNECT"
        case EVHTTP_REQ_PATCH: "PATCH"
        default: "UNKNOWN"
        }
    }
}
