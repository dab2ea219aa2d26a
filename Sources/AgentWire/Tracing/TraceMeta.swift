import Logging
import W3CTraceContext

/// The W3C trace context an MCP request carries in `params._meta` (MCP 2026-07-28, basic/index,
/// "OpenTelemetry trace context"): `traceparent`, `tracestate` and `baggage`, in the W3C Trace
/// Context and Baggage formats. The sidecar continues the host's trace (or starts one) and passes it
/// to the gateway; each side logs its own span with the trace id (docs/operations.md, "Logs").
///
/// Parsing is swift-w3c-trace-context's. What comes from a client is bounded before it is parsed,
/// and an invalid `traceparent` starts a new trace, as the W3C recommendation says; an invalid
/// `tracestate` is dropped. `baggage` is passed on unread when it is a string within the W3C
/// limit, and never logged: it may carry anything the host put there.
public enum TraceMeta {
    public static let traceparentKey = "traceparent"
    public static let tracestateKey = "tracestate"
    public static let baggageKey = "baggage"

    /// A `traceparent` of version 00 is exactly 55 characters.
    static let traceparentLength = 55
    /// The W3C limit a vendor must propagate at least: 512 characters of `tracestate`.
    public static let maximumTraceStateBytes = 512
    /// The W3C Baggage limit: 8192 bytes.
    public static let maximumBaggageBytes = 8192

    /// The trace context in `meta` when its `traceparent` is valid, with its `tracestate` if that
    /// is valid too; nil when there is none or it is invalid.
    public static func incoming(_ meta: JSONObject?) -> TraceContext? {
        guard let parent = meta?[traceparentKey]?.stringValue, parent.utf8.count == traceparentLength else { return nil }
        var state = meta?[tracestateKey]?.stringValue
        if let text = state, text.utf8.count > maximumTraceStateBytes || !text.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) {
            state = nil
        }
        // The parser takes "=x" as a member with an empty key; W3C keys are never empty.
        if let context = try? TraceContext(traceParentHeaderValue: parent, traceStateHeaderValue: state),
            !context.state.contains(where: { $0.vendor.rawValue.isEmpty })
        {
            return context
        }
        // A valid traceparent with a tracestate that does not parse: keep the trace, drop the state.
        return try? TraceContext(traceParentHeaderValue: parent)
    }

    /// The context of the next hop's work: `incoming`'s trace with a new span id, or a new sampled
    /// trace when there is none.
    public static func span(after incoming: TraceContext?) -> TraceContext {
        guard let incoming else {
            return TraceContext(traceID: .random(), spanID: .random(), flags: .sampled, state: TraceState())
        }
        return TraceContext(traceID: incoming.traceID, spanID: .random(), flags: incoming.flags, state: incoming.state)
    }

    /// `meta` with `context` as its `traceparent` and `tracestate`; a `baggage` that is not a
    /// string within the W3C limit is removed, any other is kept as it was.
    public static func writing(_ context: TraceContext, into meta: JSONObject?) -> JSONObject {
        var meta = meta ?? JSONObject()
        meta[traceparentKey] = .string(context.traceParentHeaderValue)
        meta[tracestateKey] = context.traceStateHeaderValue.map { .string($0) }
        if let baggage = meta[baggageKey], baggage.stringValue.map({ $0.utf8.count > maximumBaggageBytes }) ?? true {
            meta[baggageKey] = nil
        }
        return meta
    }

    /// Log metadata for the work of `span`, a child of `parent` (the span that called it, if any):
    /// `trace_id`, `span_id` and `parent_span_id`, hex as in the `traceparent`.
    public static func logMetadata(span: TraceContext, parent: TraceContext?) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["trace_id": "\(span.traceID)", "span_id": "\(span.spanID)"]
        if let parent { metadata["parent_span_id"] = "\(parent.spanID)" }
        return metadata
    }
}
