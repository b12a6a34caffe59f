import Foundation

/// One file of the web console, as served.
public struct ConsoleAsset: Sendable {
    /// The file's name under `/ui/` (`index.html` for `/ui/` itself).
    public var name: String
    public var contentType: String
    public var bytes: [UInt8]
}

/// The web console's files, built into the binary (see `Plugins/EmbedConsoleAssets`).
/// Decoded once, at first use.
public enum ConsoleAssets {
    /// Every file, by name.
    public static let all: [String: ConsoleAsset] = Dictionary(
        uniqueKeysWithValues: EmbeddedAssets.files.map { name, base64 in
            // The plugin wrote this base64 itself: it always decodes.
            let bytes = [UInt8](Data(base64Encoded: base64)!)
            return (name, ConsoleAsset(name: name, contentType: contentType(of: name), bytes: bytes))
        })

    /// The file named `name`, if the console has it.
    public static func asset(named name: String) -> ConsoleAsset? {
        all[name]
    }

    private static func contentType(of name: String) -> String {
        switch name.split(separator: ".").last {
        case "html": "text/html; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }
}
