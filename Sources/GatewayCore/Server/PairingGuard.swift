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

    private struct Spacing {
        /// When each counted claim was (or will be) evaluated, in order.
        var times: [Int64] = []
        /// The earliest moment the next claim beyond the free ones may be evaluated.
        var next: Int64 = 0

        mutating func prune(now: Int64, window: Int64) {
            if let first = times.first, now - first >= window { times.removeAll { now - $0 >= window } }
        }
    }

    private struct State {
        var addresses: [String: Spacing] = [:]
        var prefixes: [String: Spacing] = [:]
        var global = Spacing()
    }

    let policy: Policy
    private let state = NIOLockedValueBox(State())

    init(policy: Policy) { self.policy = policy }

    /// The part of a normalised code (`XXXX-XXXX`) that the per-prefix scope counts.
    static func prefix(of code: String) -> String { String(code.prefix(4)) }

    /// Takes a place for a claim from `address` for a code starting with `prefix`.
    func begin(address: String, prefix: String, now: Int64) -> (Decision, Ticket?) {
        state.withLockedValue { state -> (Decision, Ticket?) in
            var byAddress = state.addresses[address] ?? Spacing()
            var byPrefix = state.prefixes[prefix] ?? Spacing()
            var global = state.global
            byAddress.prune(now: now, window: policy.perAddress.window)
            byPrefix.prune(now: now, window: policy.perPrefix.window)
            global.prune(now: now, window: policy.global.window)
            let slot = max(
                Self.turn(byAddress, scope: policy.perAddress, now: now), Self.turn(byPrefix, scope: policy.perPrefix, now: now),
                Self.turn(global, scope: policy.global, now: now))
            if slot - now > policy.maximumWait {
                state.addresses[address] = byAddress
                state.prefixes[prefix] = byPrefix
                state.global = global
                return (.refuse(retryAfter: Int(max(1, (slot - now + 999) / 1000))), nil)
            }
            reserve(&byAddress, scope: policy.perAddress, at: slot)
            reserve(&byPrefix, scope: policy.perPrefix, at: slot)
            reserve(&global, scope: policy.global, at: slot)
            state.addresses[address] = byAddress
            state.prefixes[prefix] = byPrefix
            state.global = global
            Self.forgetOldest(&state.addresses, maximum: policy.maximumKeys, now: now, window: policy.perAddress.window)
            Self.forgetOldest(&state.prefixes, maximum: policy.maximumKeys, now: now, window: policy.perPrefix.window)
            return (.proceed(delay: slot - now), Ticket(address: address, prefix: prefix, at: slot))
        }
    }

    /// Gives back the place of a claim that was not a failed guess (it succeeded, or the code was
    /// right but the agent revoked, or the gateway failed).
    func giveBack(_ ticket: Ticket) {
        state.withLockedValue { state in
            func remove(_ spacing: inout Spacing) {
                if let index = spacing.times.lastIndex(of: ticket.at) { spacing.times.remove(at: index) }
            }
            if var spacing = state.addresses[ticket.address] {
                remove(&spacing)
                state.addresses[ticket.address] = spacing
            }
            if var spacing = state.prefixes[ticket.prefix] {
                remove(&spacing)
                state.prefixes[ticket.prefix] = spacing
            }
            remove(&state.global)
        }
    }

    /// When a claim in this scope may be evaluated: now while free failures remain, else at the next turn.
    private static func turn(_ spacing: Spacing, scope: Scope, now: Int64) -> Int64 {
        spacing.times.count < scope.free ? now : max(now, spacing.next)
    }

    private func reserve(_ spacing: inout Spacing, scope: Scope, at slot: Int64) {
        spacing.times.append(slot)
        spacing.times.sort()
        let beyond = spacing.times.count - scope.free
        guard beyond >= 0 else { return }
        let gap = min(policy.maximumGap, policy.firstGap << Int64(min(beyond, 20)))
        spacing.next = max(spacing.next, slot) + gap
    }

    /// Bounds the memory an attacker with many addresses can make the guard use: past `maximum`
    /// keys, forgets those with nothing left in their window, then the ones used least recently.
    private static func forgetOldest(_ table: inout [String: Spacing], maximum: Int, now: Int64, window: Int64) {
        guard table.count > maximum else { return }
        table = table.filter { _, spacing in spacing.times.contains { now - $0 < window } || spacing.next > now }
        guard table.count > maximum else { return }
        let keep = table.sorted { ($0.value.times.last ?? 0) > ($1.value.times.last ?? 0) }.prefix(maximum * 9 / 10)
        table = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
    }
}
