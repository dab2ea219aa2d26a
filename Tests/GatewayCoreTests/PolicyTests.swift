import AgentWire
import Foundation
import GatewayCore
import Testing

/// The capability policy file (issue 17): parsing, validation with line and reason, the effective
/// table, the demo policy and the schema published with it, and reloading on SIGHUP.
@Suite("Capability policy file")
struct PolicyTests {
    static let demoPath = repositoryRoot() + "/docs/policy-demo.yaml"

    @Test func builtInDefaultsMakeReadsLowAndWritesMedium() {
        let policy = CapabilityPolicy.builtIn
        for tool in ToolCatalog.all {
            let decision = policy.decision(for: tool, project: "WEB", arguments: [:])
            #expect(decision.tier == (tool.readOnly ? .low : .medium), "\(tool.name)")
        }
    }

    @Test func demoPolicyMakesDoneMovesAndNewMembersHigh() throws {
        let policy = try PolicyFile.load(path: Self.demoPath)
        let move = try #require(ToolCatalog.byName["move_issue"])
        #expect(policy.decision(for: move, project: "WEB", arguments: ["state": "In Progress"]).tier == .medium)
        let done = policy.decision(for: move, project: "WEB", arguments: ["state": "done"])
        #expect(done.tier == .high && done.approval == .session && done.approvers == .owner && done.because == "state is done")
        let member = try #require(ToolCatalog.byName["add_project_member"])
        let web = policy.decision(for: member, project: "WEB", arguments: ["member": "dave"])
        #expect(web.tier == .high && web.approval == .call && web.approvers == .ownerOrAdmin)
        let ops = policy.decision(for: member, project: "OPS", arguments: ["member": "dave"])
        #expect(ops.tier == .critical && ops.approval == .call && ops.approvers == .admin)
        let get = try #require(ToolCatalog.byName["get_issue"])
        #expect(policy.decision(for: get, project: "WEB", arguments: [:]).tier == .low)
    }

    /// Each broken file is refused with the line of the problem and a reason that names it.
    @Test(arguments: [
        ("version: 2\n", 1, "version"),
        ("tools: {}\n", 1, "version: 1"),
        ("version: 1\ntools:\n  delete_issue:\n    tier: high\n", 3, "unknown tool delete_issue"),
        ("version: 1\ntools:\n  move_issue:\n    tier: urgent\n", 4, "use one of low, medium, high, critical"),
        ("version: 1\ntools:\n  move_issue:\n    tier: high\n    colour: red\n", 5, "unknown key colour"),
        ("version: 1\ndefaults:\n  waitSeconds: 9000\n", 3, "1 to 300"),
        ("version: 1\ntools:\n  move_issue:\n    when:\n      - argument: title\n        in: [x]\n        tier: high\n", 5, "no text argument title"),
        ("version: 1\ntools:\n  move_issue:\n    projects:\n      web:\n        tier: high\n", 5, "not a project key"),
        ("version: 1\ntools:\n  move_issue:\n    when:\n      - argument: state\n        tier: high\n", 5, "needs argument, in and tier"),
        ("version: 1\ntools:\n  move_issue: [\n", -1, "not valid YAML"),
        ("version: 1\nversion: 1\n", -1, "appears twice"),
    ])
    func invalidFilesNameLineAndReason(text: String, line: Int, reason: String) {
        do {
            _ = try PolicyFile.parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            if line >= 0 { #expect(error.line == line, "\(error)") }
            #expect(error.reason.contains(reason), "\(error)")
        }
    }

    @Test func aliasBombsAndHugeFilesAreRefused() {
        var bomb = "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...8 {
            bomb +=
                "\(Character(UnicodeScalar(97 + level)!)): &\(Character(UnicodeScalar(97 + level)!)) ["
                + Array(repeating: "*\(Character(UnicodeScalar(96 + level)!))", count: 10).joined(separator: ", ") + "]\n"
        }
        #expect(throws: PolicyError.self) { try PolicyFile.parse(bomb) }
        #expect(throws: PolicyError.self) { try PolicyFile.parse("version: 1\n" + String(repeating: "# x\n", count: 70_000)) }
    }

    /// The schema in docs/ names the same keys, tools, tiers and limits as the validator.
    @Test func publishedSchemaMatchesTheValidator() throws {
        let text = try String(contentsOfFile: repositoryRoot() + "/docs/policy.schema.json", encoding: .utf8)
        let schema = try JSONValue(parsing: text)
        let tools = schema["properties"]?["tools"]?["propertyNames"]?["enum"]?.arrayValue?.compactMap(\.stringValue)
        #expect(tools == ToolCatalog.all.map(\.name))
        #expect(schema["$defs"]?["tier"]?["enum"]?.arrayValue?.compactMap(\.stringValue) == Tier.allCases.map(\.rawValue))
        #expect(schema["$defs"]?["approvers"]?["enum"]?.arrayValue?.compactMap(\.stringValue) == Approvers.allCases.map(\.rawValue))
        #expect(schema["$defs"]?["waitSeconds"]?["maximum"]?.intValue == CapabilityPolicy.waitSecondsRange.upperBound)
        #expect(schema["required"]?.arrayValue == ["version"])
    }

    @Test func policyCheckPrintsTheEffectiveTableOrTheLineAndReason() async throws {
        let out = try await offThePool { try runGatewayCommand(["policy", "check", Self.demoPath]) }
        #expect(out.contains("valid"))
        #expect(out.contains("move_issue") && out.contains("state in [Done, Cancelled, Canceled, Closed] → high"))
        #expect(out.contains("add_project_member") && out.contains("OPS") && out.contains("critical"))
        let json = try JSONValue(parsing: try await offThePool { try runGatewayCommand(["policy", "check", "--json", Self.demoPath]) })
        #expect(
            json["tools"]?.arrayValue?.contains { $0["tool"] == "add_project_member" && $0["project"] == "OPS" && $0["tier"] == "critical" } == true)

        let bad = temporaryDirectory() + "/bad.yaml"
        try "version: 1\ntools:\n  move_issue:\n    tier: urgent\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await offThePool { try runGatewayCommandResult(["policy", "check", bad]) }
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("line 4") && refused.stderr.contains("urgent"), "\(refused.stderr)")
    }

    @Test func anInvalidReloadKeepsTheLastGoodPolicy() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let path = temporaryDirectory() + "/policy.yaml"
        try "version: 1\ntools:\n  comment_issue:\n    tier: high\n".write(toFile: path, atomically: true, encoding: .utf8)
        try gateway.gateway.reloadPolicy(path: path)
        #expect(gateway.gateway.policy.tools["comment_issue"]?.rule.tier == .high)
        try "version: 1\ntools:\n  comment_issue:\n    tier: [\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: PolicyError.self) { try gateway.gateway.reloadPolicy(path: path) }
        #expect(gateway.gateway.policy.tools["comment_issue"]?.rule.tier == .high)
        #expect(gateway.gateway.policy.source == path)
    }

    /// A real `serve --policy`: SIGHUP loads a changed file; an invalid one is refused and the
    /// tiers agents see in tools/list stay those of the last good file.
    @Test func sighupReloadsAndAnInvalidFileIsRefused() async throws {
        let path = temporaryDirectory() + "/policy.yaml"
        try "version: 1\ntools:\n  comment_issue:\n    tier: high\n".write(toFile: path, atomically: true, encoding: .utf8)
        let server = try await GatewayProcess.start(extraArguments: ["--policy", path])
        defer { server.stop() }
        let (_, code) = try await offThePool { try server.newAgent(scopes: Scope.all) }
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        func commentTier() async throws -> String {
            let tools = try await client.rpc("tools/list").json["result"]?["tools"]?.arrayValue ?? []
            return tools.first { $0["name"] == "comment_issue" }?["description"]?.stringValue ?? ""
        }
        #expect(try await commentTier().contains("Tier: high"))

        try "version: 1\ntools:\n  comment_issue:\n    tier: low\n".write(toFile: path, atomically: true, encoding: .utf8)
        server.process.signal(SIGHUP)
        var reloaded = false
        for _ in 0..<100 where !reloaded {
            reloaded = try await commentTier().contains("Tier: low")
            if !reloaded { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(reloaded, "SIGHUP did not load the changed policy within 10 s")

        try "version: 1\ntools:\n  comment_issue:\n    tier: nonsense\n".write(toFile: path, atomically: true, encoding: .utf8)
        server.process.signal(SIGHUP)
        for _ in 0..<10 {
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await commentTier().contains("Tier: low"))
        }
        #expect(server.process.isRunning)
    }
}
