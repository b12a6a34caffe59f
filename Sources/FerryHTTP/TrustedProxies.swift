import Glibc

/// The proxies whose `X-Forwarded-For` is believed (`--trusted-proxy CIDR`).
///
/// Anyone can send `X-Forwarded-For`; only a hop we trust can vouch for the address before
/// it. So the header is read from the right, skipping trusted hops, and only when the
/// connection itself comes from a trusted proxy.
public struct TrustedProxies: Sendable {
    /// One network, `ADDRESS/BITS` (IPv4 or IPv6; a bare address is a single host).
    public struct Network: Sendable, Equatable, CustomStringConvertible {
        let address: [UInt8]
        let prefixLength: Int
        public let description: String

        public init?(_ text: String) {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = Self.bytes(of: String(parts[0])) else { return nil }
            let bits = parts.count == 2 ? Int(parts[1]) : address.count * 8
            guard let bits, (0...address.count * 8).contains(bits) else { return nil }
            self.address = address
            self.prefixLength = bits
            self.description = text
        }

        /// Whether `candidate` (raw address bytes) lies in this network.
        func contains(_ candidate: [UInt8]) -> Bool {
            guard candidate.count == address.count else { return false }
            var remaining = prefixLength
            for index in address.indices where remaining > 0 {
                let mask: UInt8 = remaining >= 8 ? 0xff : ~(0xff >> UInt8(remaining))
                if candidate[index] & mask != address[index] & mask { return false }
                remaining -= 8
            }
            return true
        }

        /// The 4 or 16 bytes of a textual IPv4 or IPv6 address (brackets allowed).
        static func bytes(of text: String) -> [UInt8]? {
            var host = text
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            var v4 = in_addr()
            if inet_pton(AF_INET, host, &v4) == 1 {
                return withUnsafeBytes(of: &v4) { Array($0) }
            }
            var v6 = in6_addr()
            if inet_pton(AF_INET6, host, &v6) == 1 {
                return withUnsafeBytes(of: &v6) { Array($0) }
            }
            return nil
        }
    }

    public let networks: [Network]

    public init(_ networks: [Network]) {
        self.networks = networks
    }

    /// The client's address (without port) for a request from `peer` (`HOST:PORT`).
    public func client(of head: HTTPRequestHead) -> String {
        let peerHost = Self.host(of: head.peer)
        guard isTrusted(peerHost) else { return peerHost }
        let hops = head.values(of: "X-Forwarded-For")
            .flatMap { $0.split(separator: ",") }
            .map { String($0).trimmingOptionalWhitespace() }
            .filter { !$0.isEmpty }
        // From the nearest hop back; the first one we do not trust is the client.
        for hop in hops.reversed() where !isTrusted(hop) {
            return Network.bytes(of: hop) == nil ? peerHost : hop
        }
        return hops.first ?? peerHost
    }

    private func isTrusted(_ host: String) -> Bool {
        guard let bytes = Network.bytes(of: host) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// `HOST` of `HOST:PORT`, `[V6]:PORT` or libevent's bare `V6:PORT`.
    static func host(of peer: String) -> String {
        guard let colon = peer.lastIndex(of: ":") else { return peer }
        let host = String(peer[..<colon])
        return host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }
}
