import NIOConcurrencyHelpers
import SodiumKit

/// The shared state of a gateway that is the only process on its database (SQLite): in memory.
final class ProcessSharedState: SharedState {
    let rateLimiter = AgentRateLimiter()
    let inFlight = IdempotencyInFlight()
    let pairingGuard: PairingGuard
    let releases = ReleaseSignals()
    let mcpSessions = ProcessMCPSessions()
    private let random: RandomSource

    init(pairingPolicy: PairingGuard.Policy, random: RandomSource) {
        self.pairingGuard = PairingGuard(policy: pairingPolicy)
        self.random = random
    }

    func takeToken(agentID: String, bucket: RateBucketKind, ratePerMinute: Int, now: Int64) async throws -> Int? {
        rateLimiter.take(agentID: agentID, bucket: bucket, ratePerMinute: ratePerMinute, now: now)
    }

    func claim(_ key: String, fingerprint: String, now: Int64) async throws -> IdempotencyClaim {
        inFlight.claim(key, fingerprint: fingerprint, holder: Base64.encode(random.bytes(12), variant: .urlSafeNoPadding))
    }

    func release(_ claim: IdempotencyClaimHolder) async {
        if inFlight.release(claim) { releases.signal(claim.key) }
    }

    func waitForRelease(of key: String, milliseconds: Int64) async {
        await releases.wait(for: key, milliseconds: milliseconds)
    }

    func beginPairing(address: String, prefix: String, now: Int64) async throws -> (PairingGuard.Decision, PairingGuard.Ticket?) {
        pairingGuard.begin(address: address, prefix: prefix, now: now)
    }

    func giveBack(_ ticket: PairingGuard.Ticket) async { pairingGuard.giveBack(ticket) }

    func openMCPSession(agentID: String, protocolVersion: String, now: Int64) async throws -> String {
        mcpSessions.open(agentID: agentID, protocolVersion: protocolVersion, id: MCPSessionID.make(random))
    }

    func mcpSession(_ id: String, agentID: String, epoch: String) async throws -> MCPSessionEntry? {
        mcpSessions.find(id, agentID: agentID)
    }

    func closeMCPSession(_ id: String, agentID: String, now: Int64) async throws -> Bool {
        mcpSessions.close(id, agentID: agentID)
    }

    func openMCPSessionCount() async throws -> Int { mcpSessions.count }

    func announceDecision(_ requestID: String) { releases.signal(DecisionSignal.key(requestID)) }

    func waitForDecision(of requestID: String, milliseconds: Int64) async {
        await releases.wait(for: DecisionSignal.key(requestID), milliseconds: milliseconds)
    }
}

/// Per-agent token buckets (``RateBucketKind``): `rate` tokens a minute, burst = rate.
final class AgentRateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var updatedAt: Int64
    }

    private let buckets = NIOLockedValueBox<[String: Bucket]>([:])

    /// Takes one token; returns `nil` when allowed, or the seconds to wait.
    func take(agentID: String, bucket kind: RateBucketKind, ratePerMinute: Int, now: Int64) -> Int? {
        let rate = Double(max(1, ratePerMinute))
        let key = kind.rawValue + ":" + agentID
        return buckets.withLockedValue { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: rate, updatedAt: now)
            let elapsed = Double(max(0, now - bucket.updatedAt)) / 60_000.0
            bucket.tokens = min(rate, bucket.tokens + elapsed * rate)
            bucket.updatedAt = max(bucket.updatedAt, now)
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return RateBucket.secondsToWait(tokens: bucket.tokens, ratePerMinute: rate)
        }
    }
}

enum RateBucket {
    /// Seconds until a bucket holding `tokens` (< 1) has one, at least 1.
    static func secondsToWait(tokens: Double, ratePerMinute rate: Double) -> Int {
        max(1, Int((1 - tokens) * 60.0 / rate + 0.999))
    }
}

/// Idempotency keys whose first call is still running, with the fingerprint of its arguments.
final class IdempotencyInFlight: Sendable {
    private struct Holding {
        let fingerprint: String
        let holder: String
    }

    private let running = NIOLockedValueBox<[String: Holding]>([:])

    func claim(_ key: String, fingerprint: String, holder: String) -> IdempotencyClaim {
        running.withLockedValue { running in
            if let existing = running[key] { return existing.fingerprint == fingerprint ? .inFlight : .reusedWithOtherArguments }
            running[key] = Holding(fingerprint: fingerprint, holder: holder)
            return .claimed(IdempotencyClaimHolder(key: key, holder: holder))
        }
    }

    /// Whether the claim was still held (and is now released).
    func release(_ claim: IdempotencyClaimHolder) -> Bool {
        running.withLockedValue { running in
            guard running[claim.key]?.holder == claim.holder else { return false }
            running[claim.key] = nil
            return true
        }
    }
}

/// Wakes the calls waiting for an idempotency key's release in this process. A wait ends at its
/// bound even without a signal, so a signal sent before the wait began costs at most that bound.
final class ReleaseSignals: Sendable {
    private struct Waiters {
        var next: UInt64 = 0
        var byKey: [String: [UInt64: CheckedContinuation<Void, Never>]] = [:]
    }

    private let waiters = NIOLockedValueBox(Waiters())

    func wait(for key: String, milliseconds: Int64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id = waiters.withLockedValue { waiters -> UInt64 in
                waiters.next += 1
                waiters.byKey[key, default: [:]][waiters.next] = continuation
                return waiters.next
            }
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(max(1, milliseconds)))
                self?.resume(key, id)
            }
        }
    }

    /// Wakes every call waiting for `key`.
    func signal(_ key: String) {
        let woken = waiters.withLockedValue { $0.byKey.removeValue(forKey: key) }
        for continuation in (woken ?? [:]).values { continuation.resume() }
    }

    /// How many calls wait (for tests).
    var count: Int { waiters.withLockedValue { $0.byKey.values.reduce(0) { $0 + $1.count } } }

    private func resume(_ key: String, _ id: UInt64) {
        let continuation = waiters.withLockedValue { waiters -> CheckedContinuation<Void, Never>? in
            let found = waiters.byKey[key]?.removeValue(forKey: id)
            if waiters.byKey[key]?.isEmpty == true { waiters.byKey[key] = nil }
            return found
        }
        continuation?.resume()
    }
}
