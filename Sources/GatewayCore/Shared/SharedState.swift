/// What every gateway instance on one database must agree on (issue 16), so that N instances
/// behave as one: the agents' rate-limit buckets, the idempotency keys whose first call is still
/// running, the pairing guard's failed claims and the MCP sessions. (Everything else lives in the
/// store itself.)
///
/// A gateway on SQLite is the only process serving its database, and keeps this state in memory
/// (``ProcessSharedState``). Gateways on PostgreSQL keep it in the database, each operation one
/// short statement or transaction outside the writers' lock (``PostgresSharedState``).
protocol SharedState: Sendable {
    /// Takes one token from one of the agent's buckets (`rate` a minute, burst = rate): `nil` when
    /// the call may go ahead, else the seconds to wait.
    func takeToken(agentID: String, bucket: RateBucketKind, ratePerMinute: Int, now: Int64) async throws -> Int?

    /// Claims an idempotency key for a call about to run. A claim lasts until it is released or,
    /// should its holder die, until its lease ends (the holder renews it while the call runs).
    func claim(_ key: String, fingerprint: String, now: Int64) async throws -> IdempotencyClaim
    /// Lets go of a claim and wakes the calls waiting for it, on every instance.
    func release(_ claim: IdempotencyClaimHolder) async

    /// Returns when the claim on `key` may have been released, here or on another instance, or
    /// after `milliseconds` at most (a wake-up can be missed: callers claim again and loop).
    func waitForRelease(of key: String, milliseconds: Int64) async

    /// Takes a place in the pairing guard for a claim from `address` for a code starting with `prefix`.
    func beginPairing(address: String, prefix: String, now: Int64) async throws -> (PairingGuard.Decision, PairingGuard.Ticket?)
    /// Gives back a pairing claim's place (it was not a failed guess).
    func giveBack(_ ticket: PairingGuard.Ticket) async

    /// Opens an MCP session for the agent (at `initialize`) and returns its id.
    func openMCPSession(agentID: String, protocolVersion: String, now: Int64) async throws -> String
    /// The agent's open MCP session with this id. `epoch` is the principal epoch the caller was
    /// authenticated at: closing a session moves it, so an instance may answer from what it saw
    /// under the same epoch.
    func mcpSession(_ id: String, agentID: String, epoch: String) async throws -> MCPSessionEntry?
    /// Ends the agent's MCP session; `false` when it has no open session with this id.
    func closeMCPSession(_ id: String, agentID: String, now: Int64) async throws -> Bool
    /// The MCP sessions open now (for the metrics): in memory, or not ended in the store.
    func openMCPSessionCount() async throws -> Int

    /// Wakes this instance's calls waiting for the approval request (its decision was just
    /// committed here). Other instances learn it from the store's `NOTIFY` on PostgreSQL.
    func announceDecision(_ requestID: String)
    /// Returns when the request may have been decided, here or on another instance, or after
    /// `milliseconds` at most (the caller reads the request again and loops: a wake-up can be
    /// missed, and a decision by another process on SQLite, the admin CLI's, sends none).
    func waitForDecision(of requestID: String, milliseconds: Int64) async
}

/// The key under which ``ReleaseSignals`` wakes calls waiting for a decision.
enum DecisionSignal {
    static func key(_ requestID: String) -> String { "decision:" + requestID }
}

/// An agent's token buckets.
enum RateBucketKind: String, Sendable {
    /// Read tool calls (and unknown tools).
    case read = "r"
    /// Write tool calls.
    case write = "w"
    /// MCP sessions opened (`initialize`), at the read rate: each is a row on PostgreSQL.
    case mcpSession = "s"
}

/// The answer to ``SharedState/claim(_:fingerprint:now:)``.
enum IdempotencyClaim: Sendable, Equatable {
    /// This call holds the key; release it when the call ends.
    case claimed(IdempotencyClaimHolder)
    /// Another call with the same arguments holds it.
    case inFlight
    /// Another call with other arguments holds it.
    case reusedWithOtherArguments
}

/// A held claim: the key and who holds it (a random token per claim, so that a late release by a
/// holder whose lease ran out cannot remove a newer claim).
struct IdempotencyClaimHolder: Sendable, Equatable {
    let key: String
    let holder: String
}

/// How long shared claims last.
enum IdempotencyLease {
    /// A claim's lease: a holder that dies leaves its key claimed this long at most.
    static let milliseconds: Int64 = 15_000
    /// How often a running call renews its claim.
    static let renewEveryMilliseconds: Int64 = 5_000
    /// How long a duplicate call waits for the first one to finish before it answers
    /// `idempotency_in_flight` (retryable): longer than a lease, so that the retry of a call whose
    /// gateway died is served once the dead claim expires.
    static let waitMilliseconds: Int64 = 20_000
}
