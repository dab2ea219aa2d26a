import Foundation
import SodiumKit
import SystemSupport
import Testing

@testable import SidecarCore

@Suite struct SetupPacketTests {
    struct Fixture {
        let directory: TemporaryDirectory
        let writer: SetupPacketWriter
        var profile = SetupAgentsMarkdownTests.profile

        init(global: Bool = false) throws {
            directory = try TemporaryDirectory()
            writer = SetupPacketWriter(
                locations: SetupLocations(
                    codexHome: directory.file("codex"), projectDirectory: directory.file("project"), globalInstructions: global))
        }

        func plan(
            _ targets: [SetupTarget] = SetupTarget.allCases, profile: SidecarProfile? = nil, approval: ToolApproval = .writes
        ) throws -> SetupPacket {
            try writer.plan(
                targets: targets, profile: profile ?? self.profile, executablePath: "/opt/bin/agent-sidecar",
                serverEnvironment: [("AGENT_SIDECAR_HOME", directory.file("home"))], tools: SetupAgentsMarkdownTests.tools,
                forwardedVariables: ["HTTPS_PROXY"], approval: approval)
        }
    }

    @Test func writesEveryFileOnceAndThenNothing() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        try fixture.directory.write("codex/config.toml", "# mine\nmodel = \"x\"\n", mode: 0o600)
        try fixture.directory.write("project/AGENTS.md", "# Rules\n")

        let packet = try fixture.plan()
        #expect(
            packet.files.map(\.path) == [
                fixture.directory.file("codex/config.toml"), fixture.directory.file("project/.mcp.json"),
                fixture.directory.file("project/.claude/settings.local.json"), fixture.directory.file("project/.cursor/mcp.json"),
                fixture.directory.file("project/.vscode/mcp.json"), fixture.directory.file("project/AGENTS.md"),
            ])
        #expect(packet.warnings.map(\.code) == [.approvalsNotWritten])
        let results = try fixture.writer.write(packet)
        #expect(results.map(\.outcome) == [.written, .written, .written, .written, .written, .written])
        #expect(results[0].backupPath == fixture.directory.file("codex/config.toml.bak-agent-sidecar"))
        #expect(try fixture.directory.read("codex/config.toml.bak-agent-sidecar") == "# mine\nmodel = \"x\"\n")
        #expect(fileMode(fixture.directory.file("codex/config.toml")) == 0o600)
        #expect(fileMode(fixture.directory.file("codex/config.toml.bak-agent-sidecar")) == 0o600)
        #expect(results[1].backupPath == nil)
        #expect(try fixture.directory.read("project/AGENTS.md")?.hasPrefix("# Rules\n\n<!-- agent-sidecar:begin profile=default -->") == true)
        #expect(try pythonTOMLParses(fixture.directory.file("codex/config.toml")).ok)

        // The second run changes nothing, rewrites nothing, backs up nothing.
        var before = stat()
        stat(fixture.directory.file("codex/config.toml"), &before)
        unlink(fixture.directory.file("codex/config.toml.bak-agent-sidecar"))
        let again = try fixture.plan()
        #expect(again.files.allSatisfy { !$0.changes })
        #expect(try fixture.writer.write(again).allSatisfy { $0.outcome == .unchanged })
        var after = stat()
        stat(fixture.directory.file("codex/config.toml"), &after)
        #expect(before.st_ino == after.st_ino)
        #expect(!FileSystem.exists(fixture.directory.file("codex/config.toml.bak-agent-sidecar")))
    }

    @Test func printModeShowsEverythingAndWritesNothing() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let packet = try fixture.plan([.codex, .agentsMarkdown])
        let printed = packet.printed
        #expect(printed.contains("==> \(fixture.directory.file("codex/config.toml")) <=="))
        #expect(printed.contains("command = \"/opt/bin/agent-sidecar\""))
        #expect(printed.contains("<!-- agent-sidecar:begin profile=default -->"))
        #expect(!FileSystem.exists(fixture.directory.file("codex")))
        #expect(!FileSystem.exists(fixture.directory.file("project")))
    }

    @Test func globalInstructionsGoToCodexHome() throws {
        let fixture = try Fixture(global: true)
        defer { fixture.directory.remove() }
        _ = try fixture.writer.write(try fixture.plan([.agentsMarkdown]))
        #expect(FileSystem.exists(fixture.directory.file("codex/AGENTS.md")))
        #expect(fileMode(fixture.directory.file("codex")) == 0o700)
    }

    @Test func warnsWhenInstructionsOutgrowCodexsBudget() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        try fixture.directory.write("project/AGENTS.md", String(repeating: "x", count: 32 * 1024) + "\n")
        let packet = try fixture.plan([.agentsMarkdown])
        #expect(packet.warnings.map(\.code) == [.instructionsOverBudget])
    }

    @Test func purgeTakesOutOnlyOurParts() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let userConfig = "# mine\nmodel = \"x\"\n"
        try fixture.directory.write("codex/config.toml", userConfig)
        try fixture.directory.write("project/.vscode/mcp.json", "{\n  \"servers\": {\n    \"other\": {\"command\": \"o\"}\n  }\n}\n")
        let packet = try fixture.plan()
        _ = try fixture.writer.write(packet)
        let written = packet.files.map { SidecarProfile.WrittenFile(path: $0.path, kind: $0.target) }

        let removal = try fixture.writer.planRemoval(profile: "default", files: written)
        let results = try fixture.writer.write(removal)
        #expect(results.map(\.outcome) == [.written, .removed, .removed, .removed, .written, .removed])
        #expect(!FileSystem.exists(fixture.directory.file("project/.claude/settings.local.json")))
        #expect(try fixture.directory.read("codex/config.toml") == userConfig)
        #expect(try fixture.directory.read("project/.vscode/mcp.json")?.contains("\"other\"") == true)
        #expect(try fixture.directory.read("project/.vscode/mcp.json")?.contains("agent-sidecar") == false)
        #expect(!FileSystem.exists(fixture.directory.file("project/.mcp.json")))
        #expect(!FileSystem.exists(fixture.directory.file("project/AGENTS.md")))
        // Nothing left to remove the second time.
        #expect(try fixture.writer.planRemoval(profile: "default", files: written).files.allSatisfy { !$0.changes })
    }

    @Test func packetHoldsNoSecret() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let key = DeviceKey.generate()
        let seed = Base64.encode(key.seed.withUnsafeBytes { Array($0) })
        let printed = try fixture.plan().printed
        #expect(!printed.contains(seed))
        #expect(!printed.contains("ags_"))
        #expect(!printed.lowercased().contains("bearer"))
    }

    @Test func serverNamesAndEnvironment() {
        #expect(SetupPacketWriter.serverName(profile: "default") == "agent-sidecar")
        #expect(SetupPacketWriter.serverName(profile: "work") == "agent-sidecar-work")
        let environment = SetupPacketWriter.serverEnvironment(["AGENT_SIDECAR_HOME": "/h", "XDG_STATE_HOME": "/s", "PATH": "/bin", "SECRET": "x"])
        #expect(environment.map(\.0) == ["AGENT_SIDECAR_HOME", "XDG_STATE_HOME"])
        let locations = SetupLocations(environment: ["HOME": "/home/u"], projectDirectory: "/p")
        #expect(locations.path(of: .codex) == "/home/u/.codex/config.toml")
        #expect(locations.path(of: .cursor) == "/p/.cursor/mcp.json")
        #expect(SetupLocations(environment: ["CODEX_HOME": "/c"], projectDirectory: "/p").path(of: .codex) == "/c/config.toml")
    }
}
