import Foundation

/// Which deliveries are paused: all of them, or those to some containers, each since when.
/// While paused, uploads are accepted and queued, and their pushes wait.
public struct DeliveryPauses: Sendable, Equatable, Codable {
    /// A pause or a resume.
    public enum Change: Sendable, Equatable {
        /// Hold every container's deliveries.
        case pauseAll
        /// Hold this container's deliveries.
        case pause(container: String)
        /// Let everything go: the pause of all and of each container end.
        case resumeAll
        /// End this container's pause (a pause of all, if any, still holds it).
        case resume(container: String)
    }

    /// Seconds since 1970 when all deliveries were paused; nil while they are not.
    public var allSince: Double?
    /// Paused containers, with when each was paused.
    public var containers: [String: Double] = [:]

    public init() {}

    /// Whether every delivery is held.
    public var all: Bool { allSince != nil }

    /// Whether nothing is paused.
    public var isEmpty: Bool { allSince == nil && containers.isEmpty }

    /// Whether deliveries to `container` wait.
    public func holds(_ container: String) -> Bool {
        allSince != nil || containers[container] != nil
    }

    /// Applies `change` made at `time`; pausing what is paused keeps its first time.
    public mutating func apply(_ change: Change, at time: Double) {
        switch change {
        case .pauseAll: allSince = allSince ?? time
        case .pause(let container): containers[container] = containers[container] ?? time
        case .resumeAll:
            allSince = nil
            containers = [:]
        case .resume(let container): containers[container] = nil
        }
    }
}

extension DeliveryPauses {
    /// One line for logs: `all`, `c1,c2`, or `none`.
    public var summary: String {
        if all { return "all" }
        return containers.isEmpty ? "none" : containers.keys.sorted().joined(separator: ",")
    }

    /// As kept in the store: JSON.
    func encoded() -> String {
        // A struct of a double and a dictionary of doubles always encodes.
        String(decoding: try! JSONEncoder().encode(self), as: UTF8.self)
    }

    init?(encoded text: String) {
        guard let decoded = try? JSONDecoder().decode(Self.self, from: Data(text.utf8)) else { return nil }
        self = decoded
    }
}

extension DeliveryPauses.Change {
    /// What the change did, for a log line: `paused` or `resumed`.
    public var verb: String {
        switch self {
        case .pauseAll, .pause: "paused"
        case .resumeAll, .resume: "resumed"
        }
    }
}
