import AgentWire

/// Where the tools' tracker data lives: the gateway's own database (`EmbeddedTracker`) or a Plane
/// workspace (`PlaneTracker`).
///
/// Everything before the tool runs is the gateway's and the same on both: rate limits, the tool's
/// scope, the input schema, the grant check, idempotency, the fair writer and the audit. A tracker
/// only runs the tool. For a write it gets the gateway's two steps around the change, so that each
/// implementation can place the change where it keeps its promise of "exactly once":
/// `replay` answers a repeated idempotency key from the gateway's record, and `commit` stores the
/// gateway's record of a change (idempotency record, audit event, issue history). The embedded
/// tracker runs the three in one SQLite transaction; Plane's change happens over HTTP between two
/// gateway transactions and carries an external id, so that a retry finds the change made.
protocol Tracker: Sendable {
    /// What `/healthz`, the logs and the console call this tracker ("embedded" or "plane").
    var kind: TrackerKind { get }

    /// Runs a read tool.
    func read(_ tools: TrackerTools) async throws -> ToolOutput

    /// Every project of the tracker (for the console: its tracker pages and the grants an owner may give).
    func projects() async throws -> [ProjectRecord]

    /// Runs a write tool at most once per `write.externalID`.
    func write(_ tools: TrackerTools, _ write: TrackerWrite) async throws -> JSONValue

    /// Where a person sees the issue in the tracker's own interface, if it has one.
    func issueLink(projectKey: String, number: Int) -> String?
}

/// The trackers a gateway can serve.
public enum TrackerKind: String, Sendable, CaseIterable {
    case embedded
    case plane
}

/// The gateway's part of one write: the transactions around the tracker's change.
struct TrackerWrite: Sendable {
    /// Derived from the agent-scoped idempotency key (or unique per call without one): the same
    /// for every retry of one logical write, different between agents.
    let externalID: String
    /// Runs `body` as one transaction at the gateway's writer, in this agent's turn.
    let transaction: @Sendable (@escaping @Sendable (any StoreWriter) throws -> JSONValue?) async throws -> JSONValue?
    /// The stored answer of an earlier call with the same idempotency key, audited as a replay, if any.
    let replay: @Sendable (any StoreWriter) throws -> JSONValue?
    /// Stores the gateway's record of a change and returns the tool result.
    let commit: @Sendable (ToolOutput, any StoreWriter) throws -> JSONValue
}

/// The embedded tracker: tracker tables in the gateway's own database. A write's replay check,
/// change and record are one transaction, so they commit together or not at all.
struct EmbeddedTracker: Tracker {
    let store: any GatewayStore

    var kind: TrackerKind { .embedded }

    func read(_ tools: TrackerTools) async throws -> ToolOutput {
        try await store.read { try tools.run(reader: $0) }
    }

    func projects() async throws -> [ProjectRecord] { try await store.read { try $0.projects() } }

    func write(_ tools: TrackerTools, _ write: TrackerWrite) async throws -> JSONValue {
        let result = try await write.transaction { store in
            if let replayed = try write.replay(store) { return replayed }
            return try write.commit(try tools.run(writer: store), store)
        }
        guard let result else { throw GatewayError.internalError }
        return result
    }

    func issueLink(projectKey: String, number: Int) -> String? { nil }
}
