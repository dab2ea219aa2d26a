import AgentWire
import Foundation
import TestSupport
import Testing

/// `agent-sidecar doctor` against the real gateway, healthy and with each fault a user meets:
/// the gateway down, the agent revoked, the key file too open or tampered, a client config that
/// starts something else, a proxy variable Codex would drop.
@Suite("agent-sidecar doctor", .secretScan)
struct DoctorTests {
    /// The real Codex CLI, when there is one: `AGENT_SIDECAR_TEST_CODEX`, else the pinned one that
    /// `scripts/install-deps --codex` puts in `.venv/codex`. With it, doctor reads Codex's config
    /// through `codex mcp get` too.
    static let codex: String? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidates: [String?] = [
            ProcessInfo.processInfo.environment["AGENT_SIDECAR_TEST_CODEX"], root.appendingPathComponent(".venv/codex/bin/codex").path,
        ]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// A paired world with a Codex entry and AGENTS.md.
    static func paired() async throws -> (PairingWorld, TestGateway) {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let result = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()))
        try #require(result.status == 0, "\(result)")
        try world.secretMaterial()
        return (world, gateway)
    }

    struct Run {
        let result: CommandResult
        let report: JSONValue

        func check(_ name: String) -> JSONValue? { report["checks"]?.arrayValue?.first { $0["name"]?.stringValue == name } }
        func status(_ name: String) -> String? { check(name)?["status"]?.stringValue }
        var statuses: [String: String] {
            Dictionary(
                uniqueKeysWithValues: (report["checks"]?.arrayValue ?? []).compactMap { check in
                    check["name"]?.stringValue.flatMap { name in check["status"]?.stringValue.map { (name, $0) } }
                })
        }
    }

    /// `doctor --json` (and the text form, which must say the same thing line by line).
    static func doctor(_ world: PairingWorld, environment: [String: String] = [:]) async throws -> Run {
        let json = try await world.sidecar(["doctor", "--json"], extraEnvironment: environment)
        let report = try JSONValue(parsing: Array(json.stdout.utf8))
        let text = try await world.sidecar(["doctor"], extraEnvironment: environment)
        #expect(text.status == json.status)
        let checks = report["checks"]?.arrayValue ?? []
        let lines = text.stdout.split(separator: "\n").dropFirst()
        #expect(lines.count == checks.count + 1, "one line per check and a verdict:\n\(text.stdout)")
        for (line, check) in zip(lines, checks) {
            if let fix = check["fix"]?.stringValue { #expect(line.contains(fix), "the line does not say how to fix it: \(line)") }
        }
        return Run(result: json, report: report)
    }

    @Test("a healthy profile: every check holds, exit 0")
    func healthy() async throws {
        let (world, _) = try await Self.paired()
        let run = try await Self.doctor(world)
        #expect(run.result.status == 0, "\(run.result)")
        #expect(run.report["ok"] == true)
        #expect(
            run.statuses == [
                "profile": "ok", "device key": "ok", "tool catalog": "ok", "codex config": "ok", "environment": "ok", "AGENTS.md": "ok",
                "gateway": "ok",
                "clock": "ok", "session": "ok",
            ], "\(run.report)")
        #expect(run.check("session")?["detail"]?.stringValue?.contains("listed 6 tools over MCP") == true)
    }

    @Test("the gateway down: the gateway check fails and says what to check; the session is not tried")
    func gatewayDown() async throws {
        let (world, gateway) = try await Self.paired()
        gateway.child.terminate()
        _ = try await gateway.child.waitForExit(timeout: .seconds(10))
        let run = try await Self.doctor(world)
        #expect(run.result.status == 1)
        #expect(run.status("gateway") == "fail")
        #expect(run.check("gateway")?["detail"]?.stringValue?.contains("cannot reach the gateway") == true, "\(run.report)")
        #expect(run.check("gateway")?["fix"]?.stringValue?.contains("check that the gateway runs at") == true)
        #expect(run.status("clock") == "skip" && run.status("session") == "skip")
        #expect(run.status("device key") == "ok" && run.status("codex config") == "ok", "local checks still run")
    }

    @Test("the agent revoked: the session check fails with the owner's next step", arguments: ["agent revoke", "owner block"])
    func refused(action: String) async throws {
        let (world, gateway) = try await Self.paired()
        if action == "agent revoke" {
            _ = try await gateway.admin(["agent", "revoke", gateway.agentID])
        } else {
            _ = try await gateway.admin(["owner", "block", "alice"])
        }
        let run = try await Self.doctor(world)
        #expect(run.result.status == 1)
        #expect(run.status("gateway") == "ok")
        #expect(run.status("session") == "fail")
        let detail = run.check("session")?["detail"]?.stringValue ?? ""
        #expect(detail.contains(action == "agent revoke" ? "revoked by its owner" : "owner is blocked"), "\(detail)")
        #expect(run.check("session")?["fix"]?.stringValue?.contains("new pairing code") == true)
    }

    @Test("a key file readable by others, or tampered: the key check fails with the command that fixes it", arguments: ["0644", "tampered"])
    func badKeyFile(damage: String) async throws {
        let (world, _) = try await Self.paired()
        let keyFile = world.path("sidecar-home/keys/default.key")
        if damage == "0644" {
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile)
        } else {
            var text = try #require(world.text("sidecar-home/keys/default.key"))
            let ciphertext = try #require(text.firstRange(of: "\"ciphertext\": \""))
            let index = ciphertext.upperBound
            text.replaceSubrange(index...index, with: text[index] == "A" ? "B" : "A")
            try Data(text.utf8).write(to: URL(fileURLWithPath: keyFile))
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile)
        }
        let run = try await Self.doctor(world)
        #expect(run.result.status == 1)
        #expect(run.status("device key") == "fail", "\(run.report)")
        let fix = run.check("device key")?["fix"]?.stringValue ?? ""
        if damage == "0644" {
            #expect(fix == "run `chmod 600 \(keyFile)`")
        } else {
            #expect(run.check("device key")?["detail"]?.stringValue?.contains("tampered") == true)
            #expect(fix.contains("agent-sidecar setup"))
        }
        #expect(run.status("session") == "skip")
        #expect(run.status("gateway") == "ok")
    }

    @Test("a Codex entry that starts another binary fails, read by agent-sidecar and by the real Codex CLI when present")
    func configPointsElsewhere() async throws {
        let (world, _) = try await Self.paired()
        let configPath = world.path("codex/config.toml")
        let config = try #require(world.text("codex/config.toml"))
        let binary = URL(fileURLWithPath: BuiltProducts.path("agent-sidecar")).resolvingSymlinksInPath().path
        try Data(config.replacing("command = \"\(binary)\"", with: "command = \"/usr/bin/env\"").utf8).write(to: URL(fileURLWithPath: configPath))

        var environments: [[String: String]] = [["PATH": "/usr/bin:/bin"]]
        if let codex = Self.codex { environments.append(["PATH": URL(fileURLWithPath: codex).deletingLastPathComponent().path + ":/usr/bin:/bin"]) }
        for environment in environments {
            let run = try await Self.doctor(world, environment: environment)
            #expect(run.result.status == 1)
            #expect(run.status("codex config") == "fail", "\(run.report)")
            let detail = run.check("codex config")?["detail"]?.stringValue ?? ""
            #expect(detail.contains("starts /usr/bin/env, not this binary"), "\(detail)")
            #expect(run.check("codex config")?["fix"]?.stringValue?.contains("setup --profile default` again") == true)
            #expect(run.status("session") == "ok", "the rest still checks out")
        }

        // A config that does not parse at all: agent-sidecar's reading and Codex's say so.
        try Data((config + "\nbroken = [\n").utf8).write(to: URL(fileURLWithPath: configPath))
        for environment in environments {
            let broken = try await Self.doctor(world, environment: environment)
            #expect(broken.status("codex config") == "fail")
            let detail = broken.check("codex config")?["detail"]?.stringValue ?? ""
            #expect(detail.contains("is not valid TOML") || detail.contains("Codex cannot use"), "\(broken.report)")
        }
    }

    @Test("a proxy set in the shell but not named in the Codex entry is a warning; setup again clears it")
    func droppedVariable() async throws {
        let (world, gateway) = try await Self.paired()
        let proxy = ["HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"]
        let run = try await Self.doctor(world, environment: proxy)
        #expect(run.result.status == 1)
        #expect(run.status("environment") == "warn")
        #expect(run.check("environment")?["detail"]?.stringValue?.contains("Codex would drop HTTPS_PROXY, NO_PROXY") == true, "\(run.report)")

        let again = try await world.setup(gateway: gateway, code: nil, extraEnvironment: proxy)
        #expect(again.status == 0, "\(again)")
        let after = try await Self.doctor(world, environment: proxy)
        #expect(after.status("environment") == "ok", "\(after.report)")
        #expect(after.result.status == 0, "\(after.result)")
    }

    @Test("the stored tool catalog missing is a warning, damaged a failure; each says how to store it again")
    func toolCatalog() async throws {
        let (world, _) = try await Self.paired()
        let catalog = world.path("sidecar-home/state/default.tools.json")
        try Data("{\"version\": 1, \"tools\": ".utf8).write(to: URL(fileURLWithPath: catalog))
        let damaged = try await Self.doctor(world)
        #expect(damaged.result.status == 1)
        #expect(damaged.status("tool catalog") == "fail", "\(damaged.report)")
        #expect(damaged.check("tool catalog")?["fix"]?.stringValue?.contains("setup --profile default` again") == true)

        try FileManager.default.removeItem(atPath: catalog)
        let missing = try await Self.doctor(world)
        #expect(missing.status("tool catalog") == "warn", "\(missing.report)")
        #expect(missing.check("tool catalog")?["detail"]?.stringValue?.contains("the client would get no tools") == true)
    }

    @Test("no such profile: exit 2 with one line")
    func noProfile() async throws {
        let world = try PairingWorld()
        let run = try await world.sidecar(["doctor", "--profile", "nope"])
        #expect(run.status == 2)
        #expect(run.stderr.contains("there is no profile \"nope\""))
    }
}
