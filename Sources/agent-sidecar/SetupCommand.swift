import ArgumentParser
import SidecarCore

struct Setup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        // Named here, not derived from the type name: deriving demangles the type at start-up.
        commandName: "setup",
        abstract: "Pair this device with an Agent Gateway and write the MCP client config and AGENTS.md block.",
        discussion: """
            The agent's owner gives you a one-time pairing code. Pass it with --code, or in the environment variable AGENT_SIDECAR_PAIRING_CODE, or type it when asked (it is not echoed):

              agent-sidecar setup --gateway https://gateway.example.com

            Running setup again without a code refreshes the files of an already paired profile; files whose content would not change are left alone. Nothing written contains a secret.
            """
    )

    @Option(name: .long, help: "The gateway URL: https://, or http:// to a loopback address only.")
    var gateway: String?

    @Option(name: .long, help: "The pairing code (prefer the prompt or AGENT_SIDECAR_PAIRING_CODE: argv is visible to other processes).")
    var code: String?

    @Option(name: .long, help: "Profile name (one per gateway/agent pairing).")
    var profile: String = ProfileName.defaultName

    @Option(
        name: .customLong("client"),
        help: "MCP client config to write: codex, claude-code, cursor, vscode (repeatable; default codex).")
    var clients: [String] = []

    @Option(name: .long, help: "The project whose AGENTS.md (and .mcp.json, .cursor/, .vscode/) to write; default the current directory.")
    var projectDir: String?

    @Option(name: .long, help: "Codex's home directory (default $CODEX_HOME, else ~/.codex).")
    var codexHome: String?

    @Flag(name: .long, help: "Put the AGENTS.md block in $CODEX_HOME/AGENTS.md instead of the project.")
    var global = false

    @Option(
        name: .long,
        help: "Which tool calls the MCP client asks you about first: writes (reads run without asking; the default), all, or none.")
    var approve: String = ToolApproval.writes.rawValue

    @Flag(name: .customLong("print"), help: "Write no config file; print the files as they would be (the pairing itself is kept).")
    var printOnly = false

    @Option(name: .long, help: "Where to keep the key-encryption key (default beside the device key).")
    var keyFile: String?

    @Option(name: .long, help: "The device name the owner sees (default: the host name).")
    var deviceName: String?

    @Option(
        name: .customLong("ca-file"),
        help: "The gateway's private CA (PEM), trusted besides the system's; kept with the profile for serve and doctor.")
    var caFile: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        _ = try logging.makeLogger()
        var environment = ProcessEnvironment.variables()
        if let codexHome { environment["CODEX_HOME"] = codexHome }
        let paths = SidecarPaths(environment: environment)
        var targets: [SetupTarget] = []
        for client in clients.isEmpty ? ["codex"] : clients {
            guard let target = SetupTarget(rawValue: client), target != .agentsMarkdown, target != .claudeCodeSettings else {
                throw ValidationError("unknown --client '\(client)'; use codex, claude-code, cursor or vscode")
            }
            if !targets.contains(target) { targets.append(target) }
        }
        targets.append(.agentsMarkdown)

        var request = SetupRequest(
            locations: SetupLocations(environment: environment, projectDirectory: projectDir, globalInstructions: global))
        request.profile = profile
        request.targets = targets
        request.keyFile = keyFile
        request.printOnly = printOnly
        guard let approval = ToolApproval(rawValue: approve) else {
            throw ValidationError("unknown --approve '\(approve)'; use writes (the default), all or none")
        }
        request.approval = approval
        if let deviceName { request.deviceName = deviceName }
        do {
            try ProfileName.validate(profile)
            if let gateway { try SidecarSetup.checkGatewayURL(gateway) }
            request.gatewayURL = gateway
            request.pairingCode = try pairingCode(paths: paths, environment: environment)
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        var http = HTTPClientConfiguration()
        do {
            request.gatewayCA = try caFile.map { path throws(SetupError) in try GatewayCA.read(path) }
            http.additionalCertificateAuthorities = request.gatewayCA ?? (try? GatewayCA.stored(paths: paths, profile: profile)) ?? nil
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        let setup = SidecarSetup(paths: paths, environment: environment, transport: CurlHTTPClient(configuration: http))
        var outcome: SetupOutcome
        do {
            outcome = try await setup.run(request)
        } catch  where request.pairingCode == nil && SidecarSetup.needsNewPairing(error) {
            // A refresh found the pairing dead (key lost or broken, device or agent revoked): only a
            // new code mends that, so ask for one here rather than send the user in a circle.
            printError("\(error)")
            guard TerminalPrompt.standardInputIsTerminal,
                let typed = TerminalPrompt.readHiddenLine(prompt: "New pairing code from the agent's owner: "), !typed.isEmpty
            else {
                printError("pair again with the new code: pass --code CODE or set AGENT_SIDECAR_PAIRING_CODE (stdin is not a terminal to ask on)")
                throw ExitCode(1)
            }
            request.pairingCode = typed
            do {
                outcome = try await setup.run(request)
            } catch {
                printError("\(error)")
                throw ExitCode(1)
            }
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        let summary = CommandReport.setup(outcome, printOnly: printOnly)
        if printOnly {
            writeStandardError(summary)
            writeStandardOutput(outcome.packet.printed)
        } else {
            writeStandardOutput(summary)
        }
    }

    /// The code from --code, the environment, or the terminal; nil when the profile is already
    /// paired with this gateway and only its files are refreshed.
    func pairingCode(paths: SidecarPaths, environment: [String: String]) throws -> String? {
        if let code { return code }
        if let fromEnvironment = environment["AGENT_SIDECAR_PAIRING_CODE"], !fromEnvironment.isEmpty { return fromEnvironment }
        let store = ProfileStore(paths: paths)
        if store.exists(profile), let existing = try? store.load(profile) {
            let sameGateway = gateway.map { GatewayOrigin($0)?.baseURL == existing.gatewayURL } ?? true
            if sameGateway { return nil }
        } else if gateway == nil {
            throw ValidationError(
                "profile \"\(profile)\" is not paired yet; run `agent-sidecar setup --gateway URL` with the pairing code from the agent's owner")
        }
        guard TerminalPrompt.standardInputIsTerminal else {
            throw ValidationError(
                "no pairing code: pass --code CODE or set AGENT_SIDECAR_PAIRING_CODE (stdin is not a terminal to ask on)")
        }
        guard let typed = TerminalPrompt.readHiddenLine(prompt: "Pairing code from the agent's owner: "), !typed.isEmpty else {
            throw ValidationError("no pairing code was typed; run setup again and enter the code the agent's owner gave you")
        }
        return typed
    }
}
