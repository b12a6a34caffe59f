import Dispatch
import FerryCore
import FerryHTTP
import Foundation
import Synchronization

/// `GET /events`: server-sent events of task changes (`event: task`) and of pauses
/// (`event: pause`), as they happen. A token sees its own tasks' events only. Nothing is
/// replayed: a client that reconnects reads the state it missed from `/tasks`.
///
/// One subscription to the hub serves every stream: each message is encoded once and
/// handed to the streams allowed to see it. Each stream holds its connection and a
/// heartbeat timer; a client that reads slower than its events come is dropped by the
/// HTTP layer (a bounded backlog), so memory stays flat however many listen and however
/// slow they are.
final class EventRoutes: Sendable {
    static let path = "/events"
    /// A comment line this often: proxies and browsers keep an idle stream open, and a
    /// client that left is noticed when a write fails.
    static let heartbeat = 15.0

    private let streams = Mutex<[ObjectIdentifier: TaskEventStream]>([:])

    init(hub: TaskEventHub) {
        _ = hub.subscribe { [weak self] message in self?.tell(message) }
    }

    func route(_ head: HTTPRequestHead, rule: TokenRule?) -> Result<@Sendable () -> HTTPResponse, APIError> {
        if let refusal = ReadOnlyRoute.refusal(head) { return .failure(refusal) }
        let viewer = rule?.name
        return .success({ [self] in
            HTTPResponse(
                status: 200,
                headers: [
                    ("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-store"),
                    // nginx passes each event on at once instead of buffering the stream.
                    ("X-Accel-Buffering", "no"),
                ],
                stream: TaskEventStream(viewer: viewer, routes: self))
        })
    }

    /// Clients reading `/events` now.
    var listenerCount: Int { streams.withLock { $0.count } }

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

    /// Encodes `message` once, if anyone listens, for every stream that may see it: a
    /// task's events go to its owner's streams (and to every stream without `--tokens`),
    /// pauses to every stream.
    private func tell(_ message: TaskEventHub.Message) {
        let listening = streams.withLock { Array($0.values) }
        guard !listening.isEmpty else { return }
        let bytes = Self.encode(message)
        for stream in listening {
            if case .task(let event) = message, stream.viewer != nil, stream.viewer != event.owner {
                continue
            }
            stream.write(bytes)
        }
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

/// One client's `/events` stream.
final class TaskEventStream: HTTPResponseStream {
    private struct State {
        var writer: HTTPStreamWriter?
        var ended = false
    }

    /// The token whose tasks it tells (nil: every task, without `--tokens`).
    let viewer: String?
    private unowned let routes: EventRoutes
    private let state = Mutex(State())
    /// The heartbeat; it runs from the stream's creation to its end. A dispatch source is
    /// safe to cancel from any thread.
    nonisolated(unsafe) private let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global())

    fileprivate init(viewer: String?, routes: EventRoutes) {
        self.viewer = viewer
        self.routes = routes
        timer.schedule(deadline: .now() + EventRoutes.heartbeat, repeating: EventRoutes.heartbeat)
        timer.setEventHandler { [weak self] in self?.write(Array(": keep-alive\n\n".utf8)) }
        timer.resume()
    }

    deinit {
        timer.cancel()
    }

    func started(_ writer: HTTPStreamWriter) {
        // How long a browser's EventSource waits before reconnecting; then a first line so
        // the client knows the stream is open.
        writer.write(Array("retry: 3000\n: connected\n\n".utf8))
        let ended = state.withLock { state in
            state.writer = writer
            return state.ended
        }
        routes.started(self)
        if ended { end() }
    }

    func stopped() {
        release()
    }

    /// Sends `bytes` (events, or a comment) unless the stream ended.
    fileprivate func write(_ bytes: [UInt8]) {
        state.withLock { $0.writer }?.write(bytes)
    }

    /// Ends the stream from the server's side.
    func end() {
        let writer = state.withLock { $0.writer }
        release()
        writer?.end()
    }

    private func release() {
        state.withLock { state in
            state.ended = true
            state.writer = nil
        }
        timer.cancel()
        routes.ended(self)
    }
}

/// A task event as `/events` tells it.
struct EventView: Encodable {
    var id: String
    var state: String
    var container: String
    var path: String
    var attempts: Int
    /// Null when there is none.
    @NullWhenNil var error: String?
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
}
