import AgentWire
import Foundation
import TestSupport
import Testing

/// `setup` run inside a repository someone else controls: a cloned git repository with planted
/// symbolic links. Nothing outside the project may be written, and setup must say why it stopped.
@Suite("setup in a hostile cloned repository", .secretScan)
struct HostileProjectTests {
    /// A file of the user's that a planted link points at.
    static let victimContent = "export SAFE=1\n"

    /// Makes a git repository with `links` (path → link target) and `files`, and clones it into the
    /// world's project directory, as a user would.
    static func cloneHostileRepository(in world: PairingWorld, files: [String: String], links: [String: String]) async throws {
        let origin = world.path("origin")
        try FileManager.default.createDirectory(atPath: origin, withIntermediateDirectories: true)
        for (path, content) in files {
            let url = URL(fileURLWithPath: origin).appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(content.utf8).write(to: url)
        }
        for (path, target) in links {
            let url = URL(fileURLWithPath: origin).appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: target)
        }
        let git = [
            "HOME": world.path("user"), "GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x", "GIT_COMMITTER_NAME": "x", "GIT_COMMITTER_EMAIL": "x@x",
        ]
        for arguments in [["init", "-q"], ["add", "-A"], ["commit", "-qm", "plant"]] {
            let result = try await Command.run("/usr/bin/git", ["-C", origin] + arguments, environment: git)
            try #require(result.status == 0, "\(result)")
        }
        try FileManager.default.removeItem(atPath: world.project)
        let cloned = try await Command.run("/usr/bin/git", ["clone", "-q", origin, world.project], environment: git)
        try #require(cloned.status == 0, "\(cloned)")
    }

    /// The user's dotfile, which the links aim at.
    static func plantVictim(in world: PairingWorld) throws -> String {
        let victim = world.path("user/.bashrc")
        try Data(victimContent.utf8).write(to: URL(fileURLWithPath: victim))
        return victim
    }

    @Test(
        "a planted link for AGENTS.md's backup, for AGENTS.md itself, or for a client folder: setup refuses, names it, and writes nothing outside",
        arguments: [
            (["AGENTS.md": "# Project rules\n"], ["AGENTS.md.bak-agent-sidecar": "../user/.bashrc"], [String]()),
            ([String: String](), ["AGENTS.md": "../user/.bashrc"], [String]()),
            (["AGENTS.md": "# Project rules\n"], [".cursor": "../user"], ["--client", "cursor"]),
        ])
    func plantedLinks(files: [String: String], links: [String: String], extra: [String]) async throws {
        let world = try PairingWorld()
        let victim = try Self.plantVictim(in: world)
        try await Self.cloneHostileRepository(in: world, files: files, links: links)
        let gateway = try await TestGateway.start(in: world.root)

        let result = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()), extra: extra)
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("is a symbolic link"), "\(result)")
        let planted = links.keys.first!
        #expect(result.stderr.contains("\(world.project)/\(planted)"), "the message names the link: \(result.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == Self.victimContent, "setup wrote through the planted link")
        #expect(!FileManager.default.fileExists(atPath: world.path("user/mcp.json")))
        if let agents = files["AGENTS.md"] { #expect(world.text("project/AGENTS.md") == agents) }
    }

    @Test("a planted link for config.toml's backup in the Codex home is refused too")
    func plantedCodexBackupLink() async throws {
        let world = try PairingWorld()
        let victim = try Self.plantVictim(in: world)
        try FileManager.default.createDirectory(atPath: world.codexHome, withIntermediateDirectories: true)
        try Data("model = \"o3\"\n".utf8).write(to: URL(fileURLWithPath: world.codexHome + "/config.toml"))
        try FileManager.default.createSymbolicLink(atPath: world.codexHome + "/config.toml.bak-agent-sidecar", withDestinationPath: victim)
        let gateway = try await TestGateway.start(in: world.root)

        let result = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()))
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("config.toml.bak-agent-sidecar is a symbolic link"), "\(result)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == Self.victimContent)
        #expect(world.text("codex/config.toml") == "model = \"o3\"\n")
    }

    @Test("a FIFO planted as AGENTS.md does not hang setup")
    func plantedFIFO() async throws {
        let world = try PairingWorld()
        #expect(mkfifo(world.project + "/AGENTS.md", 0o644) == 0)
        let gateway = try await TestGateway.start(in: world.root)
        let result = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()))
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("AGENTS.md is not a regular file"), "\(result)")
    }

    @Test("a dotfile manager's link for the Codex config is still followed, and its target updated")
    func userLinkInCodexHomeIsFollowed() async throws {
        let world = try PairingWorld()
        let dotfiles = world.path("user/dotfiles")
        try FileManager.default.createDirectory(atPath: dotfiles, withIntermediateDirectories: true)
        try Data("model = \"o3\"\n".utf8).write(to: URL(fileURLWithPath: dotfiles + "/config.toml"))
        try FileManager.default.createDirectory(atPath: world.codexHome, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: world.codexHome + "/config.toml", withDestinationPath: dotfiles + "/config.toml")
        let gateway = try await TestGateway.start(in: world.root)

        let result = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()))
        #expect(result.status == 0, "\(result)")
        let target = try String(contentsOfFile: dotfiles + "/config.toml", encoding: .utf8)
        #expect(target.hasPrefix("model = \"o3\"\n") && target.contains("[mcp_servers.agent-sidecar]"))
        let attributes = try FileManager.default.attributesOfItem(atPath: world.codexHome + "/config.toml")
        #expect(attributes[.type] as? FileAttributeType == .typeSymbolicLink, "the link stays a link")
    }
}
