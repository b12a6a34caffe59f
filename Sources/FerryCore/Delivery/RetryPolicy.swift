/// When to try a failed push again: exponential backoff with full jitter.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first one included.
    public var maxAttempts: Int
    /// The backoff ceiling after the first failure, in seconds.
    public var base: Double
    /// No wait is longer than this, in seconds.
    public var cap: Double

    public init(maxAttempts: Int = 5, base: Double = 1, cap: Double = 60) {
        self.maxAttempts = maxAttempts
        self.base = base
        self.cap = cap
    }

    /// The longest wait after failed attempt number `attempt` (1-based): `min(cap, base·2^(attempt-1))`.
    public func ceiling(afterAttempt attempt: Int) -> Double {
        let exponent = Double(max(0, min(attempt - 1, 62)))
        return min(cap, base * Double.pow2(exponent))
    }

    /// A wait drawn uniformly from `0...ceiling` ("full jitter", so retries spread out).
    public func delay(
        afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator
    ) -> Double {
        let ceiling = ceiling(afterAttempt: attempt)
        return ceiling > 0 ? Double.random(in: 0...ceiling, using: &generator) : 0
    }

    /// Whether a transient failure of attempt number `attempt` is retried.
    public func allowsRetry(afterAttempt attempt: Int) -> Bool {
        attempt < maxAttempts
    }
}

extension Double {
    fileprivate static func pow2(_ exponent: Double) -> Double {
        var result = 1.0
        for _ in 0..<Int(exponent) { result *= 2 }
        return result
    }
}
