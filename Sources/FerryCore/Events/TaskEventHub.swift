import Synchronization

/// Where task changes are told: to whoever listens (`/events`, which shows each token its
/// own), and to the per-minute ``ActivityHistory``; and changes of the pauses of deliveries.
/// Listeners are called on the thread that made the change, outside any lock of the hub:
/// they must return at once (hand the message to a queue or a loop). A change is told
/// before the next one can happen (before its task is queued, say), so listeners hear each
/// task's changes in order.
public final class TaskEventHub: Sendable {
    /// What a listener is told.
    public enum Message: Sendable {
        case task(TaskEvent)
        /// The pauses in force after a pause or a resume.
        case pauses(DeliveryPauses)
    }

    /// Called with each message.
    public typealias Listener = @Sendable (Message) -> Void

    /// A listener's place in the hub; ``cancel(_:)`` removes it.
    public struct Subscription: Sendable, Hashable {
        let number: UInt64
    }

    private struct Listeners {
        var next: UInt64 = 0
        var entries: [UInt64: Listener] = [:]
    }

    private let listeners = Mutex(Listeners())
    /// Received, delivered and failed per minute, counted from the events.
    public let history = ActivityHistory()

    public init() {}

    /// Calls `listener` with every message from now on.
    public func subscribe(_ listener: @escaping Listener) -> Subscription {
        listeners.withLock { listeners in
            listeners.next += 1
            listeners.entries[listeners.next] = listener
            return Subscription(number: listeners.next)
        }
    }

    /// Stops calling the listener of `subscription`.
    public func cancel(_ subscription: Subscription) {
        _ = listeners.withLock { $0.entries.removeValue(forKey: subscription.number) }
    }

    /// Tells `events` to the history and to the listeners.
    ///
    /// - Parameter accepted: the events are of uploads just accepted (counted as received;
    ///   a retried task enters `queued` too, and is not).
    public func publish(_ events: [TaskEvent], accepted: Bool = false) {
        guard !events.isEmpty else { return }
        for event in events {
            switch event.change {
            case _ where accepted: history.record(.received, owner: event.owner, at: event.at)
            case .entered(.delivered): history.record(.delivered, owner: event.owner, at: event.at)
            case .entered(.failed): history.record(.failed, owner: event.owner, at: event.at)
            default: break
            }
        }
        for listener in listeners.withLock({ Array($0.entries.values) }) {
            for event in events { listener(.task(event)) }
        }
    }

    /// Tells every listener the pauses in force now.
    public func publish(_ pauses: DeliveryPauses) {
        for listener in listeners.withLock({ Array($0.entries.values) }) { listener(.pauses(pauses)) }
    }

    /// Tells one event (see ``publish(_:accepted:)``).
    public func publish(_ event: TaskEvent, accepted: Bool = false) {
        publish([event], accepted: accepted)
    }
}
