import AgentWire
import Foundation
import TestSupport
import Testing

/// The W3C trace context from the MCP client through the real sidecar to the real gateway, as MCP
/// 2026-07-28 carries it in `_meta`, and the JSON log lines both write with `--log-format json`.
@Suite("Trace context and JSON logs, sidecar to gateway", .secretScan)
struct TraceContextTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let hostSpan = "00f067aa0ba902b7"

    /// Every stderr line parsed as JSON (a line that is not one fails the test).
    static func jsonLines(_ stderr: String, of program: String) -> [JSONValue] {
        stderr.split(separator: "\n").compactMap { line in
            let value = try? JSONValue(parsing: String(line))
            #expect(value?.objectValue != nil, "\(program) wrote a line that is not a JSON object: \(line.prefix(200))")
            return value
        }
    }

    /// Waits (bounded) until `find` sees a line in `stderr()`.
    static func line(
        in stderr: @escaping () -> String, of program: String, where find: (JSONValue) -> Bool
    ) async throws -> JSONValue {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let found = jsonLines(stderr(), of: program).first(where: find) { return found }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("no such line from \(program) within 10 s; stderr: \(stderr().suffix(2000))")
        throw TestTimeout(description: "log line missing")
    }

    @Test("the host's trace goes on through the sidecar's span to the gateway's, and each side logs it as JSON")
    func traceFromHostToGateway() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired(serveArguments: ["--log-format", "json"])
        let sidecar = try world.serve(extra: ["--log-format", "json"])
        _ = try await sidecar.initialize()

        let meta: JSONValue = [
            "traceparent": .string("00-\(Self.traceID)-\(Self.hostSpan)-01"), "tracestate": "congo=t61rcWkgMzE",
            "baggage": "tenant=baggage-not-for-logs",
        ]
        let title = "argument text that no log may show"
        let created = try await sidecar.callTool(1, "create_issue", ["project": "WEB", "title": .string(title)], meta: meta)
        #expect(created["result"]?["isError"] == false, "\(created)")

        let sidecarLine = try await Self.line(in: { sidecar.child.stderr }, of: "agent-sidecar") {
            $0["trace_id"]?.stringValue == Self.traceID && ($0["message"]?.stringValue ?? "").hasPrefix("tools/call create_issue")
        }
        #expect(sidecarLine["parent_span_id"]?.stringValue == Self.hostSpan)
        #expect(sidecarLine["outcome"] == "result")
        let sidecarSpan = try #require(sidecarLine["span_id"]?.stringValue)
        #expect(sidecarSpan.count == 16 && sidecarSpan != Self.hostSpan)
        #expect(sidecarLine["level"] == "info" && sidecarLine["logger"] == "agent-sidecar")

        let gatewayLine = try await Self.line(in: { gateway.child.stderr }, of: "agent-gateway") {
            $0["trace_id"]?.stringValue == Self.traceID && $0["tool"] == "create_issue"
        }
        #expect(gatewayLine["parent_span_id"]?.stringValue == sidecarSpan, "the gateway's parent is the sidecar's span")
        #expect(gatewayLine["outcome"] == "ok")
        #expect(gatewayLine["agent"]?.stringValue == gateway.agentID)
        #expect(gatewayLine["span_id"]?.stringValue != sidecarSpan)

        // A call without a trace, and one with a malformed traceparent: each gets a new trace, the
        // same on both sides.
        _ = try await sidecar.callTool(2, "list_projects")
        _ = try await sidecar.callTool(3, "list_projects", meta: ["traceparent": "00-NOT-A-TRACE-01"])
        let fresh = Self.jsonLines(sidecar.child.stderr, of: "agent-sidecar").filter {
            ($0["message"]?.stringValue ?? "").hasPrefix("tools/call list_projects")
        }
        try #require(fresh.count == 2, "\(sidecar.child.stderr.suffix(2000))")
        for line in fresh {
            let trace = try #require(line["trace_id"]?.stringValue)
            #expect(trace != Self.traceID && trace.count == 32)
            #expect(line["parent_span_id"] == nil)
            _ = try await Self.line(in: { gateway.child.stderr }, of: "agent-gateway") {
                $0["trace_id"]?.stringValue == trace && $0["parent_span_id"] == line["span_id"]
            }
        }

        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
        let logs = sidecar.child.stderr + gateway.child.stderr
        #expect(!logs.contains(title), "argument text in a log")
        #expect(!logs.contains("baggage-not-for-logs"), "baggage in a log")
        #expect(!logs.contains("t61rcWkgMzE"), "tracestate in a log")
        _ = Self.jsonLines(logs, of: "both")
    }

    @Test("an unknown --log-format or --log-level is refused with the choices")
    func unknownLogFormat() async throws {
        let world = try PairingWorld()
        let result = try await world.sidecar(["status", "--log-format", "xml"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("unknown log format 'xml'; use text or json"), "\(result.stderr)")
        let gateway = try await Command.run(
            TestGateway.binary, ["serve", "--db", world.path("g.sqlite"), "--port", "0", "--log-level", "loud"], environment: [:])
        #expect(gateway.status != 0)
        #expect(gateway.stderr.contains("unknown log level 'loud'; use one of trace, debug"), "\(gateway.stderr)")
    }
}
