import AgentWire
import Foundation
import Testing

@Suite("What the sidecar relays besides tool calls: pages, log levels, subscriptions", .secretScan)
struct RelayTests {
    @Test("tools/list pagination cursors pass through in both directions, in the upstream's order")
    func pagination() async throws {
        let fixture = try await FixtureServer.start(["--page-size", "2"])
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        var names: [String] = []
        var cursor: JSONValue?
        var id = 1
        repeat {
            let params: JSONValue = cursor.map { ["cursor": $0] } ?? [:]
            let page = try #require(try await sidecar.call(id, "tools/list", params)["result"])
            let tools = page["tools"]?.arrayValue ?? []
            #expect(tools.count <= 2)
            names += tools.compactMap { $0["name"]?.stringValue }
            cursor = page["nextCursor"]
            id += 1
        } while cursor != nil && id < 50
        #expect(names.contains("echo") && names.contains("add"))
        #expect(Set(names).count == names.count, "a page repeated a tool: \(names)")
        // The same walk twice gives the same order.
        let again = try #require(try await sidecar.call(100, "tools/list", [:])["result"]?["tools"]?.arrayValue)
        #expect(again.compactMap { $0["name"]?.stringValue } == Array(names.prefix(2)))
        let bad = try await sidecar.call(101, "tools/list", ["cursor": "not-a-cursor"])
        #expect(bad["error"]?["code"]?.intValue == -32602)
        try await sidecar.validateAgainstSchema()
    }

    @Test("logging/setLevel is answered and passed to a legacy upstream that offers logging")
    func setLevelForwarded() async throws {
        let fixture = try await FixtureServer.start(["--era", "legacy"])
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        let response = try await sidecar.call(1, "logging/setLevel", ["level": "warning"])
        #expect(response["result"] == [:])
        var level: String?
        for _ in 0..<100 where level == nil {
            try await Task.sleep(for: .milliseconds(20))
            level = try await fixture.log()["logLevel"]?.stringValue
        }
        #expect(level == "warning")
        try await sidecar.validateAgainstSchema()
    }

    @Test("a 2026-07-28 client's subscriptions/listen is acknowledged, gets list_changed tagged with its id, and is closed at exit")
    func modernSubscription() async throws {
        let fixture = try await FixtureServer.start(["--era", "modern"])
        let sidecar = try SidecarUnderTest.modern(upstream: fixture.url)
        sidecar.send([
            "jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen",
            "params": ["_meta": SidecarUnderTest.modernMeta, "notifications": ["toolsListChanged": true]],
        ])
        let acknowledged = try await sidecar.child.nextMessage()
        #expect(acknowledged["method"]?.stringValue == "notifications/subscriptions/acknowledged")
        #expect(acknowledged["params"]?["_meta"]?["io.modelcontextprotocol/subscriptionId"] == "sub-1")
        #expect(acknowledged["params"]?["notifications"]?["toolsListChanged"] == true)
        // Let the sidecar open its own subscription upstream, then change the upstream's tools.
        try await Task.sleep(for: .milliseconds(500))
        var others: [JSONValue] = []
        _ = try await sidecar.child.response(
            to: .int(2), timeout: .seconds(45), others: &others,
            sending: {
                sidecar.send([
                    "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": ["name": "change_tools", "arguments": [:], "_meta": SidecarUnderTest.modernMeta],
                ])
            })
        var changed = others.first { $0["method"]?.stringValue == "notifications/tools/list_changed" }
        let deadline = ContinuousClock.now + .seconds(5)
        while changed == nil, ContinuousClock.now < deadline {
            if let message = try? await sidecar.child.nextMessage(timeout: .milliseconds(200)),
                message["method"]?.stringValue == "notifications/tools/list_changed"
            {
                changed = message
            }
        }
        #expect(changed?["params"]?["_meta"]?["io.modelcontextprotocol/subscriptionId"] == "sub-1")
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(5)) == 0)
        let closing = sidecar.child.allStdoutLines.compactMap { try? JSONValue(parsing: $0) }.last { $0["id"] == "sub-1" }
        #expect(closing?["result"]?["resultType"]?.stringValue == "complete")
        try await sidecar.validateAgainstSchema()
    }
}
