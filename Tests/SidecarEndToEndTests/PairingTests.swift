import AgentWire
import Foundation
import TestSupport
import Testing

/// `agent-sidecar setup` against the real `agent-gateway`: pairing, the files it writes, and every
/// way pairing can fail.
@Suite("Pairing with a real gateway (agent-sidecar setup)", .secretScan)
struct PairingTests {
    @Test("setup pairs, writes config.toml and AGENTS.md with private modes, and a re-run changes no byte")
    func pairsAndIsIdempotent() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let code = world.issued(try await gateway.pairingCode())

        let result = try await world.setup(gateway: gateway, code: code)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("Paired profile \"default\" with \(gateway.url)"))
        #expect(result.stdout.contains("codex (\(gateway.agentID))"))
        #expect(result.stdout.contains("Alice (alice)"))
        #expect(result.stdout.contains("WEB (Website): project:read, issue:create, issue:comment"))
        #expect(result.stdout.contains("written    \(world.codexHome)/config.toml"))
        #expect(result.stdout.contains("written    \(world.project)/AGENTS.md"))

        // The Codex entry: the running binary's absolute path, `serve --profile default`, and the
        // one variable Codex must pass on so the sidecar finds its state.
        let config = try await parseTOML("\(world.codexHome)/config.toml")
        let entry = try #require(config["mcp_servers"]?["agent-sidecar"])
        let binary = URL(fileURLWithPath: BuiltProducts.path("agent-sidecar")).resolvingSymlinksInPath().path
        #expect(entry["command"]?.stringValue == binary)
        #expect(entry["args"] == ["serve", "--profile", "default"])
        #expect(entry["env"]?["AGENT_SIDECAR_HOME"]?.stringValue == world.sidecarHome)
        // …and stdout shows that entry exactly as written.
        let configText = try #require(world.text("codex/config.toml"))
        for line in configText.split(separator: "\n") where !line.isEmpty {
            #expect(result.stdout.contains("  \(line)\n"), "stdout lacks the config line \(line)")
        }

        let agents = try #require(world.text("project/AGENTS.md"))
        #expect(agents.contains("<!-- agent-sidecar:begin profile=default -->"))
        #expect(agents.contains("<!-- agent-sidecar:end profile=default -->"))
        #expect(agents.contains("list_projects") && agents.contains("create_issue"))

        // Private state: directories 0700, key, KEK and profile 0600.
        #expect(world.mode("sidecar-home/keys") == 0o700)
        #expect(world.mode("sidecar-home/profiles") == 0o700)
        #expect(world.mode("sidecar-home/keys/default.key") == 0o600)
        #expect(world.mode("sidecar-home/keys/default.kek") == 0o600)
        #expect(world.mode("sidecar-home/profiles/default.json") == 0o600)
        #expect(world.mode("codex") == 0o700)

        // Re-running (no code: the profile is paired) leaves every file byte for byte as it was.
        let before = ["codex/config.toml", "project/AGENTS.md", "sidecar-home/profiles/default.json"].map { world.read($0) }
        let again = try await world.setup(gateway: gateway, code: nil)
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout.contains("is paired; refreshed its setup packet"))
        #expect(again.stdout.contains("unchanged  \(world.codexHome)/config.toml"))
        #expect(again.stdout.contains("unchanged  \(world.project)/AGENTS.md"))
        let after = ["codex/config.toml", "project/AGENTS.md", "sidecar-home/profiles/default.json"].map { world.read($0) }
        #expect(before == after)
        #expect(world.read("codex/config.toml.bak-agent-sidecar") == nil)

        try world.secretMaterial()
    }

    @Test("setup merges into an existing config.toml and AGENTS.md without touching any other byte")
    func mergesIntoExistingFiles() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let originalConfig = """
            # My Codex settings
            model = "o3"  # inline comment

            [mcp_servers.other]
            command = "/usr/bin/other"   # keep me
            args = ["--flag", "x # not a comment"]

            [mcp_servers.other.env]
            OTHER_HOME = "/tmp/other"

            # trailing comment
            [profiles.fast]
            model = "o4-mini"
            """
        let originalAgents = "# Project rules\n\nUse tabs. Run `make test` before committing.\n"
        try FileManager.default.createDirectory(atPath: world.codexHome, withIntermediateDirectories: true)
        try Data(originalConfig.utf8).write(to: URL(fileURLWithPath: "\(world.codexHome)/config.toml"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: "\(world.codexHome)/config.toml")
        try Data(originalAgents.utf8).write(to: URL(fileURLWithPath: "\(world.project)/AGENTS.md"))

        // The code comes from the environment this time.
        let code = world.issued(try await gateway.pairingCode())
        let result = try await world.setup(gateway: gateway, code: nil, extraEnvironment: ["AGENT_SIDECAR_PAIRING_CODE": code])
        #expect(result.status == 0, "\(result)")

        let merged = try #require(world.read("codex/config.toml"))
        #expect(merged.starts(with: Array(originalConfig.utf8)), "the bytes before our table changed")
        let config = try await parseTOML("\(world.codexHome)/config.toml")
        #expect(config["model"] == "o3")
        #expect(config["mcp_servers"]?["other"]?["args"] == ["--flag", "x # not a comment"])
        #expect(config["mcp_servers"]?["other"]?["env"]?["OTHER_HOME"] == "/tmp/other")
        #expect(config["profiles"]?["fast"]?["model"] == "o4-mini")
        #expect(config["mcp_servers"]?["agent-sidecar"]?["args"] == ["serve", "--profile", "default"])
        #expect(world.mode("codex/config.toml") == 0o600, "the config's own mode must be kept")
        #expect(world.read("codex/config.toml.bak-agent-sidecar") == Array(originalConfig.utf8))
        #expect(result.stdout.contains("(previous content in \(world.codexHome)/config.toml.bak-agent-sidecar)"))

        let agents = try #require(world.text("project/AGENTS.md"))
        #expect(agents.hasPrefix(originalAgents))
        #expect(agents.contains("<!-- agent-sidecar:begin profile=default -->"))

        // A second run with other clients adds their files and leaves these alone.
        let again = try await world.setup(gateway: gateway, code: nil, extra: ["--client", "codex", "--client", "claude-code", "--client", "vscode"])
        #expect(again.status == 0, "\(again)")
        #expect(world.read("codex/config.toml") == merged)
        let claude = try JSONValue(parsing: try #require(world.read("project/.mcp.json")))
        #expect(claude["mcpServers"]?["agent-sidecar"]?["args"] == ["serve", "--profile", "default"])
        let vscode = try JSONValue(parsing: try #require(world.read("project/.vscode/mcp.json")))
        #expect(vscode["servers"]?["agent-sidecar"]?["command"] != nil)

        try world.secretMaterial()
    }

    @Test("setup --print pairs but writes no config file, and prints the packet")
    func printOnly() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let code = world.issued(try await gateway.pairingCode())
        let result = try await world.setup(gateway: gateway, code: code, extra: ["--print"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("==> \(world.codexHome)/config.toml <=="))
        #expect(result.stdout.contains("[mcp_servers.agent-sidecar]"))
        #expect(result.stdout.contains("==> \(world.project)/AGENTS.md <=="))
        #expect(result.stdout.contains("<!-- agent-sidecar:begin profile=default -->"))
        #expect(result.stderr.contains("Nothing written (--print)"))
        #expect(!FileManager.default.fileExists(atPath: "\(world.codexHome)/config.toml"))
        #expect(!FileManager.default.fileExists(atPath: "\(world.project)/AGENTS.md"))
        // The pairing itself is kept, so the code is not wasted.
        #expect(world.read("sidecar-home/profiles/default.json") != nil)
        try world.secretMaterial()
    }

    @Test("a code the gateway never issued is refused, and nothing is stored")
    func wrongCode() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let result = try await world.setup(gateway: gateway, code: world.issued("7KQ2-M9XD"))
        #expect(result.status == 1)
        #expect(result.stderr == "agent-sidecar: the gateway does not know this pairing code; check it, or ask the agent's owner for a new one\n")
        #expect(result.stdout.isEmpty)
        #expect(world.read("sidecar-home/profiles/default.json") == nil)
        #expect(world.read("sidecar-home/keys/default.key") == nil)
    }

    @Test("an expired code is refused with advice to ask for a new one")
    func expiredCode() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let code = world.issued(try await gateway.pairingCode())
        // The admin CLI offers no TTL; age the code in the database (expiresAt is in the past).
        _ = try await gateway.sql("UPDATE pairingCode SET expiresAt = 1")
        let result = try await world.setup(gateway: gateway, code: code)
        #expect(result.status == 1)
        #expect(result.stderr.contains("the pairing code has expired; ask the agent's owner for a new one"))
        #expect(world.read("sidecar-home/profiles/default.json") == nil)
    }

    @Test("a code works once: a second device using it is refused")
    func reusedCode() async throws {
        let world = try PairingWorld()
        let other = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let code = world.issued(try await gateway.pairingCode())
        let first = try await world.setup(gateway: gateway, code: code)
        #expect(first.status == 0, "\(first)")
        let second = try await other.setup(gateway: gateway, code: other.issued(code))
        #expect(second.status == 1)
        #expect(second.stderr.contains("the pairing code was already used"))
        #expect(other.read("sidecar-home/profiles/default.json") == nil)
        try world.secretMaterial()
    }

    @Test("a burst of failed claims is slowed, then answered 429 with setup saying to wait; a good code still pairs")
    func tooManyFailedClaims() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        // Twelve wrong codes at once: five are looked up at once, three after growing pauses
        // (1 s, 3 s, 7 s), the rest are refused with 429 without a lookup.
        let results = try await withThrowingTaskGroup(of: CommandResult.self) { group in
            for attempt in 1...12 {
                group.addTask { try await world.setup(gateway: gateway, code: world.issued("7KQ2-M9\(attempt < 10 ? "X" : "Y")\(attempt % 10)")) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.status == 1 })
        let unknown = results.filter { $0.stderr.contains("does not know this pairing code") }
        let limited = results.filter { $0.stderr.contains("too many pairing attempts; wait") }
        #expect(unknown.count <= 8 && unknown.count + limited.count == 12, "\(results.map(\.stderr))")
        #expect(limited.allSatisfy { $0.stderr.split(separator: "\n").count == 1 })
        // Failures from this address slow its next claim, they do not lock a good code out (issue 11).
        let good = world.issued(try await gateway.pairingCode())
        let paired = try await world.setup(gateway: gateway, code: good)
        #expect(paired.status == 0, "\(paired)")
    }

    @Test("without a code and without a terminal, setup says how to pass one")
    func noCodeWithoutTerminal() async throws {
        let world = try PairingWorld()
        let result = try await world.sidecar(["setup", "--gateway", "http://127.0.0.1:9", "--project-dir", world.project])
        #expect(result.status == 2)
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("--code") && result.stderr.contains("AGENT_SIDECAR_PAIRING_CODE"))
        #expect(world.read("sidecar-home/profiles/default.json") == nil)
    }

    @Test("plain http:// to a host that is not loopback is refused before anything is sent")
    func refusesPlainHTTP() async throws {
        let world = try PairingWorld()
        let result = try await world.sidecar([
            "setup", "--gateway", "http://gateway.example.com", "--code", world.issued("7KQ2-M9XD"), "--project-dir", world.project,
        ])
        #expect(result.status == 2)
        #expect(result.stderr.contains("refusing plain http:// to gateway.example.com"))
        #expect(result.stderr.contains("https://"))
        #expect(world.read("sidecar-home/profiles/default.json") == nil)
    }
}
