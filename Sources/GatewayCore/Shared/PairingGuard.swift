import NIOConcurrencyHelpers

/// Slows pairing-code guesses, atomically, per client address, per code prefix and for the whole
/// gateway (issue 11, item 6).
///
/// Every claim takes a place before its code is looked up, in one step under one lock, so that
/// concurrent guesses cannot all pass a check made before any of them failed. A place counts as a
/// failure until the claim succeeds (then it is given back). In each scope the first `free`
/// failures of the window are evaluated at once; after that, each further guess is evaluated only
/// after a gap that doubles with every failure (1 s, 2 s, 4 s, … up to `maximumGap`). A guess
/// whose turn is more than `maximumWait` away is not evaluated at all: it gets `429` with
/// `Retry-After` saying when its turn would be. So a valid code sent from an address that just
/// made a few bad guesses is evaluated after a pause (and accepted), not refused, while a flood of
/// guesses is cut to a handful per window.
final class PairingGuard: Sendable {
    struct Scope: Sendable {
        /// Failures evaluated at once, per window.
        var free: Int
        /// The window, in milliseconds.
        var window: Int64
    }

    struct Policy: Sendable {
        var perAddress = Scope(free: 5, window: 60_000)
        var perPrefix = Scope(free: 5, window: 600_000)
        var global = Scope(free: 30, window: 60_000)
        /// The first gap after the free failures; each later one doubles, up to `maximumGap`.
        var firstGap: Int64 = 1000
        var maximumGap: Int64 = 30_000
        /// The longest a claim is held before its evaluation; a later turn gets `429` instead.
        var maximumWait: Int64 = 10_000
        /// Addresses and prefixes remembered at most (the oldest are forgotten first).
        var maximumKeys = 10_000
    }

    /// A claim's place in every scope, to give back when the claim succeeds.
    struct Ticket: Sendable {
        let address: String
        let prefix: String
        let at: Int64
    }

    enum Decision: Sendable, Equatable {
        /// Evaluate the claim after `delay` milliseconds.
        case proceed(delay: Int64)
        /// Do not evaluate it; the claimant may retry after this many seconds.
        case refuse(retryAfter: Int)
    }

    private struct State {
        var addresses: [String: PairingSpacing] = [:]
        var prefixes: [String: PairingSpacing] = [:]
        var global = PairingSpacing()
    }

    let policy: Policy
    private let state = NIOLockedValueBox(State())

    init(policy: Policy) { self.policy = policy }

    /// The part of a normalised code (`XXXX-XXXX`) that the per-prefix scope counts.
    static func prefix(of code: String) -> String { String(code.prefix(4)) }

    /// Takes a place for a claim from `address` for a code starting with `prefix`.
    func begin(address: String, prefix: String, now: Int64) -> (Decision, Ticket?) {
        state.withLockedValue { state -> (Decision, Ticket?) in
            var byAddress = state.addresses[address] ?? PairingSpacing()
            var byPrefix = state.prefixes[prefix] ?? PairingSpacing()
            let decision = policy.decide(address: &byAddress, prefix: &byPrefix, global: &state.global, now: now)
            state.addresses[address] = byAddress
            state.prefixes[prefix] = byPrefix
            Self.forgetOldest(&state.addresses, maximum: policy.maximumKeys, now: now, window: policy.perAddress.window)
            Self.forgetOldest(&state.prefixes, maximum: policy.maximumKeys, now: now, window: policy.perPrefix.window)
            guard case .proceed(let delay) = decision else { return (decision, nil) }
            return (decision, Ticket(address: address, prefix: prefix, at: now + delay))
        }
    }

    /// Gives back the place of a claim that was not a failed guess (it succeeded, or the code was
    /// right but the agent revoked, or the gateway failed).
    func giveBack(_ ticket: Ticket) {
        state.withLockedValue { state in
            state.addresses[ticket.address]?.giveBack(ticket.at)
            state.prefixes[ticket.prefix]?.giveBack(ticket.at)
            state.global.giveBack(ticket.at)
        }
    }

    /// Bounds the memory an attacker with many addresses can make the guard use: past `maximum`
    /// keys, forgets those with nothing left in their window, then the ones used least recently.
    private static func forgetOldest(_ table: inout [String: PairingSpacing], maximum: Int, now: Int64, window: Int64) {
        guard table.count > maximum else { return }
        table = table.filter { _, spacing in spacing.times.contains { now - $0 < window } || spacing.next > now }
        guard table.count > maximum else { return }
        let keep = table.sorted { ($0.value.times.last ?? 0) > ($1.value.times.last ?? 0) }.prefix(maximum * 9 / 10)
        table = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
    }
}

/// One scope's failed claims: when each counted claim was (or will be) evaluated, and the earliest
/// moment the next claim beyond the free ones may be. Kept in memory by ``PairingGuard``, and as a
/// row by the gateways on PostgreSQL (``PostgresSharedState``).
struct PairingSpacing: Sendable, Equatable {
    var times: [Int64] = []
    var next: Int64 = 0

    mutating func prune(now: Int64, window: Int64) {
        if let first = times.first, now - first >= window { times.removeAll { now - $0 >= window } }
    }

    /// Removes the place taken at `slot` (a claim that was not a failed guess).
    mutating func giveBack(_ slot: Int64) {
        if let index = times.lastIndex(of: slot) { times.remove(at: index) }
    }
}

extension PairingGuard.Policy {
    /// Decides a claim from the three scopes' spacings, and takes its place in each of them when it
    /// proceeds (the place's time is `now` plus the delay). The one rule, wherever the spacings live.
    func decide(address: inout PairingSpacing, prefix: inout PairingSpacing, global: inout PairingSpacing, now: Int64) -> PairingGuard.Decision {
        address.prune(now: now, window: perAddress.window)
        prefix.prune(now: now, window: perPrefix.window)
        global.prune(now: now, window: self.global.window)
        let slot = max(
            turn(address, scope: perAddress, now: now), turn(prefix, scope: perPrefix, now: now), turn(global, scope: self.global, now: now))
        if slot - now > maximumWait { return .refuse(retryAfter: Int(max(1, (slot - now + 999) / 1000))) }
        reserve(&address, scope: perAddress, at: slot)
        reserve(&prefix, scope: perPrefix, at: slot)
        reserve(&global, scope: self.global, at: slot)
        return .proceed(delay: slot - now)
    }

    /// When a claim in this scope may be evaluated: now while free failures remain, else at the next turn.
    private func turn(_ spacing: PairingSpacing, scope: PairingGuard.Scope, now: Int64) -> Int64 {
        spacing.times.count < scope.free ? now : max(now, spacing.next)
    }

    private func reserve(_ spacing: inout PairingSpacing, scope: PairingGuard.Scope, at slot: Int64) {
        spacing.times.append(slot)
        spacing.times.sort()
        let beyond = spacing.times.count - scope.free
        guard beyond >= 0 else { return }
        let gap = min(maximumGap, firstGap << Int64(min(beyond, 20)))
        spacing.next = max(spacing.next, slot) + gap
    }
}
