import CLibEvent
import Glibc

/// Formats socket addresses for logs and for the "listening on" line.
enum SocketAddress {
    /// Parses `HOST:PORT` or `[V6]:PORT` (numeric hosts only; port 0 allowed).
    static func parse(_ address: String) -> (sockaddr_storage, Int32)? {
        // libevent's parser refuses port 0, which asks the kernel for a free port.
        let anyPort = address.hasSuffix(":0")
        let text = anyPort ? address.dropLast() + "1" : address
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let parsed = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                evutil_parse_sockaddr_port(String(text), $0, &length)
            }
        }
        guard parsed == 0 else { return nil }
        if anyPort {
            withUnsafeMutablePointer(to: &storage) {
                switch Int32($0.pointee.ss_family) {
                case AF_INET:
                    $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port = 0 }
                default: $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port = 0 }
                }
            }
        }
        return (storage, length)
    }

    /// The local address of `descriptor` as `HOST:PORT` (`[V6]:PORT` for IPv6).
    static func local(of descriptor: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getsockname(descriptor, $0, &length)
            }
        }
        guard status == 0 else { return nil }
        var host = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var ip = address.pointee.sin_addr
                    inet_ntop(AF_INET, &ip, &host, socklen_t(host.count))
                    return "\(String(cString: host)):\(UInt16(bigEndian: address.pointee.sin_port))"
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var ip = address.pointee.sin6_addr
                    inet_ntop(AF_INET6, &ip, &host, socklen_t(host.count))
                    return
                        "[\(String(cString: host))]:\(UInt16(bigEndian: address.pointee.sin6_port))"
                }
            }
        default:
            return nil
        }
    }
}
