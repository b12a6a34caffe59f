import Foundation
import Yams

/// An Incus remote as the `incus` client knows it (`incus remote add`): where its daemon
/// listens and the certificates the client uses with it. Ferry pushes through the client,
/// and asks the remote's daemon about destinations itself, over the same TLS identity.
public struct IncusRemote: Sendable, Equatable {
    public var name: String
    /// `HOST:PORT` of the daemon's HTTPS listener.
    public var address: String
    /// The client's certificate and key (`client.crt`, `client.key` in the client's config
    /// directory), which the remote trusts.
    public var clientCertificate: String
    public var clientKey: String
    /// The remote's own certificate as the client pinned it (`servercerts/NAME.crt`).
    public var serverCertificate: String

    /// Why a remote cannot be used.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// The client's configuration directory: `$INCUS_CONF`, else `~/.config/incus`.
    public static func configurationDirectory(environment: [String: String]) -> String {
        if let directory = environment["INCUS_CONF"], !directory.isEmpty { return directory }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.config/incus"
    }

    /// Reads the remotes named in `names` from the client's configuration.
    ///
    /// - Throws: ``Problem`` for a name that is not an HTTPS Incus remote there, or whose
    ///   certificates are missing: Ferry would accept uploads it could never deliver.
    public static func load(_ names: [String], environment: [String: String]) throws(Problem)
        -> [String: IncusRemote]
    {
        guard !names.isEmpty else { return [:] }
        let directory = configurationDirectory(environment: environment)
        let file = directory + "/config.yml"
        let known: [String: [String: Any]]
        do {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let document = try Yams.load(yaml: text) as? [String: Any]
            known = document?["remotes"] as? [String: [String: Any]] ?? [:]
        } catch {
            throw Problem(
                description: "cannot read the incus client's remotes in \(file) (INCUS_CONF): \(error)")
        }
        var remotes: [String: IncusRemote] = [:]
        for name in names {
            guard let entry = known[name] else {
                throw Problem(
                    description:
                        "--remote \(name): the incus client in \(directory) has no such remote (incus remote add \(name) TOKEN)"
                )
            }
            let url = entry["addr"] as? String ?? ""
            guard entry["protocol"] as? String ?? "incus" == "incus", url.hasPrefix("https://") else {
                throw Problem(description: "--remote \(name): \(url) is not an Incus daemon over HTTPS")
            }
            let address = String(url.dropFirst("https://".count).prefix { $0 != "/" })
            let remote = IncusRemote(
                name: name, address: address.contains(":") ? address : address + ":8443",
                clientCertificate: directory + "/client.crt", clientKey: directory + "/client.key",
                serverCertificate: directory + "/servercerts/\(name).crt")
            for path in [remote.clientCertificate, remote.clientKey, remote.serverCertificate]
            where !FileManager.default.isReadableFile(atPath: path) {
                throw Problem(description: "--remote \(name): \(path) is missing or unreadable")
            }
            remotes[name] = remote
        }
        return remotes
    }
}
