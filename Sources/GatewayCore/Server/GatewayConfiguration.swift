import AgentWire
import Logging
import NIOCore

/// Settings of one running gateway.
public struct GatewayConfiguration: Sendable {
    /// Where each `tools/call` leaves one line (tool, outcome, milliseconds, agent and the W3C
    /// trace ids; never argument text): `serve` logs them at info on stderr, in-process gateways
    /// (the tests) nowhere.
    public var callLog = Logger(label: "agent-gateway.calls") { _ in SwiftLogNoOpLogHandler() }
    /// The capability policy at start (`serve --policy FILE`); the built-in one makes reads low and writes medium.
    public var policy = CapabilityPolicy.builtIn
    /// Where new approval requests are announced, if anywhere (`serve --approval-webhook`).
    public var approvalWebhook: ApprovalWebhookSettings?
    /// Lifetime of a session token (15 minutes: a token copied out of a killed sidecar's memory
    /// works at most this long; the sidecar renews a minute before the end).
    public var sessionTTLSeconds: Int = 900
    /// Per-agent token bucket for read tool calls (burst = rate).
    public var readsPerMinute: Int = 6000
    /// Per-agent token bucket for write tool calls (burst = rate).
    public var writesPerMinute: Int = 1200
    /// Failed pairing claims per client address per minute that are evaluated at once; further
    /// guesses are slowed by a doubling delay (1 s, 2 s, 4 s, …), and get 429 past a 10 s wait.
    public var pairingFailuresPerMinute: Int = 5
    /// The same for every claim naming one code prefix (its first four characters), per 10 minutes.
    public var pairingFailuresPerPrefix: Int = 5
    /// The same for the whole gateway, per minute.
    public var pairingFailuresPerMinuteGlobal: Int = 30
    /// How long a pairing code stays valid.
    public var pairingCodeTTLSeconds: Int = 600
    /// How far a session request's timestamp may be from the gateway's clock.
    public var timestampSkewSeconds: Int = 300
    /// How long a stored write result is replayed to a retry with the same idempotency key.
    public var idempotencyReplaySeconds: Int = 86_400
    /// Origins a session signature may name; empty means "derive from the listen address".
    public var publicOrigins: [String] = []
    /// Seconds a connection's request header may take to arrive: from the accept for the first
    /// request, from its first byte for a later one.
    public var headerTimeoutSeconds: Double = 10
    /// Seconds a request body may take to arrive after its header.
    public var bodyTimeoutSeconds: Double = 30
    /// Seconds a keep-alive connection may stay idle between requests (also the bound on writing
    /// a response to a client that does not read it).
    public var idleTimeoutSeconds: Double = 60
    /// Open connections in total; at the cap a new connection replaces the longest-idle one, or is
    /// refused with 503 when none is idle.
    public var maxConnections: Int = 1024
    /// Open connections per client address (IPv4 address or IPv6 /64), with the same rule.
    public var maxConnectionsPerAddress: Int = 128
    /// A console session ends after this long without a request (idle expiry).
    public var consoleIdleSeconds: Int = 1800
    /// A console session ends this long after sign-in, however busy (absolute expiry).
    public var consoleAbsoluteSeconds: Int = 43_200
    /// An agent with an open work session and no call for this long shows as stale.
    public var staleAfterSeconds: Int = 900
    /// The request header an authenticating reverse proxy sets to the signed-in user's id; nil
    /// (the default) trusts no such header.
    public var proxyUserHeader: String? = nil
    /// The exact addresses (IPv4 or IPv6) the proxy connects from; the header is ignored from any other.
    public var trustedProxyAddresses: [String] = []
    public var clock: GatewayClock = .system
    /// The Plane workspace the tools work on; `nil` serves the embedded tracker.
    public var plane: PlaneSettings? = nil

    public init() {}

    /// Whether console cookies carry `Secure`: when the gateway's public origin is https.
    public var secureCookies: Bool { publicOrigins.contains { $0.hasPrefix("https://") } }
}

/// MCP protocol revisions the gateway speaks over Streamable HTTP.
/// The MCP revisions the gateway's `/mcp` serves: the `initialize` ones from 2025-03-26 on.
public enum MCPVersions {
    public static let supported = ProtocolRevision.legacy.filter { $0 >= .v2025_03_26 }.map(\.rawValue)
    public static let latest = ProtocolRevision.latestLegacy.rawValue
}

extension GatewayConfiguration {
    var connectionLimits: ConnectionLimits {
        func amount(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64((seconds * 1e9).rounded())) }
        return ConnectionLimits(
            headerTimeout: amount(headerTimeoutSeconds), bodyTimeout: amount(bodyTimeoutSeconds), idleTimeout: amount(idleTimeoutSeconds),
            maxConnections: maxConnections, maxConnectionsPerAddress: maxConnectionsPerAddress)
    }
}
