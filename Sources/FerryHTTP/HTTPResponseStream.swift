/// The body of an answer that is written over time (server-sent events, say): the head goes
/// out at once, chunked, and the source writes through an ``HTTPStreamWriter`` until it
/// ends the body or the client leaves.
public protocol HTTPResponseStream: AnyObject, Sendable {
    /// The head was written; write the body with `writer`. Called on the loop's thread.
    func started(_ writer: HTTPStreamWriter)
    /// The client went away, or was too slow to read: the writer writes no more. Called on
    /// the loop's thread, once, and never after the source ended the body itself.
    func stopped()
}

/// Writes a streamed answer's body. Safe to use from any thread: each call is carried to
/// the loop's thread.
public final class HTTPStreamWriter: @unchecked Sendable {
    // `@unchecked`: the server and the exchange are touched only on the loop's thread, in
    // the closures below.
    private let server: HTTPServer
    private let exchange: Exchange

    init(server: HTTPServer, exchange: Exchange) {
        self.server = server
        self.exchange = exchange
    }

    /// Sends `bytes` as one chunk of the body.
    public func write(_ bytes: [UInt8]) {
        server.loop.execute { [server, exchange] in server.writeChunk(bytes, to: exchange) }
    }

    /// Ends the body; the connection may carry another request.
    public func end() {
        server.loop.execute { [server, exchange] in server.endStream(exchange) }
    }
}
