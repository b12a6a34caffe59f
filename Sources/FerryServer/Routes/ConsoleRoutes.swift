import FerryConsole
import FerryHTTP

/// `/ui/`: the web console's files, from the binary. They need no token (they hold no
/// data); the console asks for one and sends it with each API call. Every answer carries a
/// strict Content-Security-Policy: scripts and styles from Ferry only, no inline code, no
/// other origin, no framing, so a value that slipped past escaping still could not run.
enum ConsoleRoutes {
    static func matches(_ path: String) -> Bool {
        path == "/ui" || path.hasPrefix("/ui/")
    }

    static let securityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static func answer(_ head: HTTPRequestHead) -> HTTPResponse {
        if head.path == "/ui" {
            // A type of its own: evhttp would name ISO-8859-1 HTML for an answer without one.
            return HTTPResponse(
                status: 301,
                headers: [("Location", "/ui/"), ("Content-Type", "text/plain; charset=utf-8")]
                    + securityHeaders)
        }
        let name = head.path == "/ui/" ? "index.html" : String(head.path.dropFirst("/ui/".count))
        guard let asset = ConsoleAssets.asset(named: name) else {
            return APIError.notFound(path: head.path).response
        }
        return HTTPResponse(
            status: 200,
            headers: [("Content-Type", asset.contentType), ("Cache-Control", "no-cache")] + securityHeaders,
            body: asset.bytes)
    }

    private static let securityHeaders: [(name: String, value: String)] = [
        ("Content-Security-Policy", securityPolicy), ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
    ]
}
