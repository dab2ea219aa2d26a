import AgentWire
import Foundation
import Testing

/// What `setup` writes so each client can start the sidecar and asks before writes: the proxy and
/// CA variables Codex must pass on (names only), and the approval choice in each client's terms.
@Suite("Setup writes what each client needs (env_vars, --approve)", .secretScan)
struct SetupClientNeedsTests {
    static let readTools = ["list_projects", "get_project_context", "search_issues", "get_issue"]

    @Test("the proxy and CA variables present at setup go into env_vars by name, and writes ask first by default")
    func proxyNamesAndDefaultApprovals() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        // A proxy URL with a password in it: the value must not reach any file.
        SecretLedger.current?.register("proxy password", "hunter2-proxy")
        let proxy = [
            "HTTPS_PROXY": "http://user:hunter2-proxy@127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost", "SSL_CERT_DIR": "/etc/ssl/certs",
        ]
        let result = try await world.setup(
            gateway: gateway, code: world.issued(try await gateway.pairingCode()), extra: ["--client", "codex", "--client", "claude-code"],
            extraEnvironment: proxy)
        #expect(result.status == 0, "\(result)")

        let config = try await parseTOML("\(world.codexHome)/config.toml")
        let entry = try #require(config["mcp_servers"]?["agent-sidecar"])
        #expect(entry["env_vars"] == ["HTTPS_PROXY", "NO_PROXY", "SSL_CERT_DIR"])
        #expect(entry["default_tools_approval_mode"] == "prompt")
        let preapproved = Set(entry["tools"]?.objectValue?.keys ?? [])
        #expect(preapproved == Set(Self.readTools), "only the read tools run without asking")
        for tool in Self.readTools { #expect(entry["tools"]?[tool]?["approval_mode"] == "approve") }
        let text = try #require(world.text("codex/config.toml"))
        #expect(!text.contains("127.0.0.1:9") && !text.contains("/etc/ssl/certs"), "a value was written:\n\(text)")
        #expect(result.stdout.contains("default_tools_approval_mode = \"prompt\""), "the summary shows the entry")

        // Claude Code: the same choice as permission rules in the personal settings file.
        let settings = try JSONValue(parsing: try #require(world.read("project/.claude/settings.local.json")))
        #expect(settings["permissions"]?["allow"]?.arrayValue?.compactMap(\.stringValue) == Self.readTools.map { "mcp__agent-sidecar__\($0)" })

        // logout --purge-config takes both out again.
        let logout = try await world.sidecar(["logout", "--purge-config"])
        #expect(logout.status == 0, "\(logout)")
        #expect(world.read("project/.claude/settings.local.json") == nil)
    }

    @Test("--approve all and none, shown by --print without writing", arguments: ["all", "none"])
    func approveChoicesPrinted(choice: String) async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let paired = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()))
        #expect(paired.status == 0, "\(paired)")
        let before = world.read("codex/config.toml")

        let printed = try await world.setup(
            gateway: gateway, code: nil, extra: ["--print", "--approve", choice, "--client", "codex", "--client", "claude-code"])
        #expect(printed.status == 0, "\(printed)")
        #expect(world.read("codex/config.toml") == before, "--print wrote config.toml")
        #expect(world.read("project/.claude/settings.local.json") == nil, "--print wrote the Claude Code settings")
        let mode = choice == "none" ? "approve" : "prompt"
        #expect(printed.stdout.contains("default_tools_approval_mode = \"\(mode)\""), "\(printed.stdout)")
        #expect(printed.stdout.contains("--approve \(choice)`"))
        #expect(!printed.stdout.contains("approval_mode = \"approve\"\n") || choice == "none", "no per-tool approvals for \(choice)")
        #expect(printed.stdout.contains("==> \(world.project)/.claude/settings.local.json"))
        #expect(printed.stdout.contains(choice == "none" ? "\"allow\": [\n      \"mcp__agent-sidecar\"" : "\"ask\": [\n      \"mcp__agent-sidecar\""))

        let bad = try await world.setup(gateway: gateway, code: nil, extra: ["--approve", "sometimes"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("unknown --approve 'sometimes'; use writes (the default), all or none"))
    }
}
