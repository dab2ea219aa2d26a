import NIOConcurrencyHelpers

/// Per-agent token buckets, one for reads and one for writes: `rate` tokens a minute, burst = rate.
final class AgentRateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var updatedAt: Int64
    }

    let readsPerMinute: Int
    let writesPerMinute: Int
    private let buckets = NIOLockedValueBox<[String: Bucket]>([:])

    init(readsPerMinute: Int, writesPerMinute: Int) {
        self.readsPerMinute = readsPerMinute
        self.writesPerMinute = writesPerMinute
    }

    /// Takes one token; returns `nil` when allowed, or the seconds to wait.
    func take(agentID: String, write: Bool, now: Int64) -> Int? {
        let rate = Double(max(1, write ? writesPerMinute : readsPerMinute))
        let key = (write ? "w:" : "r:") + agentID
        return buckets.withLockedValue { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: rate, updatedAt: now)
            let elapsed = Double(max(0, now - bucket.updatedAt)) / 60_000.0
            bucket.tokens = min(rate, bucket.tokens + elapsed * rate)
            bucket.updatedAt = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            let secondsPerToken = 60.0 / rate
            return max(1, Int((1 - bucket.tokens) * secondsPerToken + 0.999))
        }
    }
}

/// Idempotency keys whose first call is still running, with the fingerprint of its arguments.
final class IdempotencyInFlight: Sendable {
    private let running = NIOLockedValueBox<[String: String]>([:])

    enum Claim { case claimed, inFlight, reusedWithOtherArguments }

    func claim(_ key: String, fingerprint: String) -> Claim {
        running.withLockedValue { running in
            if let existing = running[key] { return existing == fingerprint ? .inFlight : .reusedWithOtherArguments }
            running[key] = fingerprint
            return .claimed
        }
    }

    func release(_ key: String) { _ = running.withLockedValue { $0.removeValue(forKey: key) } }
}
