import Glibc
import Logging

/// Writes each log event to standard error as one JSON object per line
/// (`--log-format json`), for collectors that parse rather than grep.
///
/// Fields: `time` (RFC 3339, UTC, milliseconds), `level`, `message`, `label`, then the
/// metadata as strings (nested values are rendered as text).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        var line = "{\"time\":\"\(Self.timestamp())\",\"level\":\"\(event.level)\",\"message\":"
        Self.appendQuoted(event.message.description, to: &line)
        line += ",\"label\":"
        Self.appendQuoted(label, to: &line)
        for key in fields.keys.sorted() where !["time", "level", "message", "label"].contains(key) {
            line += ","
            Self.appendQuoted(key, to: &line)
            line += ":"
            Self.appendQuoted(fields[key]!.description, to: &line)
        }
        line += "}\n"
        // One write per line: lines from several threads never interleave.
        line.withCString { _ = write(2, $0, strlen($0)) }
    }

    /// Appends `text` as a JSON string literal.
    static func appendQuoted(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                let hex = String(scalar.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        var buffer = [UInt8](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let milliseconds = String(now.tv_nsec / 1_000_000)
        return String(decoding: buffer[..<length], as: UTF8.self) + "."
            + String(repeating: "0", count: 3 - milliseconds.count)
            + milliseconds + "Z"
    }
}
