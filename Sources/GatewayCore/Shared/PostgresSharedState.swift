import NIOConcurrencyHelpers
import PostgresNIO
import SodiumKit

/// The shared state of gateways on PostgreSQL, in the database (migration `v4-shared-state`), so
/// that every instance on it sees one rate limit, one claim per idempotency key, one pairing guard
/// and the same MCP sessions. Each operation is one statement, or one short transaction, outside
/// the writers' advisory lock: a rate-limit check never waits behind a tracker write.
///
/// Calls waiting for another call's idempotency key are woken across instances by
/// `NOTIFY agent_gateway_claims` (payload: the key) when the claim is released: each instance
/// keeps one connection that `LISTEN`s, opened at its first wait, reopened after a failure. A wake-up
/// can still be missed (the listener reconnecting), so waiters also look again at a short bound.
final class PostgresSharedState: SharedState {
    static let claimChannel = "agent_gateway_claims"

    let store: PostgresGatewayStore
    let pairingPolicy: PairingGuard.Policy
    let releases = ReleaseSignals()
    private let random: RandomSource
    private let clock: @Sendable () -> Int64
    /// The renewing task of each claim this instance holds, by holder.
    private let renewals = NIOLockedValueBox<[String: Task<Void, Never>]>([:])
    private let listener = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let sessions = MCPSessionCache()
    /// When this instance last removed the pairing guard's old rows.
    private let lastPrune = NIOLockedValueBox<Int64>(0)

    init(store: PostgresGatewayStore, pairingPolicy: PairingGuard.Policy, random: RandomSource, clock: @escaping @Sendable () -> Int64) {
        self.store = store
        self.pairingPolicy = pairingPolicy
        self.random = random
        self.clock = clock
    }

    deinit {
        listener.withLockedValue { $0?.cancel() }
        for task in renewals.withLockedValue({ $0.values }) { task.cancel() }
    }

    // MARK: Rate limits

    /// One statement: the bucket refills for the time since its last update, then gives a token if
    /// it holds one. Concurrent calls on any instance serialise on the bucket's row.
    func takeToken(agentID: String, bucket kind: RateBucketKind, ratePerMinute: Int, now: Int64) async throws -> Int? {
        let rate = max(1, ratePerMinute)
        let bucket = kind.rawValue + ":" + agentID
        let (granted, tokens) = try await store.unlocked(transaction: false) { statements in
            try statements.one(
                """
                INSERT INTO rateBucket AS b (bucket, tokens, updatedAt, granted) VALUES (?, CAST(? AS DOUBLE PRECISION) - 1, ?, TRUE)
                ON CONFLICT (bucket) DO UPDATE SET
                    tokens = CASE WHEN \(Self.refilled) >= 1 THEN \(Self.refilled) - 1 ELSE \(Self.refilled) END,
                    granted = \(Self.refilled) >= 1,
                    updatedAt = GREATEST(b.updatedAt, excluded.updatedAt)
                RETURNING granted, tokens
                """, [.text(bucket), .int(rate), .int(now)]
            ) { (try $0.next(Bool.self), try $0.next(Double.self)) } ?? (true, 0)
        }
        return granted ? nil : RateBucket.secondsToWait(tokens: tokens, ratePerMinute: Double(rate))
    }

    /// The bucket's tokens after refilling (`excluded` holds the rate less one and the call's time).
    private static let refilled =
        "LEAST(excluded.tokens + 1, b.tokens + GREATEST(0, excluded.updatedAt - b.updatedAt) * (excluded.tokens + 1) / 60000.0)"

    // MARK: Idempotency claims

    func claim(_ key: String, fingerprint: String, now: Int64) async throws -> IdempotencyClaim {
        let holder = Base64.encode(random.bytes(12), variant: .urlSafeNoPadding)
        let expiresAt = now + IdempotencyLease.milliseconds
        let outcome = try await store.unlocked(transaction: false) { statements -> IdempotencyClaim in
            // A released claim can vanish between the two statements: then try again (bounded).
            for _ in 0..<3 {
                let taken = try statements.rows(
                    """
                    INSERT INTO idempotencyClaim (gateKey, fingerprint, holder, expiresAt) VALUES (?, ?, ?, ?)
                    ON CONFLICT (gateKey) DO UPDATE SET fingerprint = excluded.fingerprint, holder = excluded.holder, expiresAt = excluded.expiresAt
                        WHERE idempotencyClaim.expiresAt <= ?
                    RETURNING holder
                    """, [.text(key), .text(fingerprint), .text(holder), .int(expiresAt), .int(now)])
                if !taken.isEmpty { return .claimed(IdempotencyClaimHolder(key: key, holder: holder)) }
                if let held = try statements.one(
                    "SELECT fingerprint FROM idempotencyClaim WHERE gateKey = ?", [.text(key)], { try $0.next(String.self) })
                {
                    return held == fingerprint ? .inFlight : .reusedWithOtherArguments
                }
            }
            return .inFlight
        }
        if case .claimed(let claim) = outcome { startRenewing(claim) }
        return outcome
    }

    /// Renews the claim's lease while its call runs, so that only a dead holder's claim expires.
    private func startRenewing(_ claim: IdempotencyClaimHolder) {
        let store = self.store
        let clock = self.clock
        let task = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(IdempotencyLease.renewEveryMilliseconds))
                if Task.isCancelled { return }
                let expiresAt = clock() + IdempotencyLease.milliseconds
                _ = try? await store.unlocked(transaction: false) { statements in
                    try statements.execute(
                        "UPDATE idempotencyClaim SET expiresAt = ? WHERE gateKey = ? AND holder = ?",
                        [.int(expiresAt), .text(claim.key), .text(claim.holder)])
                }
            }
        }
        renewals.withLockedValue { $0[claim.holder] = task }
    }

    func release(_ claim: IdempotencyClaimHolder) async {
        renewals.withLockedValue { $0.removeValue(forKey: claim.holder) }?.cancel()
        // If PostgreSQL cannot be reached now, the claim ends with its lease.
        _ = try? await store.unlocked(transaction: false) { statements in
            try statements.rows(
                """
                WITH released AS (DELETE FROM idempotencyClaim WHERE gateKey = ? AND holder = ? RETURNING gateKey)
                SELECT pg_notify('\(Self.claimChannel)', gateKey) FROM released
                """, [.text(claim.key), .text(claim.holder)]
            ).count
        }
        releases.signal(claim.key)
    }

    func waitForRelease(of key: String, milliseconds: Int64) async {
        startListening()
        await releases.wait(for: key, milliseconds: milliseconds)
    }

    /// The instance's `LISTEN` connection, opened once and reopened after a failure (1 s apart).
    private func startListening() {
        listener.withLockedValue { listener in
            guard listener == nil else { return }
            let pool = store.pool
            let releases = self.releases
            listener = Task {
                while !Task.isCancelled {
                    do {
                        let connection = try await pool.connectDedicated()
                        do {
                            // One connection listens on both channels: released claims, and
                            // approval decisions (``PostgresTransaction/approvalChannel``).
                            try await connection.listen(on: Self.claimChannel) { claims in
                                try await connection.listen(on: PostgresTransaction.approvalChannel) { decisions in
                                    try await withThrowingTaskGroup(of: Void.self) { group in
                                        group.addTask {
                                            for try await notification in claims { releases.signal(notification.payload) }
                                        }
                                        group.addTask {
                                            for try await notification in decisions {
                                                releases.signal(DecisionSignal.key(notification.payload))
                                            }
                                        }
                                        _ = try await group.next()
                                        group.cancelAll()
                                    }
                                }
                            }
                        } catch {}
                        try? await connection.close()
                    } catch {}
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    // MARK: Approval decisions

    func announceDecision(_ requestID: String) { releases.signal(DecisionSignal.key(requestID)) }

    func waitForDecision(of requestID: String, milliseconds: Int64) async {
        startListening()
        await releases.wait(for: DecisionSignal.key(requestID), milliseconds: milliseconds)
    }

    // MARK: Pairing guard

    func beginPairing(address: String, prefix: String, now: Int64) async throws -> (PairingGuard.Decision, PairingGuard.Ticket?) {
        try await pruneOldPairingRows(now: now)
        let policy = pairingPolicy
        let decision = try await withPairingRows(address: address, prefix: prefix, now: now) { byAddress, byPrefix, global in
            policy.decide(address: &byAddress, prefix: &byPrefix, global: &global, now: now)
        }
        guard case .proceed(let delay) = decision else { return (decision, nil) }
        return (decision, PairingGuard.Ticket(address: address, prefix: prefix, at: now + delay))
    }

    func giveBack(_ ticket: PairingGuard.Ticket) async {
        _ = try? await withPairingRows(address: ticket.address, prefix: ticket.prefix, now: clock()) { byAddress, byPrefix, global in
            byAddress.giveBack(ticket.at)
            byPrefix.giveBack(ticket.at)
            global.giveBack(ticket.at)
        }
    }

    /// Locks the three scopes' rows (made when missing, always in one order), lets `change` update
    /// them, and writes them back, in one transaction.
    private func withPairingRows<T: Sendable>(
        address: String, prefix: String, now: Int64,
        _ change: @escaping @Sendable (inout PairingSpacing, inout PairingSpacing, inout PairingSpacing) -> T
    ) async throws -> T {
        let scopes = ["a:" + address, "p:" + prefix, "g"]
        return try await store.unlocked(transaction: true) { statements in
            for scope in scopes.sorted() {
                try statements.execute(
                    "INSERT INTO pairingGuard (scope, times, next, updatedAt) VALUES (?, '', 0, ?) ON CONFLICT (scope) DO NOTHING",
                    [.text(scope), .int(now)])
            }
            var spacings: [String: PairingSpacing] = [:]
            for row in try statements.rows(
                "SELECT scope, times, next FROM pairingGuard WHERE scope IN (?, ?, ?) ORDER BY scope FOR UPDATE",
                scopes.map { .text($0) })
            {
                var columns = PostgresColumns(row)
                let scope: String = try columns.next()
                let times: String = try columns.next()
                let next: Int64 = try columns.next()
                spacings[scope] = PairingSpacing(times: times.split(separator: ",").compactMap { Int64($0) }, next: next)
            }
            var byAddress = spacings[scopes[0]] ?? PairingSpacing()
            var byPrefix = spacings[scopes[1]] ?? PairingSpacing()
            var global = spacings[scopes[2]] ?? PairingSpacing()
            let result = change(&byAddress, &byPrefix, &global)
            for (scope, spacing) in zip(scopes, [byAddress, byPrefix, global]) {
                try statements.execute(
                    "UPDATE pairingGuard SET times = ?, next = ?, updatedAt = ? WHERE scope = ?",
                    [.text(spacing.times.map(String.init).joined(separator: ",")), .int(spacing.next), .int(now), .text(scope)])
            }
            return result
        }
    }

    /// Removes, at most once a minute per instance, the rows of scopes idle for an hour (longer than
    /// any window and any gap): the table stays as small as the recent guesses.
    private func pruneOldPairingRows(now: Int64) async throws {
        let due = lastPrune.withLockedValue { last -> Bool in
            guard now - last >= 60_000 else { return false }
            last = now
            return true
        }
        guard due else { return }
        _ = try await store.unlocked(transaction: false) { statements in
            try statements.execute("DELETE FROM pairingGuard WHERE updatedAt < ? AND scope <> 'g'", [.int(now - 3_600_000)])
        }
    }

    // MARK: MCP sessions

    func openMCPSession(agentID: String, protocolVersion: String, now: Int64) async throws -> String {
        let id = MCPSessionID.make(random)
        _ = try await store.unlocked(transaction: false) { statements in
            try statements.execute(
                "INSERT INTO mcpSession (id, agentID, protocolVersion, createdAt, endedAt) VALUES (?, ?, ?, ?, NULL)",
                [.text(id), .text(agentID), .text(protocolVersion), .int(now)])
        }
        return id
    }

    func mcpSession(_ id: String, agentID: String, epoch: String) async throws -> MCPSessionEntry? {
        if let entry = sessions.entry(id, epoch: epoch) { return entry.agentID == agentID ? entry : nil }
        let found = try await store.unlocked(transaction: false) { statements in
            try statements.one(
                """
                SELECT agentID, protocolVersion, endedAt,
                    COALESCE((SELECT value FROM setting WHERE name = ?), '0')
                FROM mcpSession WHERE id = ?
                """, [.text(PrincipalEpoch.settingName), .text(id)]
            ) { columns -> (MCPSessionEntry, Int64?, String) in
                (MCPSessionEntry(agentID: try columns.next(), protocolVersion: try columns.next()), try columns.next(), try columns.next())
            }
        }
        guard let (entry, endedAt, readEpoch) = found, endedAt == nil else { return nil }
        sessions.store(entry, id: id, epoch: readEpoch)
        return entry.agentID == agentID ? entry : nil
    }

    func openMCPSessionCount() async throws -> Int {
        try await store.unlocked(transaction: false) { statements in
            try statements.one("SELECT count(*) FROM mcpSession WHERE endedAt IS NULL", []) { columns -> Int in Int(try columns.next(Int64.self)) }
        } ?? 0
    }

    /// Ends the session and moves the principal epoch in the same transaction, so that no instance
    /// answers from a session it saw before.
    func closeMCPSession(_ id: String, agentID: String, now: Int64) async throws -> Bool {
        try await store.unlocked(transaction: true) { statements in
            let ended = try statements.execute(
                "UPDATE mcpSession SET endedAt = ? WHERE id = ? AND agentID = ? AND endedAt IS NULL", [.int(now), .text(id), .text(agentID)])
            guard ended > 0 else { return false }
            try statements.bumpPrincipalEpoch()
            return true
        }
    }
}

/// MCP sessions this instance has seen, each with the principal epoch it was read at; used only
/// while that epoch is the caller's. At most `capacity`.
final class MCPSessionCache: Sendable {
    private struct Entry {
        let session: MCPSessionEntry
        let epoch: String
    }

    let capacity: Int
    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    init(capacity: Int = 4096) { self.capacity = capacity }

    func entry(_ id: String, epoch: String) -> MCPSessionEntry? {
        entries.withLockedValue { entries in
            guard let entry = entries[id] else { return nil }
            guard entry.epoch == epoch else {
                entries[id] = nil
                return nil
            }
            return entry.session
        }
    }

    func store(_ session: MCPSessionEntry, id: String, epoch: String) {
        entries.withLockedValue { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[id] = Entry(session: session, epoch: epoch)
        }
    }
}
