import Dispatch
import FerryCore
import FerryHTTP
import Foundation
import Synchronization

/// `GET /events`: server-sent events of task changes (`event: task`) and of pauses
/// (`event: pause`), as they happen. A token sees its own tasks' events only. Nothing is
/// replayed: a client that reconnects reads the state it missed from `/tasks`.
///
/// Each stream holds its connection, one subscription and a heartbeat timer; a client that
/// reads slower than its events come is dropped by the HTTP layer (a bounded backlog), so
/// memory stays flat however many listen and however slow they are.
final class EventRoutes: Sendable {
    static let path = "/events"
    /// A comment line this often: proxies and browsers keep an idle stream open, and a
    /// client that left is noticed when a write fails.
    static let heartbeat = 15.0

    private let hub: TaskEventHub
    private let streams = Mutex<[ObjectIdentifier: TaskEventStream]>([:])

    init(hub: TaskEventHub) {
        self.hub = hub
    }

    func route(_ head: HTTPRequestHead, rule: TokenRule?) -> Result<@Sendable () -> HTTPResponse, APIError> {
        guard head.method == "GET" || head.method == "HEAD" else {
            return .failure(.methodNotAllowed(allowed: "GET, HEAD"))
        }
        if head.query.map({ !$0.isEmpty }) ?? false { return .failure(.badQuery("/events takes no query")) }
        let viewer = rule?.name
        return .success({ [self] in
            HTTPResponse(
                status: 200,
                headers: [
                    ("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-store"),
                    // nginx passes each event on at once instead of buffering the stream.
                    ("X-Accel-Buffering", "no"),
                ],
                stream: TaskEventStream(hub: hub, viewer: viewer, routes: self))
        })
    }

    /// Ends every stream (shutdown): clients reconnect to whoever serves next.
    func endAll() {
        for stream in streams.withLock({ Array($0.values) }) { stream.end() }
    }

    fileprivate func started(_ stream: TaskEventStream) {
        streams.withLock { $0[ObjectIdentifier(stream)] = stream }
    }

    fileprivate func ended(_ stream: TaskEventStream) {
        _ = streams.withLock { $0.removeValue(forKey: ObjectIdentifier(stream)) }
    }
}

/// One client's `/events` stream.
final class TaskEventStream: HTTPResponseStream {
    private struct State {
        var writer: HTTPStreamWriter?
        var subscription: TaskEventHub.Subscription?
        var ended = false
    }

    private let hub: TaskEventHub
    private let viewer: String?
    private unowned let routes: EventRoutes
    private let state = Mutex(State())
    /// The heartbeat; it runs from the stream's creation to its end. A dispatch source is
    /// safe to cancel from any thread.
    nonisolated(unsafe) private let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global())

    fileprivate init(hub: TaskEventHub, viewer: String?, routes: EventRoutes) {
        self.hub = hub
        self.viewer = viewer
        self.routes = routes
        timer.schedule(deadline: .now() + EventRoutes.heartbeat, repeating: EventRoutes.heartbeat)
        timer.setEventHandler { [weak self] in
            self?.state.withLock { $0.writer }?.write(Array(": keep-alive\n\n".utf8))
        }
        timer.resume()
    }

    deinit {
        timer.cancel()
    }

    func started(_ writer: HTTPStreamWriter) {
        // How long a browser's EventSource waits before reconnecting; then a first line so
        // the client knows the stream is open.
        writer.write(Array("retry: 3000\n: connected\n\n".utf8))
        let subscription = hub.subscribe(viewer: viewer) { message in
            writer.write(Self.encode(message))
        }
        let ended = state.withLock { state in
            state.writer = writer
            state.subscription = subscription
            return state.ended
        }
        routes.started(self)
        if ended { end() }
    }

    func stopped() {
        release()
    }

    /// Ends the stream from the server's side.
    func end() {
        let writer = state.withLock { $0.writer }
        release()
        writer?.end()
    }

    private func release() {
        let subscription = state.withLock { state in
            state.ended = true
            defer {
                state.subscription = nil
                state.writer = nil
            }
            return state.subscription
        }
        if let subscription { hub.cancel(subscription) }
        timer.cancel()
        routes.ended(self)
    }

    /// One message as an event: its type, then its JSON on one `data:` line (JSON has no
    /// raw newlines, so it needs no splitting).
    static func encode(_ message: TaskEventHub.Message) -> [UInt8] {
        let (type, json): (String, [UInt8]) =
            switch message {
            case .task(let event): ("task", JSON.encode(EventView(event)))
            case .pauses(let pauses): ("pause", JSON.encode(PausesView(pauses)))
            }
        // JSON.encode ends with a newline: the data line's end.
        return Array("event: \(type)\ndata: ".utf8) + json + [0x0a]
    }
}

/// A task event as `/events` tells it.
struct EventView: Encodable {
    var id: String
    var state: String
    var container: String
    var path: String
    var attempts: Int
    var error: String?
    var bytes: UInt64
    var at: String

    init(_ event: TaskEvent) {
        id = event.id
        state = event.change.name
        container = event.container
        path = event.path
        attempts = event.attempts
        error = event.error
        bytes = event.bytes
        at = TaskView.timestamp(event.at)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(state, forKey: .state)
        try container.encode(self.container, forKey: .container)
        try container.encode(path, forKey: .path)
        try container.encode(attempts, forKey: .attempts)
        // Always present: null when there is none.
        try container.encode(error, forKey: .error)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(at, forKey: .at)
    }

    enum CodingKeys: String, CodingKey { case id, state, container, path, attempts, error, bytes, at }
}
