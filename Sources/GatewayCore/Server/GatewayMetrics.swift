import AgentWire
import CoreMetrics
import Metrics
import Prometheus

/// The gateway's Prometheus metrics (issue 18), recorded through swift-metrics into a
/// swift-prometheus registry of this gateway's own (no global `MetricsSystem.bootstrap`, so several
/// gateways in one process, as in the tests, never share counters), and served by
/// ``GatewayMetricsServer`` on a listener of its own.
///
/// Labels carry only values from fixed sets: tool names from ``ToolCatalog`` (any other name is
/// `unknown`), outcomes from ``GatewayErrorCode`` or `ok`/`replayed`/`failed`, buckets `read` and
/// `write`. Never an argument, a token, an id or a name a caller chose.
public final class GatewayMetrics: Sendable {
    public static let callsName = "agent_gateway_tool_calls_total"
    public static let durationName = "agent_gateway_tool_call_duration_seconds"
    public static let rateLimitedName = "agent_gateway_rate_limited_total"
    public static let approvalsWaitingName = "agent_gateway_approvals_waiting"
    public static let mcpSessionsName = "agent_gateway_mcp_sessions_open"

    let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let approvalsWaiting: CoreMetrics.Meter
    let mcpSessions: CoreMetrics.Gauge

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // From 1 ms (a cached read) to 60 s (a call that waited for an approval).
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
            .seconds(30), .seconds(60),
        ]
        self.factory = factory
        approvalsWaiting = CoreMetrics.Meter(label: Self.approvalsWaitingName, dimensions: [], factory: factory)
        mcpSessions = CoreMetrics.Gauge(label: Self.mcpSessionsName, dimensions: [], factory: factory)
        // Present from the first scrape, before any call.
        approvalsWaiting.set(0)
        mcpSessions.record(0)
    }

    /// The tool's label: its catalog name, or `unknown`.
    static func toolLabel(_ name: String) -> String { ToolCatalog.byName[name] != nil ? name : "unknown" }

    /// The outcome's label: `ok`, `replayed`, a gateway error code, or `failed`.
    static func outcomeLabel(_ outcome: String) -> String {
        if outcome == "ok" || outcome == "replayed" || GatewayErrorCode(rawValue: outcome) != nil { return outcome }
        return "failed"
    }

    /// One tool call, answered or refused.
    func recordCall(tool: String, outcome: String, nanoseconds: UInt64) {
        let tool = Self.toolLabel(tool)
        let outcome = Self.outcomeLabel(outcome)
        CoreMetrics.Counter(label: Self.callsName, dimensions: [("tool", tool), ("outcome", outcome)], factory: factory).increment()
        CoreMetrics.Timer(label: Self.durationName, dimensions: [("tool", tool)], factory: factory).recordNanoseconds(
            Int64(min(nanoseconds, UInt64(Int64.max))))
    }

    /// A call refused by the per-agent rate limit.
    func recordRateLimited(write: Bool) {
        CoreMetrics.Counter(label: Self.rateLimitedName, dimensions: [("bucket", write ? "write" : "read")], factory: factory).increment()
    }

    /// The Prometheus text exposition, with the MCP session count read now.
    func exposition(openMCPSessions: Int?) -> [UInt8] {
        if let openMCPSessions { mcpSessions.record(openMCPSessions) }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}
