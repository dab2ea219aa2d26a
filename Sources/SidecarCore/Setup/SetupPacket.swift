import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file the setup packet can write into.
public enum SetupTarget: String, Sendable, CaseIterable {
    /// `$CODEX_HOME/config.toml`: `[mcp_servers.NAME]`.
    case codex
    /// `PROJECT/.mcp.json`: `mcpServers.NAME`.
    case claudeCode = "claude-code"
    /// `PROJECT/.claude/settings.local.json`: Claude Code's permission rules for our tools
    /// (`setup --approve`); planned with ``claudeCode``, never chosen on its own.
    case claudeCodeSettings = "claude-code-settings"
    /// `PROJECT/.cursor/mcp.json`: `mcpServers.NAME`.
    case cursor
    /// `PROJECT/.vscode/mcp.json`: `servers.NAME`.
    case vscode
    /// `PROJECT/AGENTS.md` (or `$CODEX_HOME/AGENTS.md`): the instruction block.
    case agentsMarkdown = "agents-md"
}

/// Where the packet's files go.
public struct SetupLocations: Sendable, Equatable {
    /// `$CODEX_HOME`, default `~/.codex`.
    public var codexHome: String
    /// The project directory (`--project-dir`, default the current directory).
    public var projectDirectory: String
    /// Whether the AGENTS.md block goes to `$CODEX_HOME/AGENTS.md` (`--global`) instead of the project.
    public var globalInstructions: Bool

    public init(codexHome: String, projectDirectory: String, globalInstructions: Bool = false) {
        self.codexHome = codexHome
        self.projectDirectory = projectDirectory
        self.globalInstructions = globalInstructions
    }

    /// The defaults for an environment: `$CODEX_HOME` or `~/.codex`, and the project directory
    /// given (relative paths are taken from the current directory) or the current directory.
    public init(environment: [String: String], projectDirectory: String? = nil, globalInstructions: Bool = false) {
        let codexHome = environment["CODEX_HOME"].flatMap { $0.isEmpty ? nil : $0 }
        self.codexHome = FileSystem.absolute(codexHome ?? FileSystem.join(SidecarPaths.homeDirectory(environment), ".codex"))
        self.projectDirectory = FileSystem.absolute(projectDirectory ?? FileSystem.currentDirectory())
        self.globalInstructions = globalInstructions
    }

    /// The file a target writes into.
    public func path(of target: SetupTarget) -> String {
        switch target {
        case .codex: return FileSystem.join(codexHome, "config.toml")
        case .claudeCode: return FileSystem.join(projectDirectory, ".mcp.json")
        case .claudeCodeSettings: return FileSystem.join(projectDirectory, ".claude/settings.local.json")
        case .cursor: return FileSystem.join(projectDirectory, ".cursor/mcp.json")
        case .vscode: return FileSystem.join(projectDirectory, ".vscode/mcp.json")
        case .agentsMarkdown: return FileSystem.join(globalInstructions ? codexHome : projectDirectory, "AGENTS.md")
        }
    }

    /// Whether a target's file lies in the project directory (untrusted: it may be a cloned repository).
    public func isInProject(_ target: SetupTarget) -> Bool {
        switch target {
        case .codex: return false
        case .claudeCode, .claudeCodeSettings, .cursor, .vscode: return true
        case .agentsMarkdown: return !globalInstructions
        }
    }
}

/// Something the user should know about the packet that does not stop it.
public struct SetupWarning: Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// AGENTS.md is over Codex's 32 KiB project-doc budget; Codex will cut it.
        public static let instructionsOverBudget = Code(rawValue: "instructions_over_budget")
        /// The client keeps tool approvals where setup does not write (Cursor, VS Code).
        public static let approvalsNotWritten = Code(rawValue: "approvals_not_written")
    }
    public let code: Code
    public let message: String
    public var description: String { message }
}

/// One file of the packet: what is there now and what setup would leave there.
public struct SetupFileChange: Sendable, Equatable {
    public let target: SetupTarget
    public let path: String
    /// The current content; `nil` when the file does not exist.
    public let existing: [UInt8]?
    /// The content after the change; `nil` means the file is removed.
    public let updated: [UInt8]?

    /// Whether writing would change anything on disk.
    public var changes: Bool { existing != updated }
}

/// The setup packet: every file with its new content, plus warnings. Nothing in it is secret.
public struct SetupPacket: Sendable, Equatable {
    public var files: [SetupFileChange]
    public var warnings: [SetupWarning]

    /// For `--print`: each file's path and its complete new content.
    public var printed: String {
        var output = ""
        for file in files {
            output += "==> \(file.path)\(file.changes ? "" : " (unchanged)") <==\n"
            if let updated = file.updated {
                output += String(decoding: updated, as: UTF8.self)
                if updated.last != UInt8(ascii: "\n") { output += "\n" }
            } else {
                output += "(removed)\n"
            }
            output += "\n"
        }
        return output
    }
}

/// What ``SetupPacketWriter/write(_:)`` did to one file.
public struct SetupWriteResult: Sendable, Equatable {
    public let target: SetupTarget
    public let path: String
    /// `written`, `unchanged` or `removed`.
    public let outcome: Outcome
    /// The copy of the previous content, when one was made.
    public let backupPath: String?

    public enum Outcome: String, Sendable {
        case written, unchanged, removed
    }
}

/// Plans and writes the setup packet: the MCP client entries and the AGENTS.md block.
///
/// Planning reads the current files and computes the merged content without writing, so
/// `--print` and the real run share one code path. Writing replaces only files whose content
/// changes, each atomically, after copying the previous content to `FILE.bak-agent-sidecar`
/// (same permissions; one backup per file, overwritten by the next change). No write follows a
/// link inside the project directory, and no backup is ever written through a link
/// (`SetupPathGuard`).
public struct SetupPacketWriter: Sendable {
    /// The suffix of backup files.
    public static let backupSuffix = ".bak-agent-sidecar"

    public let locations: SetupLocations

    public init(locations: SetupLocations) { self.locations = locations }

    /// The MCP server name for a profile: `agent-sidecar`, or `agent-sidecar-NAME`.
    public static func serverName(profile: String) -> String {
        profile == ProfileName.defaultName ? "agent-sidecar" : "agent-sidecar-\(profile)"
    }

    /// The arguments the MCP host starts the sidecar with.
    public static func serveArguments(profile: String) -> [String] { ["serve", "--profile", profile] }

    /// The non-secret variables the MCP host must pass so the sidecar finds its state: the ones
    /// in `environment` among `AGENT_SIDECAR_HOME`, `XDG_CONFIG_HOME` and `XDG_STATE_HOME`
    /// (Codex passes only a few variables such as `HOME` and `PATH` to MCP servers by default).
    public static func serverEnvironment(_ environment: [String: String]) -> [(String, String)] {
        ["AGENT_SIDECAR_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"].compactMap { name in
            guard let value = environment[name], !value.isEmpty else { return nil }
            return (name, name == "AGENT_SIDECAR_HOME" ? FileSystem.absolute(value) : value)
        }
    }

    /// Computes the packet for a profile.
    ///
    /// - Parameters:
    ///   - targets: The files to produce.
    ///   - profile: The paired profile.
    ///   - executablePath: The absolute path of the sidecar binary the host should start.
    ///   - serverEnvironment: From ``serverEnvironment(_:)``.
    ///   - tools: The tool summary for AGENTS.md (and the read-only flags the approvals follow).
    ///   - forwardedVariables: Variables Codex passes on by name (``ForwardedEnvironment/present(in:)``).
    ///   - approval: Which calls the client asks the user about first.
    public func plan(
        targets: [SetupTarget], profile: SidecarProfile, executablePath: String, serverEnvironment: [(String, String)],
        tools: [AgentsMarkdown.Tool], forwardedVariables: [String] = [], approval: ToolApproval = .writes
    ) throws -> SetupPacket {
        let serverName = Self.serverName(profile: profile.name)
        let arguments = Self.serveArguments(profile: profile.name)
        var packet = SetupPacket(files: [], warnings: [])
        // Claude Code keeps approvals apart from the server entry, in a settings file of its own.
        var expanded: [SetupTarget] = []
        for target in targets.flatMap({ $0 == .claudeCode ? [.claudeCode, .claudeCodeSettings] : [$0] }) where !expanded.contains(target) {
            expanded.append(target)
        }
        if approval != .none, let other = expanded.first(where: { $0 == .cursor || $0 == .vscode }) {
            packet.warnings.append(
                SetupWarning(
                    code: .approvalsNotWritten,
                    message:
                        "\(other == .cursor ? "Cursor" : "VS Code") keeps tool approvals in its own settings, not in the file setup writes: choose there which of the agent's tools may run without asking (--approve \(approval.rawValue) applies to Codex and Claude Code)"
                ))
        }
        for target in expanded {
            let path = locations.path(of: target)
            // The project directory may be someone else's repository: no links there, regular files only.
            _ = try SetupPathGuard.writablePath(path, untrustedRoot: locations.isInProject(target) ? locations.projectDirectory : nil)
            let existing = try FileSystem.readFile(path)
            let updated: [UInt8]
            switch target {
            case .codex:
                let table = try CodexConfig.renderTable(
                    serverName: serverName, profile: profile.name, command: executablePath, arguments: arguments,
                    environment: serverEnvironment, forwardedVariables: forwardedVariables, approval: approval, tools: tools)
                updated = try CodexConfig.merge(existing: try utf8(existing ?? [], path: path), serverName: serverName, table: table)
            case .claudeCodeSettings:
                guard
                    let merged = try ClaudeCodeSettings.merge(
                        existing: existing, serverName: serverName, approval: approval, tools: tools, path: path)
                else {
                    if existing == nil { continue }  // nothing to say, and no file to leave alone
                    updated = existing ?? []
                    break
                }
                updated = merged
            case .claudeCode, .cursor, .vscode:
                let entry = try JSONClientConfig.renderEntry(
                    target, command: executablePath, arguments: arguments, environment: serverEnvironment)
                updated =
                    try JSONClientConfig.merge(existing: existing, target: target, serverName: serverName, entry: entry, path: path)
                    ?? existing ?? []
            case .agentsMarkdown:
                let block = try AgentsMarkdown.renderBlock(profile: profile, serverName: serverName, tools: tools)
                updated = try AgentsMarkdown.merge(existing: try utf8(existing ?? [], path: path), block: block)
                if updated.count > AgentsMarkdown.codexProjectDocBudget {
                    packet.warnings.append(
                        SetupWarning(
                            code: .instructionsOverBudget,
                            message:
                                "\(path) is \(updated.count) bytes, over Codex's \(AgentsMarkdown.codexProjectDocBudget)-byte project-doc budget; Codex will truncate it: shorten the file or raise project_doc_max_bytes"
                        ))
                }
            }
            packet.files.append(SetupFileChange(target: target, path: path, existing: existing, updated: updated))
        }
        return packet
    }

    /// Computes the removal of our entries (for `logout --purge-config`) from the files setup
    /// recorded; files that would be left empty are removed.
    ///
    /// - Parameters:
    ///   - profile: The profile name.
    ///   - files: The files from ``SidecarProfile/writtenFiles``.
    public func planRemoval(profile: String, files: [SidecarProfile.WrittenFile]) throws -> SetupPacket {
        let serverName = Self.serverName(profile: profile)
        var packet = SetupPacket(files: [], warnings: [])
        for file in files {
            // What setup wrote may have become a link since; inside a project, never follow it.
            _ = try SetupPathGuard.writablePath(
                file.path, untrustedRoot: file.kind == .codex ? nil : FileSystem.directory(of: file.path))
            guard let existing = try FileSystem.readFile(file.path) else { continue }
            var updated: [UInt8]?
            switch file.kind {
            case .codex:
                updated = CodexConfig.remove(existing: try utf8(existing, path: file.path), serverName: serverName)
            case .claudeCode, .cursor, .vscode:
                updated =
                    try JSONClientConfig.remove(existing: existing, target: file.kind, serverName: serverName, path: file.path) ?? existing
            case .claudeCodeSettings:
                updated = try ClaudeCodeSettings.remove(existing: existing, serverName: serverName, path: file.path) ?? existing
            case .agentsMarkdown:
                updated = try AgentsMarkdown.remove(existing: try utf8(existing, path: file.path), profile: profile) ?? existing
            }
            if let result = updated, result != existing, result.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
                updated = nil
            }
            packet.files.append(SetupFileChange(target: file.kind, path: file.path, existing: existing, updated: updated))
        }
        return packet
    }

    /// Writes the files of a packet that change. Unchanged files are not touched and get no backup.
    ///
    /// - Returns: what happened to each file, in packet order.
    public func write(_ packet: SetupPacket) throws -> [SetupWriteResult] {
        var results: [SetupWriteResult] = []
        for file in packet.files {
            guard file.changes else {
                results.append(SetupWriteResult(target: file.target, path: file.path, outcome: .unchanged, backupPath: nil))
                continue
            }
            var backupPath: String? = nil
            if let existing = file.existing {
                let target = FileSystem.realPath(file.path) ?? file.path
                backupPath = target + Self.backupSuffix
                try SetupPathGuard.requireBackupSlot(backupPath!)
                var info = stat()
                let mode: mode_t = stat(target, &info) == 0 ? info.st_mode & 0o777 : 0o600
                try AtomicFile.write(existing, to: backupPath!, permissions: .exactly(mode), followLinks: false)
            }
            if let updated = file.updated {
                // Project directories such as .vscode are ordinary folders; ~/.codex stays private.
                let isCodexHome = file.target == .codex || (file.target == .agentsMarkdown && locations.globalInstructions)
                let directoryMode: mode_t = isCodexHome ? 0o700 : 0o755
                try AtomicFile.write(
                    updated, to: file.path, permissions: .preservingExisting(newFileMode: 0o644), directoryMode: directoryMode)
                results.append(SetupWriteResult(target: file.target, path: file.path, outcome: .written, backupPath: backupPath))
            } else {
                try FileSystem.removeFile(file.path)
                AtomicFile.syncDirectory(FileSystem.directory(of: file.path))
                results.append(SetupWriteResult(target: file.target, path: file.path, outcome: .removed, backupPath: backupPath))
            }
        }
        return results
    }

    private func utf8(_ bytes: [UInt8], path: String) throws(SetupError) -> [UInt8] {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw SetupError(.unparseableConfig, "\(path) is not valid UTF-8; fix it, then run setup again")
        }
        return bytes
    }
}
