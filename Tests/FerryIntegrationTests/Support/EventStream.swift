import Foundation

/// A client of `GET /events`: `curl -N`, its events parsed as they arrive.
final class EventStream: @unchecked Sendable {
    // `@unchecked`: what the reader thread touches is behind `lock`.
    /// One server-sent event.
    struct Event {
        var type: String
        var data: [String: Any]
    }

    private let process = Process()
    private let lock = NSLock()
    private var buffer = Data()
    private var parsed: [Event] = []
    private var ended = false

    /// Connects (to `port` on loopback, or `url`) and waits until the stream is open.
    init(port: UInt16, token: String? = nil, url: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments =
            ["-sN", url ?? "http://127.0.0.1:\(port)/events"]
            + (token.map { ["-H", "Authorization: Bearer \($0)"] } ?? [])
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.received(data)
            if data.isEmpty { handle.readabilityHandler = nil }
        }
        try process.run()
        try waitUntil("the event stream is open") { self.withLock { self.opened } }
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    /// Whether the server ended the stream (curl exited).
    var hasEnded: Bool { withLock { ended } }

    /// The exit status of curl once it ended (0: the stream ended cleanly).
    var exitStatus: Int32? {
        process.isRunning ? nil : process.terminationStatus
    }

    /// The task events so far, in order.
    var taskEvents: [[String: Any]] {
        withLock { parsed.filter { $0.type == "task" }.map(\.data) }
    }

    /// The events of type `type` so far.
    func events(ofType type: String) -> [[String: Any]] {
        withLock { parsed.filter { $0.type == type }.map(\.data) }
    }

    /// The states task `id` went through, in the order told.
    func states(of id: String) -> [String] {
        taskEvents.filter { $0["id"] as? String == id }.compactMap { $0["state"] as? String }
    }

    func close() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    private var opened = false

    private func received(_ data: Data) {
        withLock {
            if data.isEmpty {
                ended = true
                return
            }
            buffer.append(data)
            // Events end with an empty line.
            while let end = buffer.range(of: Data("\n\n".utf8)) {
                let block = String(decoding: buffer[buffer.startIndex..<end.lowerBound], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex..<end.upperBound)
                var type = "message"
                var payload = ""
                for line in block.split(separator: "\n") {
                    if line.hasPrefix(": connected") { opened = true }
                    if line.hasPrefix("event: ") { type = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { payload += line.dropFirst(6) }
                }
                guard !payload.isEmpty,
                    let object = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any]
                else { continue }
                parsed.append(Event(type: type, data: object))
            }
        }
    }

    private func withLock<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}
