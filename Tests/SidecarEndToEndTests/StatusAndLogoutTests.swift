import AgentWire
import Foundation
import Testing

/// `agent-sidecar status` and `agent-sidecar logout` against the real `agent-gateway`.
@Suite("Status and logout with a real gateway", .secretScan)
struct StatusAndLogoutTests {
    @Test("status shows the pairing, mints a session it ends again, and counts the tools")
    func statusOfAPairedProfile() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        let deviceID = try world.deviceID()

        let text = try await world.sidecar(["status"])
        #expect(text.status == 0, "\(text)")
        #expect(text.stderr.isEmpty)
        for expected in [
            "profile  default", "gateway  \(gateway.url)", "agent    codex (\(gateway.agentID))", "owner    Alice (alice)",
            "device   test-device (\(deviceID))", "grants   WEB (Website): project:read, issue:create, issue:comment", "tools    6",
        ] {
            #expect(text.stdout.contains(expected), "missing \(expected) in\n\(text.stdout)")
        }
        #expect(text.stdout.contains("session  ok: minted one valid for 3600 s, until 20"))
        #expect(text.stdout.contains("Z, and ended it\n"))

        let json = try await world.sidecar(["status", "--json"])
        #expect(json.status == 0, "\(json)")
        let report = try JSONValue(parsing: Array(json.stdout.utf8))
        #expect(report["ok"] == true)
        #expect(report["device"]?["id"]?.stringValue == deviceID)
        #expect(report["agent"]?["name"] == "codex")
        #expect(report["grants"]?[0]?["project"] == "WEB")
        #expect(report["session"]?["expiresInSeconds"] == 3600)
        #expect(report["tools"] == 6)
        #expect(try await gateway.sql("SELECT count(*) FROM session WHERE endedAt IS NULL") == "0", "status left a session open")
    }

    @Test("status of a revoked agent says so and exits 1")
    func statusWhenRevoked() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        _ = try await gateway.admin(["agent", "revoke", gateway.agentID])
        let text = try await world.sidecar(["status"])
        #expect(text.status == 1)
        #expect(text.stdout.contains("session  refused by the gateway (agent_revoked)"))
        #expect(
            text.stderr
                == "agent-sidecar: this agent was revoked by its owner at the gateway; ask the agent's owner for a new pairing code, then run `agent-sidecar setup` and enter it\n"
        )
        let json = try await world.sidecar(["status", "--json"])
        #expect(json.status == 1)
        let report = try JSONValue(parsing: Array(json.stdout.utf8))
        #expect(report["ok"] == false)
        #expect(report["error"]?["code"] == "agent_revoked")
    }

    @Test("status of a profile that does not exist exits 2 with one line")
    func statusWithoutProfile() async throws {
        let world = try PairingWorld()
        let result = try await world.sidecar(["status", "--profile", "nope"])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("there is no profile \"nope\""))
    }

    @Test("logout revokes the device at the gateway and deletes the key, the KEK and the profile")
    func logoutRevokes() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        let deviceID = try world.deviceID()
        let config = world.read("codex/config.toml")

        let result = try await world.sidecar(["logout"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("Revoked device \(deviceID) at the gateway."))
        #expect(result.stdout.contains("Logged out of profile \"default\"."))
        for file in ["sidecar-home/keys/default.key", "sidecar-home/keys/default.kek", "sidecar-home/profiles/default.json"] {
            #expect(world.read(file) == nil, "\(file) is still there")
            #expect(result.stdout.contains("Deleted \(world.path(file))"))
        }
        #expect(world.read("codex/config.toml") == config, "without --purge-config the config stays")
        #expect(try await gateway.sql("SELECT revokedAt IS NOT NULL FROM device WHERE id = '\(deviceID)'") == "1")
        #expect(try await gateway.sql("SELECT count(*) FROM session WHERE endedAt IS NULL AND deviceID = '\(deviceID)'") == "0")

        let status = try await world.sidecar(["status"])
        #expect(status.status == 2)
    }

    @Test("logout --purge-config takes out exactly what setup put in")
    func logoutPurgesConfig() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let originalConfig = "# mine\nmodel = \"o3\"\n\n[mcp_servers.other]\ncommand = \"/usr/bin/other\"\n"
        try FileManager.default.createDirectory(atPath: world.codexHome, withIntermediateDirectories: true)
        try Data(originalConfig.utf8).write(to: URL(fileURLWithPath: "\(world.codexHome)/config.toml"))
        let setup = try await world.setup(
            gateway: gateway, code: world.issued(try await gateway.pairingCode()), extra: ["--client", "codex", "--client", "cursor"])
        #expect(setup.status == 0, "\(setup)")
        try world.secretMaterial()

        let result = try await world.sidecar(["logout", "--purge-config"])
        #expect(result.status == 0, "\(result)")
        let config = try await parseTOML("\(world.codexHome)/config.toml")
        #expect(config["mcp_servers"]?["agent-sidecar"] == nil)
        #expect(config["mcp_servers"]?["other"]?["command"] == "/usr/bin/other")
        #expect(config["model"] == "o3")
        #expect(world.text("codex/config.toml")?.hasPrefix("# mine\nmodel = \"o3\"\n") == true)
        // AGENTS.md held only our block, and .cursor/mcp.json only our server: both are gone.
        #expect(world.read("project/AGENTS.md") == nil)
        #expect(world.read("project/.cursor/mcp.json") == nil)
    }

    @Test("logout --no-revoke only deletes local state")
    func logoutWithoutRevoking() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        let deviceID = try world.deviceID()
        let result = try await world.sidecar(["logout", "--no-revoke"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("Did not contact the gateway (--no-revoke)"))
        #expect(world.read("sidecar-home/keys/default.key") == nil)
        #expect(try await gateway.sql("SELECT revokedAt IS NULL FROM device WHERE id = '\(deviceID)'") == "1")
    }
}
