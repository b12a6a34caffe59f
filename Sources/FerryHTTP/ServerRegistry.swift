import CFerryHook
import CLibEvent
import Synchronization

/// Maps each `struct evhttp *` to the ``HTTPServer`` that owns it.
///
/// libevent hands request callbacks the evhttp pointer (the request's `cb_arg`), not our
/// state, so the hook and the callbacks find their server here.
enum ServerRegistry {
    private struct Entry: Sendable {
        weak var server: HTTPServer?
    }

    private static let servers = Mutex<[UInt: Entry]>([:])

    static func register(_ server: HTTPServer, for http: OpaquePointer) {
        servers.withLock { $0[UInt(bitPattern: Int(bitPattern: http))] = Entry(server: server) }
        CFerryHook_setRequestObserver { request, argument in
            guard let request, let argument, let server = ServerRegistry.server(for: argument)
            else { return }
            server.decorate(request)
        }
        CFerryHook_setHeadObserver { request, connection, argument in
            guard let request, let connection, let argument, let server = ServerRegistry.server(for: argument)
            else { return }
            server.headArriving(request, on: connection)
        }
        CFerryHook_setNULObserver { request, _, argument in
            guard let request, let argument, let server = ServerRegistry.server(for: argument) else { return }
            server.headHoldsNUL(request)
        }
    }

    static func unregister(_ http: OpaquePointer) {
        _ = servers.withLock { $0.removeValue(forKey: UInt(bitPattern: Int(bitPattern: http))) }
    }

    static func server(for argument: UnsafeMutableRawPointer) -> HTTPServer? {
        servers.withLock { $0[UInt(bitPattern: argument)]?.server }
    }
}
