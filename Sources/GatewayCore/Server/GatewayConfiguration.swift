/// Settings of one running gateway.
public struct GatewayConfiguration: Sendable {
    /// Lifetime of a session token.
    public var sessionTTLSeconds: Int = 3600
    /// Per-agent token bucket for read tool calls (burst = rate).
    public var readsPerMinute: Int = 6000
    /// Per-agent token bucket for write tool calls (burst = rate).
    public var writesPerMinute: Int = 1200
    /// Failed pairing claims allowed per client address per minute before 429.
    public var pairingFailuresPerMinute: Int = 5
    /// How long a pairing code stays valid.
    public var pairingCodeTTLSeconds: Int = 600
    /// How far a session request's timestamp may be from the gateway's clock.
    public var timestampSkewSeconds: Int = 300
    /// How long a stored write result is replayed to a retry with the same idempotency key.
    public var idempotencyReplaySeconds: Int = 86_400
    /// Origins a session signature may name; empty means "derive from the listen address".
    public var publicOrigins: [String] = []
    public var clock: GatewayClock = .system

    public init() {}
}

/// MCP protocol revisions the gateway speaks over Streamable HTTP.
public enum MCPVersions {
    public static let supported = ["2025-03-26", "2025-06-18", "2025-11-25"]
    public static let latest = "2025-11-25"
}
