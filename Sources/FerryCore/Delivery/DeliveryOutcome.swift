/// How a task ended for good.
public enum DeliveryOutcome: Sendable, Equatable {
    case delivered
    case failed(PushFailure)
}
