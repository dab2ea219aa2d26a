import AgentWire
import Foundation
import Testing

/// `agent-sidecar serve --profile NAME` against the real `agent-gateway`: session tokens minted by
/// the device key, renewed, ended, and what the client sees when the gateway refuses the device.
@Suite("Paired serve with a real gateway (agent-sidecar serve --profile)", .secretScan)
struct PairedServeTests {
    /// A gateway, a paired world and the secret material of its device key.
    static func paired(serveArguments: [String] = []) async throws -> (PairingWorld, TestGateway, PairingWorld.SecretMaterial) {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root, serveArguments: serveArguments)
        let result = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()))
        try #require(result.status == 0, "\(result)")
        return (world, gateway, try world.secretMaterial())
    }

    /// The tools the test agent's grants show.
    static let agentTools: Set<String> = ["list_projects", "get_project_context", "search_issues", "get_issue", "create_issue", "comment_issue"]

    static func toolNames(_ response: JSONValue) -> [String] {
        (response["result"]?["tools"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
    }

    static func text(of result: JSONValue?) -> String {
        result?["content"]?[0]?["text"]?.stringValue ?? ""
    }

    /// Lines the sidecar printed itself (not logs): `agent-sidecar: …`.
    static func ownLines(_ stderr: String) -> [Substring] {
        stderr.split(separator: "\n").filter { $0.hasPrefix("agent-sidecar: ") }
    }

    @Test("serve lists the agent's tools, calls them, and ends its session at the gateway on exit")
    func servesTheGateway() async throws {
        let (world, gateway, _) = try await Self.paired()
        let sidecar = try world.serve()
        let initialized = try await sidecar.initialize()
        #expect(initialized["result"]?["serverInfo"]?["name"] == "agent-sidecar")

        let tools = Self.toolNames(try await sidecar.call(1, "tools/list"))
        #expect(Set(tools) == ["list_projects", "get_project_context", "search_issues", "get_issue", "create_issue", "comment_issue"])

        let projects = try await sidecar.callTool(2, "list_projects")
        #expect(projects["result"]?["isError"] == false)
        #expect(projects["result"]?["structuredContent"]?["projects"]?[0]?["key"] == "WEB")

        let created = try await sidecar.callTool(3, "create_issue", ["project": "WEB", "title": "Filed through the sidecar"])
        #expect(created["result"]?["isError"] == false, "\(created)")
        #expect(created["result"]?["structuredContent"]?["issue"]?["key"]?.stringValue?.hasPrefix("WEB-") == true)

        // A scope the agent lacks is the gateway's call, reported as a tool error.
        let denied = try await sidecar.callTool(4, "get_issue", ["issue": "OPS-1"])
        #expect(denied["result"]?["isError"] == true)

        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
        #expect(try await gateway.sql("SELECT count(*) FROM session WHERE endedAt IS NULL") == "0", "a session was left open")
    }

    @Test("an expiring session is renewed without the client noticing")
    func renewsExpiredSessions() async throws {
        let (world, gateway, _) = try await Self.paired(serveArguments: ["--session-ttl", "2"])
        let sidecar = try world.serve()
        _ = try await sidecar.initialize()
        let before = Int(try await gateway.sql("SELECT count(*) FROM session")) ?? 0
        for round in 1...3 {
            let result = try await sidecar.callTool(round, "list_projects")
            #expect(result["result"]?["isError"] == false, "round \(round): \(result)")
            try await Task.sleep(for: .milliseconds(2500))
        }
        let after = Int(try await gateway.sql("SELECT count(*) FROM session")) ?? 0
        #expect(after >= before + 2, "expected fresh sessions, had \(before) then \(after)")
        #expect(Self.ownLines(sidecar.child.stderr).isEmpty, "\(sidecar.child.stderr)")
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test("after the owner revokes the agent, calls fail with a message naming setup, and the server stays up")
    func revokedWhileServing() async throws {
        let (world, gateway, _) = try await Self.paired()
        let sidecar = try world.serve()
        _ = try await sidecar.initialize()
        #expect(try await sidecar.callTool(1, "list_projects")["result"]?["isError"] == false)

        _ = try await gateway.admin(["agent", "revoke", gateway.agentID])

        let call = try await sidecar.callTool(2, "list_projects")
        #expect(call["result"]?["isError"] == true)
        #expect(Self.text(of: call["result"]).contains("revoked by its owner"))
        #expect(Self.text(of: call["result"]).contains("run `agent-sidecar setup` and enter it"))
        #expect(Self.text(of: call["result"]).contains("(nothing was written)"))
        // tools/list still succeeds, with the stored catalog: an MCP host keeps the tools.
        let list = try await sidecar.call(3, "tools/list")
        #expect(Set(Self.toolNames(list)) == Self.agentTools, "\(list)")
        let again = try await sidecar.callTool(4, "search_issues", ["project": "WEB"])
        #expect(again["result"]?["isError"] == true)
        #expect(try await sidecar.call(5, "ping")["result"] != nil)

        // One line on stderr however many calls failed.
        let lines = Self.ownLines(sidecar.child.stderr)
        #expect(lines.count == 1, "\(sidecar.child.stderr)")
        #expect(lines.first?.contains("run `agent-sidecar setup` and enter it") == true)

        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test("after the owner is blocked and unblocked, the running sidecar works again on a new session")
    func blockedThenUnblockedWhileServing() async throws {
        let (world, gateway, _) = try await Self.paired()
        let sidecar = try world.serve()
        _ = try await sidecar.initialize()
        #expect(try await sidecar.callTool(1, "list_projects")["result"]?["isError"] == false)
        _ = try await gateway.admin(["owner", "block", "alice"])
        let blocked = try await sidecar.callTool(2, "list_projects")
        #expect(blocked["result"]?["isError"] == true)
        // Blocking ended the session at the gateway, so the old token stays dead after the unblock;
        // the sidecar mints a new session with its device key and the call goes through.
        #expect(try await gateway.sql("SELECT count(*) FROM session WHERE endedAt IS NULL") == "0")
        _ = try await gateway.admin(["owner", "unblock", "alice"])
        let again = try await sidecar.callTool(3, "list_projects")
        #expect(again["result"]?["isError"] == false, "\(again)")
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test("a sidecar killed with SIGKILL leaves a session that expires within 15 minutes, not an hour")
    func killedSidecarLeavesAShortSession() async throws {
        // Issue 11: nothing runs on SIGKILL, so a token copied from the sidecar's memory lives out
        // its TTL; the gateway's default TTL is now 900 s (it was 3600 s).
        let (world, gateway, _) = try await Self.paired()
        let sidecar = try world.serve()
        _ = try await sidecar.initialize()
        #expect(try await sidecar.callTool(1, "list_projects")["result"]?["isError"] == false)
        sidecar.child.kill()
        _ = try await sidecar.child.waitForExit(timeout: .seconds(10))
        let lifetime = Int(try await gateway.sql("SELECT max(expiresAt - createdAt) FROM session WHERE endedAt IS NULL")) ?? -1
        #expect(lifetime > 0 && lifetime <= 900_000, "the killed sidecar's session lives \(lifetime) ms")
    }

    @Test("a sidecar started after the gateway refused the device answers at once with the reason", arguments: ["agent revoke", "owner block"])
    func refusedAtStart(action: String) async throws {
        let (world, gateway, _) = try await Self.paired()
        if action == "agent revoke" {
            _ = try await gateway.admin(["agent", "revoke", gateway.agentID])
        } else {
            _ = try await gateway.admin(["owner", "block", "alice"])
        }
        let expected = action == "agent revoke" ? "revoked by its owner" : "owner is blocked"
        let sidecar = try world.serve()
        // Bounded well below the sidecar's retry back-off: initialize must not wait on a refused
        // gateway (the bound is generous for a loaded machine, where 18 s went by from spawn).
        let initialized = try await sidecar.initialize(timeout: .seconds(20))
        #expect(initialized["result"] != nil)
        // The instructions say why, and the stored catalog is listed: the tools do not vanish.
        let instructions = initialized["result"]?["instructions"]?.stringValue ?? ""
        #expect(instructions.contains("refused this device") && instructions.contains(expected), "\(instructions)")
        #expect(instructions.contains("Agent Gateway"), "the gateway's own instructions come from the stored catalog: \(instructions)")
        let list = try await sidecar.call(1, "tools/list")
        #expect(Set(Self.toolNames(list)) == Self.agentTools, "\(list)")
        let call = try await sidecar.callTool(2, "list_projects")
        #expect(call["result"]?["isError"] == true)
        #expect(Self.text(of: call["result"]).contains(expected))
        #expect(Self.ownLines(sidecar.child.stderr).count == 1, "\(sidecar.child.stderr)")
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)

        // Each refused session mint left a `refused` audit event with its reason, and nothing else.
        let code = action == "agent revoke" ? "agent_revoked" : "owner_blocked"
        let refused = Int(try await gateway.sql("SELECT count(*) FROM auditEvent WHERE outcome = 'refused' AND errorCode = '\(code)'")) ?? 0
        #expect(refused >= 1, "no refusal was audited")
        #expect(try await gateway.sql("SELECT DISTINCT tool FROM auditEvent WHERE outcome = 'refused'") == "api:create_session")
    }

    @Test("a tampered, too open or FIFO key file is refused; serve keeps answering with the reason", arguments: ["tampered", "0644", "fifo"])
    func refusesBadKeyFile(damage: String) async throws {
        let (world, _, _) = try await Self.paired()
        let keyFile = world.path("sidecar-home/keys/default.key")
        let kek = world.path("sidecar-home/keys/default.kek")
        // A FIFO must be gone before the secret scan reads the directory.
        defer { if damage == "fifo" { unlink(kek) } }
        let expected: String
        if damage == "fifo" {
            // Issue 11: a key file replaced by a FIFO blocked `serve` forever in open(2).
            try FileManager.default.removeItem(atPath: kek)
            try #require(mkfifo(kek, 0o600) == 0)
            expected = "\(kek) is not a regular file; ask the agent's owner for a new pairing code, then run `agent-sidecar setup` and enter it"
        } else if damage == "tampered" {
            let sealed = try #require(world.read("sidecar-home/keys/default.key"))
            var envelope = try JSONValue(parsing: sealed)
            let encoded = try #require(envelope["ciphertext"]?.stringValue)
            var ciphertext = try #require(Data(base64Encoded: encoded))
            ciphertext[5] ^= 0x01
            if case .object(var object) = envelope {
                object["ciphertext"] = .string(ciphertext.base64EncodedString())
                envelope = .object(object)
            }
            try Data(envelope.serialized()).write(to: URL(fileURLWithPath: keyFile))
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile)
            expected =
                "the device key file \(keyFile) is tampered or corrupted; ask the agent's owner for a new pairing code, then run `agent-sidecar setup` and enter it"
        } else {
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile)
            expected = "permissions 0644 for \(keyFile) are too open; run `chmod 600 \(keyFile)`"
        }

        let sidecar = try world.serve()
        let initialized = try await sidecar.initialize(timeout: .seconds(10))
        let instructions = initialized["result"]?["instructions"]?.stringValue ?? ""
        #expect(instructions.contains("cannot sign in to the gateway: \(expected)"), "\(initialized)")
        let list = try await sidecar.call(1, "tools/list")
        #expect(Set(Self.toolNames(list)) == Self.agentTools, "\(list)")
        let call = try await sidecar.callTool(2, "list_projects")
        #expect(call["result"]?["isError"] == true)
        #expect(Self.text(of: call["result"]).contains(expected))
        let lines = Self.ownLines(sidecar.child.stderr)
        #expect(lines.count == 1 && lines[0].contains(expected), "\(sidecar.child.stderr)")
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)

        let status = try await world.sidecar(["status"])
        #expect(status.status == 1)
        #expect(status.stderr.contains(expected))
    }

    @Test("gateway down at start: the stored catalog is listed, calls say nothing was written, and the session recovers when it is back")
    func gatewayDownAtStart() async throws {
        let (world, gateway, _) = try await Self.paired()
        let port = try #require(URL(string: gateway.url)?.port)
        // The stored catalog misses a tool, so the recovered session has news for the client.
        let catalogPath = world.path("sidecar-home/state/default.tools.json")
        var stored = try JSONValue(parsing: try #require(world.read("sidecar-home/state/default.tools.json")))
        if case .object(var object) = stored, let tools = object["tools"]?.arrayValue {
            object["tools"] = .array(tools.filter { $0["name"] != "comment_issue" })
            stored = .object(object)
        }
        try Data(stored.serialized()).write(to: URL(fileURLWithPath: catalogPath))
        gateway.child.kill()
        _ = try await gateway.child.waitForExit(timeout: .seconds(10))

        let sidecar = try world.serve()
        let initialized = try await sidecar.initialize(timeout: .seconds(15))
        let instructions = initialized["result"]?["instructions"]?.stringValue ?? ""
        #expect(instructions.contains("could not be reached") && instructions.contains("connection refused"), "\(instructions)")
        let list = try await sidecar.call(1, "tools/list")
        #expect(Set(Self.toolNames(list)) == Self.agentTools.subtracting(["comment_issue"]), "\(list)")

        let down = try await sidecar.callTool(2, "create_issue", ["project": "WEB", "title": "Written while the gateway is down"])
        #expect(down["result"]?["isError"] == true)
        #expect(Self.text(of: down["result"]).contains("cannot reach the gateway"), "\(down)")
        #expect(Self.text(of: down["result"]).contains("nothing was written; the next call tries again"), "\(down)")

        // The gateway comes back on its port, with its database: the next call goes through.
        let restarted = try ChildProcess(executable: TestGateway.binary, arguments: ["serve", "--db", gateway.database, "--port", "\(port)"])
        defer { restarted.terminate() }
        _ = try await restarted.nextLine(timeout: .seconds(30))
        var others: [JSONValue] = []
        sidecar.send([
            "jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": ["name": "create_issue", "arguments": ["project": "WEB", "title": "Written after the gateway came back"]],
        ])
        let back = try await sidecar.child.response(to: .int(3), timeout: .seconds(20), others: &others)
        #expect(back["result"]?["isError"] == false, "\(back)")
        // The catalog changed (comment_issue is back): the client is told, and the file is rewritten.
        if !others.contains(where: { $0["method"] == "notifications/tools/list_changed" }) {
            let next = try await sidecar.child.nextMessage(timeout: .seconds(15))
            #expect(next["method"] == "notifications/tools/list_changed", "\(next)")
        }
        let relisted = try await sidecar.call(4, "tools/list")
        #expect(Set(Self.toolNames(relisted)) == Self.agentTools)
        let rewritten = try JSONValue(parsing: try #require(world.read("sidecar-home/state/default.tools.json")))
        #expect(Set((rewritten["tools"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }) == Self.agentTools)
        #expect(world.mode("sidecar-home/state/default.tools.json") == 0o600)
        #expect(try await gateway.sql("SELECT count(*) FROM issue WHERE title = 'Written while the gateway is down'") == "0")
        #expect(try await gateway.sql("SELECT count(*) FROM issue WHERE title = 'Written after the gateway came back'") == "1")
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test("no stored catalog and no gateway: tools/list still succeeds (empty), and initialize says why")
    func noCatalogNoGateway() async throws {
        let (world, gateway, _) = try await Self.paired()
        try FileManager.default.removeItem(atPath: world.path("sidecar-home/state/default.tools.json"))
        gateway.child.kill()
        _ = try await gateway.child.waitForExit(timeout: .seconds(10))
        let sidecar = try world.serve()
        let initialized = try await sidecar.initialize(timeout: .seconds(15))
        #expect(initialized["result"]?["instructions"]?.stringValue?.contains("No tool catalog is stored yet") == true, "\(initialized)")
        let list = try await sidecar.call(1, "tools/list")
        #expect(list["result"]?["tools"] == [], "\(list)")
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test("calls refused at /mcp (revoked agent, ended session) are audited with their reason, without argument text")
    func refusedCallsAreAudited() async throws {
        let (world, gateway, _) = try await Self.paired()
        let sidecar = try world.serve()
        _ = try await sidecar.initialize()
        #expect(try await sidecar.callTool(1, "list_projects")["result"]?["isError"] == false)
        _ = try await gateway.admin(["agent", "revoke", gateway.agentID])
        let secretTitle = "a title that must not reach the audit"
        let refused = try await sidecar.callTool(2, "create_issue", ["project": "WEB", "title": .string(secretTitle)])
        #expect(refused["result"]?["isError"] == true)
        let rows = try await gateway.sql(
            "SELECT tool, outcome, errorCode, sessionID IS NOT NULL FROM auditEvent WHERE outcome = 'refused' AND tool = 'create_issue'")
        #expect(rows == "create_issue|refused|agent_revoked|1", "\(rows)")
        let dump = try await gateway.sql("SELECT * FROM auditEvent")
        #expect(!dump.contains(secretTitle) && !dump.contains("ags_"))
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test("a profile that does not exist ends serve at once with one line")
    func missingProfile() async throws {
        let world = try PairingWorld()
        let sidecar = try world.serve(profile: "nope")
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 2)
        try await Task.sleep(for: .milliseconds(100))
        let lines = sidecar.child.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(sidecar.child.stderr)")
        #expect(lines.first?.contains("there is no profile \"nope\"") == true)
        #expect(lines.first?.contains("agent-sidecar setup") == true)
    }

    @Test("--profile and --upstream cannot be combined, and one of them is needed")
    func flagsAreExclusive() async throws {
        let world = try PairingWorld()
        let both = try await world.sidecar(["serve", "--profile", "default", "--upstream", "http://127.0.0.1:9/mcp"])
        #expect(both.status != 0)
        #expect(both.stderr.contains("--profile and --upstream cannot be used together"))
        let neither = try await world.sidecar(["serve"])
        #expect(neither.status != 0)
        #expect(neither.stderr.contains("give --profile NAME"))
    }
}
