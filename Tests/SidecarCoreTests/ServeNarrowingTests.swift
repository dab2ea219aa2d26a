import AgentWire
import TestSupport
import Testing

@testable import SidecarCore

/// `ToolNarrowing` (`--read-only`, `--exclude-tool`) over `MemoryUpstream`, whose tools are `echo`
/// (read-only), `write` (not), `plain` (no hint), `hidden` (read-only), `progress`, `slow`
/// (read-only) and one whose name is not a string.
@Suite struct ToolNarrowingTests {
    static var upstreamTools: [JSONValue] { MemoryUpstream.tools.arrayValue ?? [] }

    static func names(_ tools: [JSONValue]) -> [String] { tools.compactMap { $0["name"]?.stringValue } }

    @Test func withoutNarrowingEveryNamedToolIsVisible() {
        let narrowing = ToolNarrowing(readOnly: false, excludedTools: [], upstream: MemoryUpstream(mode: .legacy))
        #expect(Self.names(narrowing.visibleTools(Self.upstreamTools)) == ["echo", "write", "plain", "hidden", "progress", "slow"])
        #expect(narrowing.visibleTools(Self.upstreamTools).count == 6, "a tool without a string name is dropped")
    }

    @Test func readOnlyKeepsOnlyToolsHintedReadOnlyAndExcludedToolsGo() {
        let narrowing = ToolNarrowing(readOnly: true, excludedTools: ["hidden"], upstream: MemoryUpstream(mode: .legacy))
        #expect(Self.names(narrowing.visibleTools(Self.upstreamTools)) == ["echo", "progress", "slow"])
        let excludeOnly = ToolNarrowing(readOnly: false, excludedTools: ["hidden", "write"], upstream: MemoryUpstream(mode: .legacy))
        #expect(Self.names(excludeOnly.visibleTools(Self.upstreamTools)) == ["echo", "plain", "progress", "slow"])
    }

    @Test func callsAreRefusedWithAReasonBeforeTheUpstreamIsAsked() async {
        let narrowing = ToolNarrowing(readOnly: true, excludedTools: ["hidden"], upstream: MemoryUpstream(mode: .legacy))
        // Nothing listed yet: the hints are looked up with tools/list first.
        #expect(await narrowing.refusal(toolName: "echo") == nil)
        #expect(await narrowing.refusal(toolName: "hidden") == "Unknown tool: hidden (hidden by --exclude-tool on this sidecar)")
        #expect(await narrowing.refusal(toolName: "write")?.hasPrefix("tool write is not read-only, and this sidecar runs with --read-only") == true)
        let plain = await narrowing.refusal(toolName: "plain")
        #expect(plain?.contains("is not read-only") == true, "no hint counts as not read-only: \(plain ?? "allowed")")
        #expect(await narrowing.refusal(toolName: "nosuchtool") == "Unknown tool: nosuchtool")
    }

    @Test func excludingAloneAllowsEverythingElse() async {
        let narrowing = ToolNarrowing(readOnly: false, excludedTools: ["write"], upstream: MemoryUpstream(mode: .unreachable))
        #expect(await narrowing.refusal(toolName: "write") != nil)
        #expect(await narrowing.refusal(toolName: "plain") == nil)
        #expect(await narrowing.refusal(toolName: "anything") == nil, "without --read-only nothing is looked up")
    }

    @Test func hintsAreRememberedAndForgottenWhenTheToolsChange() async {
        let narrowing = ToolNarrowing(readOnly: true, excludedTools: [], upstream: MemoryUpstream(mode: .unreachable))
        // The upstream cannot be asked, so only a listed hint can allow a call.
        #expect(await narrowing.refusal(toolName: "echo") == "Unknown tool: echo")
        _ = narrowing.visibleTools(Self.upstreamTools)
        #expect(await narrowing.refusal(toolName: "echo") == nil)
        narrowing.forgetHints()
        #expect(await narrowing.refusal(toolName: "echo") == "Unknown tool: echo")
    }

    // MARK: Through a server

    @Test func aNarrowedServerListsAndCallsOnlyWhatItMay() async throws {
        var options = ServeOptions()
        options.readOnly = true
        options.excludedTools = ["hidden"]
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy), options: options)
        _ = await serve.request(initialize(id: 0, version: "2025-11-25"))
        let listed = try #require(await serve.request(["jsonrpc": "2.0", "id": 1, "method": "tools/list"])?["result"]?["tools"]?.arrayValue)
        #expect(Self.names(listed) == ["echo", "progress", "slow"])

        let refused = try #require(await serve.request(call(id: 2, tool: "write"))?["error"])
        #expect(refused["code"] == -32602)
        #expect(refused["message"]?.stringValue?.contains("--read-only") == true)
        let hidden = try #require(await serve.request(call(id: 3, tool: "hidden"))?["error"])
        #expect(hidden["code"] == -32602)
        // An allowed call reaches the upstream (which echoes its arguments).
        let echoed = try #require(await serve.request(call(id: 4, tool: "echo", arguments: ["n": 1]))?["result"])
        #expect(echoed["structuredContent"]?["arguments"] == ["n": 1])
        _ = await serve.stop()
    }
}

func call(id: Int, tool: String, arguments: JSONValue = [:], meta: JSONObject? = nil) -> JSONValue {
    var params: JSONObject = ["name": .string(tool), "arguments": arguments]
    if let meta { params["_meta"] = .object(meta) }
    return ["jsonrpc": "2.0", "id": .int(id), "method": "tools/call", "params": .object(params)]
}
