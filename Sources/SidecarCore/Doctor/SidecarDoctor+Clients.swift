import AgentWire
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The checks of what setup wrote for each MCP client: the entry, its environment, AGENTS.md.
extension SidecarDoctor {
    /// Codex's home for a `config.toml` path.
    func clientChecks(_ profile: SidecarProfile) -> [DoctorCheck] {
        let serverName = SetupPacketWriter.serverName(profile: profile.name)
        let configs = profile.writtenFiles.filter { $0.kind != .agentsMarkdown && $0.kind != .claudeCodeSettings }
        var checks: [DoctorCheck] = []
        if configs.isEmpty {
            checks.append(
                DoctorCheck(
                    "client configs", .warning, "setup wrote no MCP client config for this profile (it ran with --print?)",
                    fix: "run `agent-sidecar setup --profile \(profile.name)` to write one, or add the entry `setup --print` shows"))
        }
        for file in profile.writtenFiles {
            switch file.kind {
            case .codex:
                let (check, entry) = codexCheck(file.path, serverName: serverName, profile: profile.name)
                checks.append(check)
                if let entry { checks.append(environmentCheck(entry, profile: profile.name)) }
            case .claudeCode, .cursor, .vscode:
                checks.append(jsonClientCheck(file, serverName: serverName, profile: profile.name))
            case .claudeCodeSettings:
                checks.append(plainJSONCheck(file.path, name: "claude-code approvals", profile: profile.name))
            case .agentsMarkdown:
                checks.append(agentsCheck(file.path, profile: profile.name))
            }
        }
        return checks
    }

    func codexCheck(_ path: String, serverName: String, profile: String) -> (DoctorCheck, ClientEntry?) {
        let name = "codex config"
        let again = "run `agent-sidecar setup --profile \(profile)` again"
        guard let bytes = try? FileSystem.readFile(path) else {
            return (DoctorCheck(name, .failed, "\(path) is gone", fix: again), nil)
        }
        let entry: ClientEntry
        let how: String
        if let codex = codexExecutable ?? ExternalProgram.find("codex", environment: environment) {
            var codexEnvironment = environment
            codexEnvironment["CODEX_HOME"] = FileSystem.directory(of: path)
            let result: ExternalProgram.Result
            do {
                result = try ExternalProgram.run(codex, ["mcp", "get", serverName, "--json"], environment: codexEnvironment, timeout: .seconds(30))
            } catch {
                return (
                    DoctorCheck(name, .failed, "\(codex) could not read \(path): \(error)", fix: "check the Codex CLI, then run doctor again"), nil
                )
            }
            guard result.status == 0 else {
                let reason = Self.codexError(result.stderrText)
                return (DoctorCheck(name, .failed, "Codex cannot use \(path): \(reason)", fix: "fix the file as Codex says, or \(again)"), nil)
            }
            do { entry = try ClientEntryReader.codexJSON(result.stdoutText, serverName: serverName) } catch {
                return (DoctorCheck(name, .failed, "\(path): \(error.message)", fix: again), nil)
            }
            how = "read back by `codex mcp get \(serverName)`"
        } else {
            do { entry = try ClientEntryReader.codexTOML(bytes, serverName: serverName) } catch {
                return (DoctorCheck(name, .failed, "\(path): \(error.message)", fix: "fix the file, or \(again)"), nil)
            }
            how = "read by agent-sidecar; no `codex` on PATH to ask"
        }
        return (entryCheck(name, entry, path: path, serverName: serverName, profile: profile, how: how), entry)
    }

    /// Whether an entry starts this binary as `serve --profile NAME`.
    func entryCheck(_ name: String, _ entry: ClientEntry, path: String, serverName: String, profile: String, how: String) -> DoctorCheck {
        let again = "run `\(executablePath) setup --profile \(profile)` again to point it here"
        guard let command = entry.command else {
            return DoctorCheck(name, .failed, "\(path): the \(serverName) entry has no command", fix: again)
        }
        guard FileSystem.exists(command) else {
            return DoctorCheck(name, .failed, "\(path): \(serverName) starts \(command), which does not exist", fix: again)
        }
        let resolved = FileSystem.realPath(command) ?? command
        let this = FileSystem.realPath(executablePath) ?? executablePath
        guard resolved == this else {
            return DoctorCheck(name, .failed, "\(path): \(serverName) starts \(command), not this binary (\(executablePath))", fix: again)
        }
        let wanted = SetupPacketWriter.serveArguments(profile: profile)
        guard entry.arguments == wanted else {
            return DoctorCheck(
                name, .failed, "\(path): \(serverName) runs it with \(entry.arguments), not \(wanted)",
                fix: "run `agent-sidecar setup --profile \(profile)` again")
        }
        guard entry.enabled else {
            return DoctorCheck(name, .warning, "\(path): \(serverName) is switched off in the client", fix: "switch it on (enabled = true)")
        }
        return DoctorCheck(name, .ok, "\(path): \(serverName) starts this binary with `\(wanted.joined(separator: " "))` (\(how))")
    }

    /// What Codex would not pass on: it gives a stdio server only a few variables of its own
    /// environment, plus the entry's `env` and `env_vars`.
    func environmentCheck(_ entry: ClientEntry, profile: String) -> DoctorCheck {
        let name = "environment"
        let again = "run `agent-sidecar setup --profile \(profile)` again in this environment to name them in the Codex entry"
        let passed = Set(ForwardedEnvironment.codexPassesByDefault + entry.forwardedVariables + entry.environment.keys)
        // Where the sidecar finds its state: the entry must set the same places this shell uses.
        for variable in ["AGENT_SIDECAR_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"] {
            let here = environment[variable].flatMap { $0.isEmpty ? nil : $0 }
            let there = entry.environment[variable]
            let hereValue = variable == "AGENT_SIDECAR_HOME" ? here.map(FileSystem.absolute) : here
            if let hereValue, there != hereValue {
                return DoctorCheck(
                    name, .failed,
                    there.map { "the Codex entry sets \(variable)=\($0), this shell \(hereValue)" }
                        ?? "\(variable) is set here (\(hereValue)) but not in the Codex entry, so the sidecar Codex starts would not find this profile",
                    fix: again)
            }
        }
        let dropped = ForwardedEnvironment.present(in: environment).filter { !passed.contains($0) }
        let named = entry.forwardedVariables.isEmpty ? "" : ", plus env_vars \(entry.forwardedVariables.joined(separator: ", "))"
        if !dropped.isEmpty {
            return DoctorCheck(
                name, .warning,
                "Codex would drop \(dropped.joined(separator: ", ")) (set here, not named in env_vars): the sidecar it starts would miss the proxy or CA settings",
                fix: again)
        }
        return DoctorCheck(
            name, .ok,
            "Codex passes \(ForwardedEnvironment.codexPassesByDefault.joined(separator: ", "))\(named); nothing the sidecar needs is dropped")
    }

    func jsonClientCheck(_ file: SidecarProfile.WrittenFile, serverName: String, profile: String) -> DoctorCheck {
        let name = "\(file.kind.rawValue) config"
        guard let bytes = try? FileSystem.readFile(file.path) else {
            return DoctorCheck(
                name, .failed, "\(file.path) is gone", fix: "run `agent-sidecar setup --profile \(profile) --client \(file.kind.rawValue)` again")
        }
        do {
            let entry = try ClientEntryReader.json(bytes, serversKey: JSONClientConfig.serversKey(for: file.kind), serverName: serverName)
            return entryCheck(name, entry, path: file.path, serverName: serverName, profile: profile, how: "read by agent-sidecar")
        } catch {
            return DoctorCheck(
                name, .failed, "\(file.path): \(error.message)",
                fix: "fix the file, or run `agent-sidecar setup --profile \(profile) --client \(file.kind.rawValue)` again")
        }
    }

    func plainJSONCheck(_ path: String, name: String, profile: String) -> DoctorCheck {
        guard let bytes = try? FileSystem.readFile(path) else {
            return DoctorCheck(name, .warning, "\(path) is gone", fix: "run `agent-sidecar setup --profile \(profile) --client claude-code` again")
        }
        guard (try? JSONValue(parsing: bytes))?.objectValue != nil else {
            return DoctorCheck(name, .failed, "\(path) is not plain JSON", fix: "fix the file; Claude Code does not read it as it is")
        }
        return DoctorCheck(name, .ok, "\(path) parses")
    }

    func agentsCheck(_ path: String, profile: String) -> DoctorCheck {
        let again = "run `agent-sidecar setup --profile \(profile)` again"
        guard let bytes = try? FileSystem.readFile(path) else {
            return DoctorCheck("AGENTS.md", .warning, "\(path) is gone; the agent gets no instructions about the tracker", fix: again)
        }
        do {
            guard try AgentsMarkdown.locate(bytes, profile: profile) != nil else {
                return DoctorCheck("AGENTS.md", .warning, "\(path) has no agent-sidecar block for profile \(profile)", fix: again)
            }
        } catch {
            return DoctorCheck("AGENTS.md", .failed, "\(path): \(error.message)", fix: "remove the stray marker, then \(again)")
        }
        return DoctorCheck("AGENTS.md", .ok, "\(path) has the block for profile \(profile)")
    }

    /// The line of Codex's error output that says what is wrong (not its backtrace).
    static func codexError(_ stderr: String) -> String {
        let lines = stderr.split(separator: "\n").map { String($0).trimmingWhitespace }.filter {
            !$0.isEmpty && !$0.hasPrefix("WARNING") && !$0.hasPrefix("Stack backtrace") && !$0.first!.isNumber && $0 != "Caused by:"
        }
        let useful = lines.prefix(3).joined(separator: " ")
        return useful.count > 300 ? String(useful.prefix(300)) + "…" : (useful.isEmpty ? "it exited with an error" : useful)
    }
}
