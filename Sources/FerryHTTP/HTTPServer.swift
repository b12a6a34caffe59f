import CFerryHook
import CLibEvent
import Glibc
import Synchronization

/// An HTTP/1.1 server on one ``EventLoop`` that streams request bodies to consumers.
///
/// All callbacks run on the loop's thread. The per-request state lives in `exchanges`,
/// keyed by the `evhttp_request` pointer, and is removed exactly when libevent is done with
/// the request (its on-complete callback), or when we answer a request whose client left.
public final class HTTPServer: @unchecked Sendable {
    /// The loop this server runs on.
    public let loop: EventLoop
    private let http: OpaquePointer
    private let handler: HTTPHandler
    private let connectionLimit: ConnectionLimit?
    private let bodyRate: BodyRateLimit?
    private let maxChunkSize: Int
    private let headerTimeout: Double?
    private var watchdog: OpaquePointer?
    private var boundSocket: OpaquePointer?
    private var listener: OpaquePointer?
    private var exchanges: [OpaquePointer: Exchange] = [:]
    private var requestsByConnection: [OpaquePointer: OpaquePointer] = [:]
    /// Connections whose request head has begun and is not complete, with that request and
    /// the monotonic time of its first byte.
    private var arrivingHeads: [OpaquePointer: (request: OpaquePointer, since: Double)] = [:]
    /// Requests whose head held a NUL byte; refused when the head is complete.
    private var headsWithNUL: Set<OpaquePointer> = []
    /// Set by ``stopAccepting()``: every answer closes its connection.
    private var closingConnections = false
    /// The most one read from a socket brings. libevent's own reads stop at 4 KiB; one loop
    /// trip per 4 KiB made a 1 GiB body cost 262,144 polls, ioctls and reads. Each
    /// connection's input holds at most this much more (see the README's memory figures).
    /// 256 KiB measured best of 64 KiB and 256 KiB (1 GiB `curl -T`: 505–920 MiB/s against
    /// 510–630 MiB/s).
    static let largestRead = 256 * 1024

    /// How long the listener rests after a failed accept.
    static let acceptPause = 0.1

    /// Creates a server that asks `handler` about every request.
    ///
    /// - Parameters:
    ///   - maxBodySize: libevent's own body limit, a backstop behind the handler's checks.
    ///   - idleTimeout: seconds a connection may stay silent before it is closed.
    ///   - maxHeaderSize: the request line and header fields together, in bytes; longer
    ///     heads are answered 400 by libevent and the connection closed.
    ///   - connectionLimit: open connections past which requests get its answer (and the
    ///     connection is closed), and the cap past which sockets are closed unread;
    ///     libevent 2.1 has no such limit of its own.
    ///   - headerTimeout: seconds from the first byte of a request head to its end; a head
    ///     still incomplete then has its connection closed (the idle timeout alone is reset
    ///     by every byte, so a byte now and then would hold the connection forever).
    public init(
        loop: EventLoop, handler: HTTPHandler, maxBodySize: UInt64, maxHeaderSize: Int = 32 * 1024,
        idleTimeout: Int32, headerTimeout: Double? = nil, connectionLimit: ConnectionLimit? = nil,
        bodyRate: BodyRateLimit? = nil, maxChunkSize: Int = 2 << 20
    ) throws {
        self.maxChunkSize = maxChunkSize
        self.headerTimeout = headerTimeout
        if let connectionLimit {
            CFerryHook_setConnectionLimits(connectionLimit.maximum, connectionLimit.cap)
            LingeringClose.setCap(connectionLimit.lingeringCap)
        }
        CFerryHook_quietLibeventLogs()
        CFerryHook_setLargestRead(Self.largestRead)
        self.connectionLimit = connectionLimit
        self.bodyRate = bodyRate
        guard let http = evhttp_new(loop.base) else {
            throw HTTPServerError.eventLoop("evhttp_new failed")
        }
        self.loop = loop
        self.http = http
        self.handler = handler
        evhttp_set_max_body_size(http, Int(clamping: maxBodySize))
        evhttp_set_max_headers_size(http, Int(clamping: maxHeaderSize))
        evhttp_set_timeout(http, idleTimeout)
        // Methods are judged by the handler in the header callback; evhttp's own check runs
        // only after the body and would answer a second time.
        evhttp_set_allowed_methods(http, UInt16.max)
        evhttp_set_gencb(
            http,
            { request, argument in
                guard let request, let argument else { return }
                ServerRegistry.server(for: argument)?.bodyComplete(request)
            }, UnsafeMutableRawPointer(http))
        ServerRegistry.register(self, for: http)
        MemoryReturn.start()
        // One tick a second: heads past their deadline, bodies that cannot go on.
        do {
            let me = Unmanaged.passUnretained(self).toOpaque()
            watchdog = event_new(
                loop.base, -1, Int16(EV_PERSIST),
                { _, _, argument in
                    let server = Unmanaged<HTTPServer>.fromOpaque(argument!).takeUnretainedValue()
                    server.closeSlowHeads()
                    server.closeSlowBodies()
                }, me)
            var second = timeval(tv_sec: 1, tv_usec: 0)
            event_add(watchdog, &second)
        }
    }

    deinit {
        if let watchdog { event_free(watchdog) }
        ServerRegistry.unregister(http)
        evhttp_free(http)
    }

    /// Listens on `address` (`HOST:PORT`, `[V6]:PORT`; port 0 picks a free port).
    ///
    /// - Parameter sharedPort: sets `SO_REUSEPORT`, so that servers on several loops can
    ///   listen on the same address and the kernel spreads new connections among them.
    /// - Returns: the address actually bound, as `HOST:PORT`.
    @discardableResult
    public func listen(on address: String, backlog: Int32 = 1024, sharedPort: Bool = false) throws -> String {
        guard case (var storage, let length)? = SocketAddress.parse(address) else {
            throw HTTPServerError.invalidAddress(address)
        }
        let flags =
            LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE
            | (sharedPort ? LEV_OPT_REUSEABLE_PORT : 0)
        let made = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                evconnlistener_new_bind(loop.base, nil, nil, UInt32(flags), backlog, $0, length)
            }
        }
        guard let made else {
            throw HTTPServerError.bind(address: address, reason: String(cString: strerror(errno)))
        }
        guard let bound = evhttp_bind_listener(http, made) else {
            evconnlistener_free(made)
            throw HTTPServerError.bind(address: address, reason: "evhttp_bind_listener failed")
        }
        boundSocket = bound
        listener = made
        // Without an error callback libevent logs the failure and tries again at once: out
        // of descriptors, that is a busy loop writing a log line per try.
        evconnlistener_set_error_cb(made) { listener, argument in
            guard let listener, let argument else { return }
            ServerRegistry.server(for: argument)?.acceptFailed(listener)
        }
        return SocketAddress.local(of: evconnlistener_get_fd(made)) ?? address
    }

    /// Rests the listener after a failed accept, then listens again (unless it was closed).
    private func acceptFailed(_ failed: OpaquePointer) {
        let error = errno
        evconnlistener_disable(failed)
        handler.acceptFailed(errno: error, pause: Self.acceptPause)
        var pause = timeval(tv_sec: 0, tv_usec: Int(Self.acceptPause * 1_000_000))
        let me = Unmanaged.passUnretained(self).toOpaque()
        event_base_once(
            loop.base, -1, Int16(EV_TIMEOUT),
            { _, _, argument in
                let server = Unmanaged<HTTPServer>.fromOpaque(argument!).takeUnretainedValue()
                if let listener = server.listener { evconnlistener_enable(listener) }
            }, me, &pause)
    }

    /// Closes the listening socket: new connections are refused. Connections idle between
    /// requests are closed too, and those with a request in progress are closed after its
    /// answer: a proxy in front (nginx) notices its kept-alive connections go and sends new
    /// requests to another server instead of this one. Call on the loop's thread.
    public func stopAccepting() {
        if let boundSocket { evhttp_del_accept_socket(http, boundSocket) }
        boundSocket = nil
        listener = nil
        closingConnections = true
        var open = [OpaquePointer?](repeating: nil, count: Int(max(HTTPServer.connectionsOpen, 0)) + 16)
        let count = open.withUnsafeMutableBufferPointer { buffer in
            CFerryHook_openConnections(loop.base, buffer.baseAddress, buffer.count)
        }
        for case let connection? in open.prefix(count)
        where requestsByConnection[connection] == nil && arrivingHeads[connection] == nil {
            evhttp_connection_free(connection)
        }
    }

    /// Listens on `address` again after ``stopAccepting()`` (a node that is ready again),
    /// and lets answers keep their connections open again. Call on the loop's thread.
    public func resumeAccepting(on address: String, sharedPort: Bool) throws {
        guard listener == nil else { return }
        try listen(on: address, sharedPort: sharedPort)
        closingConnections = false
    }

    /// Whether the server listens (it does from ``listen(on:backlog:sharedPort:)`` until
    /// ``stopAccepting()``).
    public var isAccepting: Bool { listener != nil }

    /// Connections open right now, on every server in the process.
    public static var connectionsOpen: Int { Int(CFerryHook_connectionsOpen()) }

    /// Sockets closed unread because the connection cap was reached, since start.
    public static var connectionsRefused: Int { Int(CFerryHook_connectionsRefused()) }

    /// Socket reads that brought bytes, and those bytes, since start (their ratio is the
    /// size of a read: at most 4 KiB without Ferry's read hook).
    public static var socketReads: Int { Int(CFerryHook_socketReads()) }
    public static var socketBytes: Int { Int(CFerryHook_socketBytes()) }

    /// Connections closed because their head missed the header deadline, since start.
    public static var headsTimedOut: Int { headTimeouts.load(ordering: .relaxed) }
    private static let headTimeouts = Atomic(0)

    /// Requests whose body is being read, whose answer is being prepared, or whose answer
    /// libevent has not finished writing (its on-complete callback forgets the exchange):
    /// a loop stopped at shutdown before then would drop a 202 already decided.
    public var requestsInProgress: Int {
        exchanges.values.filter { $0.state != .released }.count
    }

    // MARK: - libevent callbacks

    /// Gives a new request object the callbacks that make its body stream.
    func decorate(_ request: OpaquePointer) {
        evhttp_request_set_header_cb(request) { request, argument in
            guard let request, let argument, let server = ServerRegistry.server(for: argument)
            else { return -1 }
            return server.headersComplete(request)
        }
        evhttp_request_set_chunked_cb(request) { request, argument in
            guard let request, let argument else { return }
            ServerRegistry.server(for: argument)?.bodyArrived(request)
        }
    }

    /// Bytes of a request line arrived: the first time for `request` starts its deadline.
    /// The connection's close callback forgets it if the client leaves first.
    func headArriving(_ request: OpaquePointer, on connection: OpaquePointer) {
        guard arrivingHeads[connection]?.request != request else { return }
        arrivingHeads[connection] = (request, Exchange.now())
        evhttp_connection_set_closecb(
            connection,
            { connection, argument in
                guard let connection, let argument else { return }
                Unmanaged<HTTPServer>.fromOpaque(argument).takeUnretainedValue().connectionClosed(connection)
            }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// A line of `request`'s head holds a NUL byte.
    func headHoldsNUL(_ request: OpaquePointer) {
        headsWithNUL.insert(request)
    }

    /// Closes connections whose request head began more than the header timeout ago.
    private func closeSlowHeads() {
        guard let headerTimeout else { return }
        let now = Exchange.now()
        let late = arrivingHeads.filter { now - $0.value.since > headerTimeout }.keys
        for connection in late where arrivingHeads.removeValue(forKey: connection) != nil {
            Self.headTimeouts.add(1, ordering: .relaxed)
            evhttp_connection_set_closecb(connection, nil, nil)
            evhttp_connection_free(connection)
        }
    }

    private func headersComplete(_ request: OpaquePointer) -> Int32 {
        if let connection = evhttp_request_get_connection(request) {
            arrivingHeads[connection] = nil
        }
        let holdsNUL = headsWithNUL.remove(request) != nil
        var head = HTTPRequestHead(request: request)
        let framing = BodyFraming.of(head)
        if case .success(let judged) = framing { head.framing = judged }
        let exchange = Exchange(request: request, head: head)
        exchanges[request] = exchange
        let me = Unmanaged.passUnretained(self).toOpaque()
        evhttp_request_set_on_complete_cb(
            request,
            { request, argument in
                guard let request, let argument else { return }
                Unmanaged<HTTPServer>.fromOpaque(argument).takeUnretainedValue().finished(request)
            }, me)
        if let connection = evhttp_request_get_connection(request) {
            requestsByConnection[connection] = request
            evhttp_connection_set_closecb(
                connection,
                { connection, argument in
                    guard let connection, let argument else { return }
                    Unmanaged<HTTPServer>.fromOpaque(argument).takeUnretainedValue()
                        .connectionClosed(connection)
                }, me)
        }
        let admission: HTTPAdmission
        // A connection made past the maximum is refused, not the oldest ones: a flood of
        // new connections cannot take service away from those already being served.
        if let connectionLimit, let connection = evhttp_request_get_connection(request),
            CFerryHook_isOverflowConnection(connection)
        {
            admission = .reject(connectionLimit.answer)
        } else if holdsNUL {
            admission = .reject(handler.malformed(head, .nulByte))
        } else if case .failure(let violation) = framing {
            admission = .reject(handler.malformed(head, .framing(violation)))
        } else {
            admission = handler.admit(head)
        }
        switch admission {
        case .reject(let response):
            // The body is never read: without its framing headers libevent takes the
            // request as bodiless, so it neither sends 100 Continue, nor parses the body as
            // a next request (smuggling), nor answers a second time (its own 413 or 400).
            let input = evhttp_request_get_input_headers(request)
            for name in ["Expect", "Content-Length", "Transfer-Encoding", "Connection"] {
                while evhttp_remove_header(input, name) == 0 {}
            }
            send(response, to: exchange, closing: true)
        case .accept(let consumer):
            exchange.consumer = consumer
            // libevent hands over a chunk of a chunked body only once it is complete, holding
            // it in memory until then. Reading stops at this mark; a chunk that does not fit
            // stalls, and the body-rate watchdog closes the connection.
            if let connection = evhttp_request_get_connection(request),
                let events = evhttp_connection_get_bufferevent(connection)
            {
                bufferevent_setwatermark(events, Int16(EV_READ), 0, maxChunkSize)
            }
        }
        return 0
    }

    private func bodyArrived(_ request: OpaquePointer) {
        guard let exchange = exchanges[request], exchange.state == .streaming,
            let consumer = exchange.consumer
        else { return }
        let chunk = BodyChunk(buffer: evhttp_request_get_input_buffer(request))
        exchange.bytesReceived += chunk.count
        if case .stop(let response) = consumer.consume(chunk) {
            exchange.consumer = nil
            send(response, to: exchange, closing: true)
        }
    }

    private func bodyComplete(_ request: OpaquePointer) {
        guard let exchange = exchanges[request] else {
            // Every request passes the header callback first; reaching here means libevent
            // built a request without our hook. Answer rather than leak the request.
            evhttp_send_reply(request, 500, nil, nil)
            return
        }
        guard exchange.state == .streaming, let consumer = exchange.consumer else { return }
        exchange.state = .finishing
        consumer.finish { [loop] response in
            loop.execute { self.send(response, to: exchange, closing: false) }
        }
    }

    /// Closes connections whose body cannot go on: a chunk of a chunked body that does not
    /// fit under `--max-chunk-size` (reading stopped at the mark, so the chunk can never
    /// complete, and its bytes sit in memory; libevent would not even notice the client
    /// leave), or a body that arrives slower than the minimum rate once the grace period is
    /// over (the idle timeout alone lets a client trickle a byte now and then).
    private func closeSlowBodies() {
        let now = Exchange.now()
        let stuck = exchanges.values.filter { exchange in
            guard exchange.state == .streaming, exchange.consumer != nil,
                let connection = evhttp_request_get_connection(exchange.request)
            else { return false }
            if let events = evhttp_connection_get_bufferevent(connection),
                evbuffer_get_length(bufferevent_get_input(events)) >= maxChunkSize
            {
                return true
            }
            guard let bodyRate else { return false }
            let elapsed = now - exchange.startedAt
            return elapsed > bodyRate.grace
                && Double(exchange.bytesReceived) / elapsed < bodyRate.minimumBytesPerSecond
        }
        for exchange in stuck {
            guard exchange.state == .streaming,
                let connection = evhttp_request_get_connection(exchange.request)
            else { continue }
            // The close callback aborts the upload (its partial file goes) and forgets it.
            evhttp_connection_free(connection)
        }
    }

    /// libevent is done with `request` (the answer was written, or libevent answered on its
    /// own, e.g. 413 from its size limit or 400 for broken chunk framing).
    private func finished(_ request: OpaquePointer) {
        guard let exchange = exchanges.removeValue(forKey: request) else { return }
        if let kept = exchange.lingering {
            // The answer is written; libevent closes its descriptor right after this.
            exchange.lingering = nil
            loop.execute { [loop] in LingeringClose.start(kept, on: loop) }
        }
        if let connection = evhttp_request_get_connection(request) {
            requestsByConnection[connection] = nil
            evhttp_connection_set_closecb(connection, nil, nil)
        }
        if exchange.state == .streaming, let consumer = exchange.consumer {
            consumer.abort(reason: "the request ended before its body was complete")
        }
    }

    /// The client went away (or the idle timeout struck) before we answered.
    ///
    /// Who frees the request depends on whether libevent ever presented it to "the user":
    /// mid-body it has not (its `userdone` is still set), so libevent frees it right after
    /// this callback; once the body is complete it detaches the request from the dying
    /// connection, and the request is freed by our one `evhttp_send_reply`.
    private func connectionClosed(_ connection: OpaquePointer) {
        if let arriving = arrivingHeads.removeValue(forKey: connection) {
            // The client left (or the idle timeout struck) mid-head: libevent frees the request.
            headsWithNUL.remove(arriving.request)
            return
        }
        guard let request = requestsByConnection.removeValue(forKey: connection),
            let exchange = exchanges[request]
        else { return }
        let detached = evhttp_request_get_connection(request) == nil
        if exchange.state == .streaming {
            exchange.consumer?.abort(reason: "the client closed the connection mid-body")
            exchange.consumer = nil
        }
        if let stream = exchange.stream {
            // A streamed answer's client left (or was dropped as too slow).
            exchange.stream = nil
            exchanges[request] = nil
            exchange.state = .released
            // Detached, the request is ours to free: "ending" a request without a
            // connection frees it.
            if detached { evhttp_send_reply_end(request) }
            stream.stopped()
            return
        }
        if detached {
            exchange.connectionLost = true
            switch exchange.state {
            case .streaming:
                send(HTTPResponse(status: 400), to: exchange, closing: true)
            case .answered:
                // An early answer whose write failed: libevent presented the request to
                // "the user" after our answer (resetting userdone) and so left it to us.
                exchanges[request] = nil
                evhttp_request_free(request)
            case .finishing, .released, .sendingStream, .endingStream:
                break
            }
        } else {
            exchanges[request] = nil
            exchange.state = .released
        }
    }

    private func send(_ response: HTTPResponse, to exchange: Exchange, closing: Bool) {
        guard exchange.state != .answered, exchange.state != .released else { return }
        if closing && exchange.state == .streaming && !exchange.connectionLost,
            let connection = evhttp_request_get_connection(exchange.request),
            let events = evhttp_connection_get_bufferevent(connection)
        {
            // Body bytes are still coming: linger, or a reset may destroy this answer.
            exchange.lingering = LingeringClose.keep(bufferevent_getfd(events))
        }
        exchange.state = .answered
        handler.answered(exchange.head, status: response.status)
        let request = exchange.request
        if exchange.connectionLost {
            exchanges[request] = nil
            evhttp_send_reply(request, Int32(response.status), nil, nil)
            return
        }
        let output = evhttp_request_get_output_headers(request)
        for (name, value) in response.headers + handler.extraHeaders(for: exchange.head) {
            evhttp_add_header(output, name, value)
        }
        evhttp_add_header(output, RequestID.header, exchange.head.requestID)
        if closing || closingConnections {
            evhttp_add_header(output, "Connection", "close")
        }
        if let stream = response.stream, exchange.head.method != "HEAD", !closing {
            exchange.state = .sendingStream
            exchange.stream = stream
            evhttp_send_reply_start(request, Int32(response.status), nil)
            stream.started(HTTPStreamWriter(server: self, exchange: exchange))
            return
        }
        let body = evbuffer_new()
        defer { evbuffer_free(body) }
        if exchange.head.method == "HEAD" {
            // libevent 2.1 would send a HEAD answer's body, and without its length.
            evhttp_add_header(output, "Content-Length", String(response.body.count))
        } else {
            response.body.withUnsafeBytes { _ = evbuffer_add(body, $0.baseAddress, $0.count) }
        }
        evhttp_send_reply(request, Int32(response.status), nil, body)
    }
}

extension HTTPServer {
    /// The most a streamed answer may have waiting to be written: a client that reads
    /// slower than its events come is let go, not buffered for.
    static let streamBacklog = 1 << 20

    /// Writes `bytes` as a chunk of the streamed answer of `exchange`, if it still goes on.
    func writeChunk(_ bytes: [UInt8], to exchange: Exchange) {
        guard exchange.state == .sendingStream, !bytes.isEmpty,
            let connection = evhttp_request_get_connection(exchange.request),
            let events = evhttp_connection_get_bufferevent(connection)
        else { return }
        if evbuffer_get_length(bufferevent_get_output(events)) > Self.streamBacklog {
            // The close callback stops the stream and forgets the request.
            evhttp_connection_free(connection)
            return
        }
        let chunk = evbuffer_new()
        defer { evbuffer_free(chunk) }
        bytes.withUnsafeBytes { _ = evbuffer_add(chunk, $0.baseAddress, $0.count) }
        evhttp_send_reply_chunk(exchange.request, chunk)
    }

    /// Ends the streamed answer of `exchange`, if it still goes on.
    func endStream(_ exchange: Exchange) {
        guard exchange.state == .sendingStream else { return }
        // In progress until libevent has written the end (its on-complete callback): a
        // loop stopped at shutdown before then would cut the stream short.
        exchange.state = .endingStream
        exchange.stream = nil
        // libevent's on-complete callback forgets the exchange once the end is written.
        evhttp_send_reply_end(exchange.request)
    }
}

/// One request's state on the server side. Touched only on the loop's thread; it crosses
/// threads only inside closures that ``EventLoop/execute(_:)`` runs back on that thread.
final class Exchange: @unchecked Sendable {
    enum State {
        /// Body bytes are being read (or will be).
        case streaming
        /// The body is complete; the consumer is preparing the answer.
        case finishing
        /// The head of a streamed answer was written; its body is being written.
        case sendingStream
        /// A streamed answer's end was handed to libevent, and is not written yet.
        case endingStream
        /// The answer was handed to libevent.
        case answered
        /// libevent freed the request (its connection died); it must not be touched.
        case released
    }

    let request: OpaquePointer
    let head: HTTPRequestHead
    let startedAt = Exchange.now()
    var bytesReceived = 0
    var state = State.streaming
    var consumer: HTTPBodyConsumer?
    /// The source of a streamed answer's body, while it is written.
    var stream: (any HTTPResponseStream)?
    var connectionLost = false
    /// A duplicate of the socket, kept for a lingering close after an early answer.
    var lingering: Int32?

    init(request: OpaquePointer, head: HTTPRequestHead) {
        self.request = request
        self.head = head
    }

    deinit {
        // The answer was never written (the client went away): nothing to linger for.
        if let lingering { LingeringClose.drop(lingering) }
    }

    /// Seconds on the monotonic clock.
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1_000_000_000
    }
}

/// At most `maximum` open connections; requests on connections made past it get `answer`,
/// and sockets accepted past `cap` are closed before anything is read. The cap bounds the
/// descriptors connections can take whatever clients do.
public struct ConnectionLimit: Sendable {
    public var maximum: Int64
    public var answer: HTTPResponse
    /// Connections past which an accepted socket is closed at once.
    public var cap: Int64
    /// Sockets that may linger after an early answer (each holds a descriptor).
    public var lingeringCap: Int

    public init(maximum: Int64, answer: HTTPResponse, cap: Int64, lingeringCap: Int) {
        self.maximum = maximum
        self.answer = answer
        self.cap = cap
        self.lingeringCap = lingeringCap
    }
}

/// A body must arrive at `minimumBytesPerSecond` on average once `grace` seconds have passed,
/// or its connection is closed.
public struct BodyRateLimit: Sendable {
    public var minimumBytesPerSecond: Double
    public var grace: Double

    public init(minimumBytesPerSecond: Double, grace: Double) {
        self.minimumBytesPerSecond = minimumBytesPerSecond
        self.grace = grace
    }
}
