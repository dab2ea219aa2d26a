import AgentWire
import Foundation
import Testing

@Suite("Tool calls through the sidecar to a real Streamable HTTP upstream", .secretScan)
struct ToolCallTests {
    @Test("fields the sidecar has never heard of pass through untouched, in tools and results", arguments: ["json", "sse"])
    func unknownFieldsPassThrough(mode: String) async throws {
        let fixture = try await FixtureServer.start(["--response-mode", mode])
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, revision: "2025-11-25")
        let tools = try await sidecar.call(1, "tools/list")
        let echo = try #require(tools["result"]?["tools"]?.arrayValue?.first { $0["name"]?.stringValue == "echo" })
        #expect(echo["x-fixture-future"]?.jsonText == #"{"nested":[1,2.50,"é"]}"#)
        #expect(echo["icons"] != nil && echo["outputSchema"] != nil && echo["execution"] != nil && echo["_meta"] != nil)

        let result = try #require(try await sidecar.callTool(2, "echo", ["text": "unknown fields"])["result"])
        #expect(result["x-fixture-future-result"] == true)
        #expect(result["structuredContent"]?["text"]?.stringValue == "unknown fields")
        #expect(result["_meta"] != nil)
        #expect((result["content"]?[0]?.objectValue?.count ?? 0) > 2, "the content item's extra field was dropped")
        try await sidecar.validateAgainstSchema()
    }

    @Test("a 2 MB result arrives whole, as one line", arguments: ["json", "sse"])
    func largeResult(mode: String) async throws {
        let fixture = try await FixtureServer.start(["--response-mode", mode])
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        let response = try await sidecar.callTool(1, "big", ["bytes": 2_000_000], timeout: .seconds(30))
        let text = try #require(response["result"]?["content"]?[0]?["text"]?.stringValue)
        #expect(text.utf8.count == 2_000_000)
        try await sidecar.validateAgainstSchema()
    }

    @Test("a slow call never delays a ping or another call")
    func concurrency() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        sidecar.send(["jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["name": "slow", "arguments": ["ms": 3000]]])
        sidecar.send(["jsonrpc": "2.0", "id": 2, "method": "ping"])
        sidecar.send(["jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": ["name": "echo", "arguments": ["text": "fast"]]])
        var order: [Int] = []
        for _ in 0..<3 {
            let message = try await sidecar.child.nextMessage(timeout: .seconds(20))
            if let id = message["id"]?.intValue { order.append(id) }
        }
        #expect(order.last == 1, "the slow call should finish last, got \(order)")
        #expect(Set(order) == [1, 2, 3])
        try await sidecar.validateAgainstSchema()
    }

    @Test("notifications/cancelled aborts the upstream call and no response is sent for it")
    func cancellation() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        sidecar.send(["jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": ["name": "slow", "arguments": ["ms": 20_000]]])
        try await Task.sleep(for: .milliseconds(300))
        sidecar.send(["jsonrpc": "2.0", "method": "notifications/cancelled", "params": ["requestId": 7, "reason": "test"]])
        let next = try await sidecar.call(8, "ping")
        #expect(next["id"] == 8)
        // Give the upstream time to see the cancellation; then check nothing answered id 7.
        var cancelledSeen = false
        for _ in 0..<600 where !cancelledSeen {  // a bound of 30 s, for loaded machines
            try await Task.sleep(for: .milliseconds(50))
            cancelledSeen = !(try await fixture.log()["cancelled"]?.arrayValue ?? []).isEmpty
        }
        #expect(cancelledSeen, "the upstream never learned of the cancellation")
        let afterwards = try await sidecar.callTool(9, "echo", ["text": "still serving"])
        #expect(afterwards["result"]?["content"]?[0]?["text"]?.stringValue == "still serving")
        #expect(!sidecar.child.allStdoutLines.contains { (try? JSONValue(parsing: $0))?["id"] == 7 })
        try await sidecar.validateAgainstSchema()
    }

    @Test("progress notifications from the upstream reach the client with its progressToken", arguments: ["json", "sse"])
    func progressRelay(mode: String) async throws {
        let fixture = try await FixtureServer.start(["--response-mode", mode])
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        sidecar.send([
            "jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": ["name": "progress", "arguments": ["steps": 3, "intervalMs": 20], "_meta": ["progressToken": "tok-1"]],
        ])
        var others: [JSONValue] = []
        let response = try await sidecar.child.response(to: 5, others: &others)
        #expect(response["result"] != nil)
        let progress = others.filter { $0["method"]?.stringValue == "notifications/progress" }
        #expect(progress.count == 3)
        #expect(progress.allSatisfy { $0["params"]?["progressToken"]?.stringValue == "tok-1" })
        try await sidecar.validateAgainstSchema()
    }

    @Test("notifications/tools/list_changed from the upstream reaches the client")
    func listChangedRelay() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        // Let the sidecar open its notification stream to the upstream.
        try await Task.sleep(for: .milliseconds(500))
        var others: [JSONValue] = []
        _ = try await sidecar.child.response(
            to: .int(1), timeout: .seconds(45), others: &others,
            sending: {
                sidecar.send(["jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["name": "change_tools", "arguments": [:]]])
            })
        var changed = others.contains { $0["method"]?.stringValue == "notifications/tools/list_changed" }
        let deadline = ContinuousClock.now + .seconds(5)
        while !changed, ContinuousClock.now < deadline {
            if let message = try? await sidecar.child.nextMessage(timeout: .milliseconds(200)) {
                changed = message["method"]?.stringValue == "notifications/tools/list_changed"
            }
        }
        #expect(changed)
        let tools = try await sidecar.call(2, "tools/list")
        #expect(tools["result"]?["tools"]?.arrayValue?.contains { $0["name"]?.stringValue == "extra_tool" } == true)
        try await sidecar.validateAgainstSchema()
    }

    @Test("every tools/call carries a fresh ULID Idempotency-Key and the negotiated MCP-Protocol-Version")
    func idempotencyKeyAndHeaders() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        let first = try await sidecar.callTool(1, "echo", ["text": "a"])
        let second = try await sidecar.callTool(2, "echo", ["text": "b"])
        let firstKey = try #require(first["result"]?["structuredContent"]?["headers"]?["idempotency-key"]?.stringValue)
        let secondKey = try #require(second["result"]?["structuredContent"]?["headers"]?["idempotency-key"]?.stringValue)
        #expect(firstKey.count == 26 && secondKey.count == 26 && firstKey != secondKey)
        #expect(first["result"]?["structuredContent"]?["headers"]?["mcp-protocol-version"]?.stringValue != nil)
        try await sidecar.validateAgainstSchema()
    }

    @Test("--read-only and --exclude-tool narrow what is listed and callable, never widen it")
    func narrowing() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, extra: ["--read-only", "--exclude-tool", "headers"])
        let tools = try await sidecar.call(1, "tools/list")
        let names = Set(tools["result"]?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [])
        #expect(names.contains("echo"))
        #expect(!names.contains("write_note"))
        #expect(!names.contains("headers"))
        let write = try await sidecar.callTool(2, "write_note", ["note": "x"])
        #expect(write["error"]?["code"]?.intValue == -32602)
        let hidden = try await sidecar.callTool(3, "headers", [:])
        #expect(hidden["error"]?["code"]?.intValue == -32602)
        let log = try await fixture.log()
        #expect(!(log["requests"]?.arrayValue ?? []).contains { $0["tool"]?.stringValue == "write_note" })
        try await sidecar.validateAgainstSchema()
    }

    @Test("a fresh sidecar learns read-only hints on its own before refusing a call")
    func readOnlyWithoutPriorList() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, extra: ["--read-only"])
        let allowed = try await sidecar.callTool(1, "echo", ["text": "ok"])
        #expect(allowed["result"]?["content"]?[0]?["text"]?.stringValue == "ok")
        let refused = try await sidecar.callTool(2, "write_note", ["note": "x"])
        #expect(refused["error"]?["code"]?.intValue == -32602)
        try await sidecar.validateAgainstSchema()
    }
}

extension ChildProcess {
    /// Sends with `sending`, then waits for the response to `id`.
    func response(to id: JSONValue, timeout: Duration, others: inout [JSONValue], sending: () -> Void) async throws -> JSONValue {
        sending()
        return try await response(to: id, timeout: timeout, others: &others)
    }
}
