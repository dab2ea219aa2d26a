import AgentWire
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `agent-sidecar doctor`: checks, one by one, everything a client needs for the sidecar of one
/// profile to work, and says for each thing that does not hold how to fix it.
///
/// In order: the profile file; the device key and its key-encryption key (present, owner-only,
/// decrypting to the key the profile registered); the stored tool catalog; each client config setup wrote (still parses,
/// still starts this binary with `serve --profile NAME`; Codex's through `codex mcp get` when the
/// Codex CLI is on `PATH`); the variables Codex would not pass on; the gateway (reachable, TLS
/// valid); the clock against the gateway's `Date`; and a session minted with the device key, with
/// the agent's tools listed over MCP and the session ended again.
public struct SidecarDoctor: Sendable {
    public let paths: SidecarPaths
    public let environment: [String: String]
    let transport: any GatewayTransport
    /// The binary the client configs should start (this process's executable).
    public var executablePath: String
    /// The Codex CLI used to read Codex's config back (`nil`: look for `codex` on `PATH`).
    public var codexExecutable: String?
    /// Time allowed for each request to the gateway.
    public var timeout: Duration = .seconds(15)

    /// - Parameters:
    ///   - paths: The state layout.
    ///   - environment: The environment the checks see (`PATH`, proxies, `AGENT_SIDECAR_KEY_FILE`…).
    ///   - transport: The HTTP client (`CurlHTTPClient`).
    public init(paths: SidecarPaths, environment: [String: String], transport: any GatewayTransport) {
        self.paths = paths
        self.environment = environment
        self.transport = transport
        self.executablePath = SidecarSetup.currentExecutablePath()
    }

    /// The clock skew from which the gateway refuses a session request (it allows five minutes).
    public static let refusedSkewSeconds: Int64 = 300
    /// The skew from which the doctor warns.
    public static let warnedSkewSeconds: Int64 = 60

    /// Runs every check for a profile.
    ///
    /// - Parameters:
    ///   - name: The profile.
    ///   - keyFile: `--key-file PATH`, when the key-encryption key is not where setup put it.
    /// - Throws: ``CredentialError/Code/profileNotFound`` when there is no such profile (the command
    ///   exits 2 then, like `status`); every other problem is a failed check in the report.
    public func run(profile name: String, keyFile: String? = nil) async throws -> DoctorReport {
        try ProfileName.validate(name)
        var checks: [DoctorCheck] = []
        let store = ProfileStore(paths: paths)
        guard store.exists(name) else {
            throw CredentialError(.profileNotFound, "there is no profile \"\(name)\" (\(paths.profileFile(name))); run `agent-sidecar setup` first")
        }

        // The profile.
        let profile: SidecarProfile
        do {
            profile = try store.load(name)
            checks.append(profileCheck(profile))
        } catch {
            checks.append(DoctorCheck("profile", .failed, "\(error)", fix: "run `agent-sidecar setup --profile \(name)` again"))
            return DoctorReport(
                profile: name, checks: checks + skipped(["device key", "tool catalog", "client configs", "gateway", "clock", "session"]))
        }

        // The device key.
        var deviceKey: DeviceKey?
        do {
            let key = try CredentialStore(paths: paths, environment: environment).loadDeviceKey(
                for: profile, explicitKeyEncryptionKeyFile: keyFile)
            deviceKey = key
            let kek = CredentialStore(paths: paths, environment: environment).keyEncryptionKeyFile(
                profile: name, explicitPath: keyFile, recordedPath: profile.keyEncryptionKeyFile)
            checks.append(
                DoctorCheck(
                    "device key", .ok,
                    "\(paths.keyFile(name)) (\(Self.mode(paths.keyFile(name)))) decrypts with \(kek) (\(Self.mode(kek))) to the key this device registered"
                ))
        } catch let error as CredentialError {
            checks.append(DoctorCheck("device key", .failed, error.message, fix: Self.keyFix(error, profile: name)))
        } catch {
            checks.append(DoctorCheck("device key", .failed, "\(error)", fix: "run `agent-sidecar setup --profile \(name)` again"))
        }

        // The stored tool catalog (what serve lists when the gateway is down or refuses).
        checks.append(catalogCheck(profile))

        // The client configs setup wrote, and what Codex would pass on.
        checks += clientChecks(profile)

        // The gateway, its TLS and its clock.
        guard let gateway = profile.gateway, let api = try? GatewayAPIClient(gateway: gateway, transport: transport) else {
            checks.append(
                DoctorCheck(
                    "gateway", .failed, "the profile's gateway URL \(profile.gatewayURL) is not usable",
                    fix: "run `agent-sidecar setup --gateway URL --profile \(name)` with a new pairing code"))
            return DoctorReport(profile: name, checks: checks + skipped(["clock", "session"]))
        }
        let reached = await gatewayCheck(gateway)
        checks.append(reached.check)
        guard reached.check.status != .failed else { return DoctorReport(profile: name, checks: checks + skipped(["clock", "session"])) }
        checks.append(clockCheck(reached.date))

        // A session, and the agent's tools.
        guard let deviceKey else { return DoctorReport(profile: name, checks: checks + skipped(["session"])) }
        checks.append(await sessionCheck(api: api, key: deviceKey, profile: profile))
        return DoctorReport(profile: name, checks: checks)
    }

    func skipped(_ names: [String]) -> [DoctorCheck] {
        names.map { DoctorCheck($0, .skipped, "not checked: it needs what failed above") }
    }

    // MARK: Profile and key

    func profileCheck(_ profile: SidecarProfile) -> DoctorCheck {
        let file = paths.profileFile(profile.name)
        let fileMode = Self.permissions(file)
        let directoryMode = Self.permissions(paths.profilesDirectory)
        if let fileMode, fileMode & 0o077 != 0 {
            return DoctorCheck(
                "profile", .failed, "\(file) is \(Self.octal(fileMode)), readable by others", fix: "run `chmod 600 \(file)`")
        }
        if let directoryMode, directoryMode & 0o022 != 0 {
            return DoctorCheck(
                "profile", .failed, "\(paths.profilesDirectory) is \(Self.octal(directoryMode)), writable by others",
                fix: "run `chmod 700 \(paths.profilesDirectory)`")
        }
        return DoctorCheck(
            "profile", .ok,
            "\(file) (\(Self.mode(file))): device \(profile.deviceID) of agent \(profile.agent.name) (\(profile.agent.id)), gateway \(profile.gatewayURL)"
        )
    }

    /// The catalog `serve` lists when it cannot reach the gateway: readable, this gateway's, owner-only.
    /// A missing one is a warning (the first `serve` that reaches the gateway writes it).
    func catalogCheck(_ profile: SidecarProfile) -> DoctorCheck {
        let cache = ToolCatalogCache(paths: paths, profile: profile.name, gatewayURL: profile.gatewayURL)
        let again = "run `agent-sidecar setup --profile \(profile.name)` again (or start the sidecar once while the gateway is up) to store it afresh"
        switch cache.load() {
        case .success(let snapshot):
            if let mode = Self.permissions(cache.path), mode & 0o077 != 0 {
                return DoctorCheck(
                    "tool catalog", .failed, "\(cache.path) is \(Self.octal(mode)), readable by others", fix: "run `chmod 600 \(cache.path)`")
            }
            return DoctorCheck(
                "tool catalog", .ok,
                "\(cache.path) (\(Self.mode(cache.path))): \(snapshot.tools.count) tools stored \(snapshot.savedAt), served while the gateway is unreachable"
            )
        case .failure(.missing):
            return DoctorCheck(
                "tool catalog", .warning, "\(cache.path) is missing: with the gateway down at start, the client would get no tools", fix: again)
        case .failure(let failure):
            return DoctorCheck("tool catalog", .failed, "\(failure.description) (\(cache.path))", fix: again)
        }
    }

    static func keyFix(_ error: CredentialError, profile: String) -> String {
        switch error.code {
        case .permissionsTooOpen: return error.path.map { "run `chmod 600 \($0)`" } ?? "make the key files owner-only (chmod 600)"
        case .unsafeDirectory: return error.path.map { "run `chmod 700 \($0)`" } ?? "make the key directory owner-only (chmod 700)"
        case .keyEncryptionKeyMissing:
            return
                "pass --key-file or set \(CredentialStore.keyFileVariable) to where the key-encryption key is, or run `agent-sidecar setup --profile \(profile)` again with a new pairing code"
        default: return "get a new pairing code from the agent's owner and run `agent-sidecar setup --profile \(profile)` again"
        }
    }

    // MARK: Client configs and environment

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

    // MARK: Gateway, clock, session

    func gatewayCheck(_ gateway: GatewayOrigin) async -> (check: DoctorCheck, date: String?) {
        let url = gateway.url("/healthz")
        let started = ContinuousClock.now
        do {
            let response = try await transport.send(
                HTTPRequest(method: "GET", url: url, headers: [HTTPHeader("Accept", "application/json")], timeout: timeout))
            let elapsed = (ContinuousClock.now - started).milliseconds
            let tls = gateway.origin.hasPrefix("https://") ? ", TLS certificate valid for the host" : " (plain HTTP on loopback)"
            let date = response.headers.value(for: "date")
            guard response.status < 500 else {
                return (
                    DoctorCheck(
                        "gateway", .failed, "\(gateway.baseURL) answered HTTP \(response.status) to /healthz",
                        fix: "the gateway is up but failing: ask its administrator"), date
                )
            }
            return (DoctorCheck("gateway", .ok, "\(gateway.baseURL) answered /healthz (HTTP \(response.status)) in \(elapsed) ms\(tls)"), date)
        } catch let error as HTTPClientError {
            let failure = UpstreamFailure.from(error, upstream: gateway.baseURL, timeout: timeout, peer: "gateway")
            let fix: String
            switch error.code {
            case .tlsFailure:
                fix =
                    "if the gateway uses a private CA, point SSL_CERT_FILE at a bundle with it (and run setup again so Codex passes it on); otherwise ask the gateway's administrator about its certificate"
            case .hostNotFound, .connectTimedOut, .connectionRefused:
                fix = "check that the gateway runs at \(gateway.baseURL), your network, and HTTPS_PROXY / NO_PROXY"
            default:
                fix = "retry; if it persists, check the gateway and your network"
            }
            return (DoctorCheck("gateway", .failed, failure.message, fix: fix), nil)
        } catch {
            return (DoctorCheck("gateway", .failed, "the request to \(gateway.baseURL) failed: \(error)", fix: "retry, then check your network"), nil)
        }
    }

    func clockCheck(_ date: String?) -> DoctorCheck {
        guard let date, let gatewayTime = HTTPDate.parse(date) else {
            return DoctorCheck(
                "clock", .warning, "the gateway sent no usable Date header, so the clock skew is unknown",
                fix: "make sure this machine's clock is synchronised (NTP); the gateway refuses sessions 5 minutes off")
        }
        let skew = Timestamp.nowSeconds() - gatewayTime
        let size = abs(skew)
        let direction = skew == 0 ? "in step with" : skew > 0 ? "\(size) s ahead of" : "\(size) s behind"
        if size >= Self.refusedSkewSeconds {
            return DoctorCheck(
                "clock", .failed, "this machine's clock is \(direction) the gateway's: it refuses sessions from 300 s",
                fix: "synchronise the clock (timedatectl set-ntp true, or your OS's time settings)")
        }
        if size >= Self.warnedSkewSeconds {
            return DoctorCheck(
                "clock", .warning, "this machine's clock is \(direction) the gateway's; sessions are refused from 300 s",
                fix: "synchronise the clock (timedatectl set-ntp true)")
        }
        return DoctorCheck("clock", .ok, "\(direction) the gateway's clock (to the second; sessions are refused from 300 s)")
    }

    func sessionCheck(api: GatewayAPIClient, key: DeviceKey, profile: SidecarProfile) async -> DoctorCheck {
        var api = api
        api.timeout = timeout
        let session: MintedSession
        do {
            session = try await api.mintSession(deviceKey: key, deviceID: profile.deviceID)
        } catch {
            let refused = error.gatewayCode.map { PairedSessionCredentials.refusalCodes.contains($0) } ?? false
            return DoctorCheck(
                "session", .failed, "the gateway gave no session: \(error.message)",
                fix: refused ? "ask the agent's owner for a new pairing code, then run `agent-sidecar setup --profile \(profile.name)`" : "retry")
        }
        let listed = await MCPToolProbe(transport: transport, gateway: api.gateway, timeout: timeout).listTools(token: session.token)
        try? await api.endSession(token: session.token)
        switch listed {
        case .success(let names):
            if names.isEmpty {
                return DoctorCheck(
                    "session", .warning, "minted a session (valid \(session.expiresInSeconds) s) and ended it, but the agent has no tools",
                    fix: "ask the agent's owner to grant it a project")
            }
            return DoctorCheck(
                "session", .ok, "minted a session (valid \(session.expiresInSeconds) s), listed \(names.count) tools over MCP, ended it")
        case .failure(let problem):
            return DoctorCheck(
                "session", .failed, "minted a session, but tools/list failed: \(problem.message)",
                fix: "retry; if it persists, report it to the gateway's administrator")
        }
    }

    // MARK: File modes

    static func permissions(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o777
    }

    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func mode(_ path: String) -> String { permissions(path).map(octal) ?? "missing" }
}

/// `Date` header times (RFC 9110 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`).
enum HTTPDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since the epoch, or nil when the text is not an IMF-fixdate.
    static func parse(_ text: String) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int32(parts[1]), let month = months.firstIndex(of: String(parts[2])),
            let year = Int32(parts[3])
        else { return nil }
        let clock = parts[4].split(separator: ":").compactMap { Int32($0) }
        guard clock.count == 3 else { return nil }
        var fields = tm()
        fields.tm_year = year - 1900
        fields.tm_mon = Int32(month)
        fields.tm_mday = day
        fields.tm_hour = clock[0]
        fields.tm_min = clock[1]
        fields.tm_sec = clock[2]
        let seconds = timegm(&fields)
        return seconds < 0 ? nil : Int64(seconds)
    }
}
