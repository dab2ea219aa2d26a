import AgentWire
import Testing

@testable import SidecarCore

/// `setup --approve` for Claude Code: permission rules in `.claude/settings.local.json`, ours only.
@Suite struct SetupApprovalTests {
    static let tools: [AgentsMarkdown.Tool] = [
        .init(name: "list_projects", title: "List projects", readOnly: true, scope: "project:read"),
        .init(name: "get_issue", title: "Get issue", readOnly: true, scope: "project:read"),
        .init(name: "create_issue", title: "Create issue", readOnly: false, scope: "issue:create"),
    ]
    static let path = "/p/.claude/settings.local.json"

    static func merge(_ existing: String?, _ approval: ToolApproval, server: String = "agent-sidecar") throws -> JSONValue? {
        guard
            let bytes = try ClaudeCodeSettings.merge(
                existing: existing.map { Array($0.utf8) }, serverName: server, approval: approval, tools: tools, path: path)
        else { return nil }
        return try JSONValue(parsing: bytes)
    }

    static func strings(_ value: JSONValue?) -> [String] { value?.arrayValue?.compactMap(\.stringValue) ?? [] }

    @Test func eachChoiceBecomesClaudeCodeRules() throws {
        let writes = try #require(try Self.merge(nil, .writes))
        #expect(Self.strings(writes["permissions"]?["allow"]) == ["mcp__agent-sidecar__list_projects", "mcp__agent-sidecar__get_issue"])
        #expect(writes["permissions"]?["ask"] == nil)
        let none = try #require(try Self.merge(nil, .none))
        #expect(Self.strings(none["permissions"]?["allow"]) == ["mcp__agent-sidecar"])
        let all = try #require(try Self.merge(nil, .all))
        #expect(Self.strings(all["permissions"]?["ask"]) == ["mcp__agent-sidecar"])
        #expect(all["permissions"]?["allow"] == nil)
    }

    @Test func keepsEverythingElseAndChangesOnlyOurRules() throws {
        let mine = """
            {
              "permissions": {
                "allow": ["Bash(npm test)", "mcp__agent-sidecar-work__get_issue"],
                "deny": ["mcp__agent-sidecar__create_issue"]
              },
              "model": "opus"
            }
            """
        let writes = try #require(try Self.merge(mine, .writes))
        #expect(
            Self.strings(writes["permissions"]?["allow"]) == [
                "Bash(npm test)", "mcp__agent-sidecar-work__get_issue", "mcp__agent-sidecar__list_projects", "mcp__agent-sidecar__get_issue",
            ])
        #expect(Self.strings(writes["permissions"]?["deny"]) == ["mcp__agent-sidecar__create_issue"], "deny is never touched")
        #expect(writes["model"] == "opus")

        // Same choice again: nothing to write. Another choice: ours replaced, the rest kept.
        let written = PrettyJSON.render(writes)
        let text = String(decoding: written, as: UTF8.self)
        #expect(
            try ClaudeCodeSettings.merge(existing: written, serverName: "agent-sidecar", approval: .writes, tools: Self.tools, path: Self.path) == nil
        )
        let all = try #require(try Self.merge(text, .all))
        #expect(Self.strings(all["permissions"]?["allow"]) == ["Bash(npm test)", "mcp__agent-sidecar-work__get_issue"])
        #expect(Self.strings(all["permissions"]?["ask"]) == ["mcp__agent-sidecar"])

        // Logout takes out exactly ours.
        let removed = try #require(try ClaudeCodeSettings.remove(existing: written, serverName: "agent-sidecar", path: Self.path))
        let left = try JSONValue(parsing: removed)
        #expect(Self.strings(left["permissions"]?["allow"]) == ["Bash(npm test)", "mcp__agent-sidecar-work__get_issue"])
        #expect(Self.strings(left["permissions"]?["deny"]) == ["mcp__agent-sidecar__create_issue"])
        #expect(try ClaudeCodeSettings.remove(existing: removed, serverName: "agent-sidecar", path: Self.path) == nil)
    }

    @Test func aFileOfOnlyOurRulesGoesAwayOnLogout() throws {
        let written = try #require(
            try ClaudeCodeSettings.merge(existing: nil, serverName: "agent-sidecar", approval: .none, tools: Self.tools, path: Self.path))
        #expect(try ClaudeCodeSettings.remove(existing: written, serverName: "agent-sidecar", path: Self.path) == [])
        // No read tool known (the gateway's setup data was unavailable) and no file: nothing to write.
        #expect(try ClaudeCodeSettings.merge(existing: nil, serverName: "agent-sidecar", approval: .writes, tools: [], path: Self.path) == nil)
    }

    @Test func refusesWhatItCannotMergeWithoutLoss() {
        #expect(throws: SetupError(.unparseableConfig, "")) { try Self.merge("{ // mine\n}", .writes) }
        #expect(throws: SetupError(.unparseableConfig, "")) { try Self.merge(#"{"permissions": []}"#, .writes) }
        #expect(throws: SetupError(.unparseableConfig, "")) { try Self.merge(#"{"permissions": {"allow": "x"}}"#, .writes) }
    }
}
