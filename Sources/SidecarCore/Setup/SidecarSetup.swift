import AgentWire
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `agent-sidecar setup` was asked to do.
public struct SetupRequest: Sendable {
    /// The profile name (`--profile`, default `default`).
    public var profile: String = ProfileName.defaultName
    /// The gateway URL (`--gateway`). Needed to pair; a re-run takes it from the profile.
    public var gatewayURL: String?
    /// The pairing code as typed. With a code the device is paired (again); without one an
    /// existing profile's packet is refreshed.
    public var pairingCode: String?
    /// The name the owner sees for this device (default: the host name).
    public var deviceName: String = SidecarSetup.hostName()
    /// `--key-file PATH`: where the key-encryption key goes.
    public var keyFile: String?
    /// The files to produce.
    public var targets: [SetupTarget] = [.codex, .agentsMarkdown]
    /// Where they go.
    public var locations: SetupLocations
    /// The sidecar binary the MCP host should start (default: this process's executable).
    public var executablePath: String = SidecarSetup.currentExecutablePath()
    /// `--print`: compute and return the packet, write no config file (pairing state is still kept).
    public var printOnly = false
    /// `--approve`: which tool calls the MCP client asks the user about first.
    public var approval: ToolApproval = .writes
    /// `--ca-file`: the gateway's private CA (PEM), kept beside the profile once the pairing holds.
    /// The transport must already trust it.
    public var gatewayCA: [UInt8]?

    public init(locations: SetupLocations) { self.locations = locations }
}

/// What setup did.
public struct SetupOutcome: Sendable {
    public let profile: SidecarProfile
    /// Whether this run paired the device (false: refreshed an existing pairing).
    public let paired: Bool
    /// The profile's previous device, revoked after the new one proved it can sign in.
    public let retiredDevice: String?
    public let packet: SetupPacket
    /// Empty in `--print` mode.
    public let written: [SetupWriteResult]
    /// Things that did not stop setup (the gateway's setup data was unavailable, AGENTS.md too big…).
    public let warnings: [String]
    /// The `[mcp_servers.NAME]` table for Codex, exactly as merged into `config.toml` (nil when
    /// Codex was not a target).
    public let codexEntry: String?
}

/// The `setup` flow over the credential store, the gateway client and the packet writer, so the
/// command line stays a thin layer of flags. `status` and `logout` (PairedDevice/) extend it.
public struct SidecarSetup: Sendable {
    public let paths: SidecarPaths
    public let environment: [String: String]
    let transport: any GatewayTransport

    /// - Parameters:
    ///   - paths: The state layout.
    ///   - environment: The process environment (for `AGENT_SIDECAR_KEY_FILE` and what the MCP host must pass on).
    ///   - transport: The HTTP client (`CurlHTTPClient`).
    public init(paths: SidecarPaths, environment: [String: String], transport: any GatewayTransport) {
        self.paths = paths
        self.environment = environment
        self.transport = transport
    }

    var profiles: ProfileStore { ProfileStore(paths: paths) }
    var credentials: CredentialStore { CredentialStore(paths: paths, environment: environment) }

    /// Pairs the device (when a code is given) and writes, or with `printOnly` returns, the setup packet.
    public func run(_ request: SetupRequest) async throws -> SetupOutcome {
        try ProfileName.validate(request.profile)
        let previous = profiles.exists(request.profile) ? try profiles.load(request.profile) : nil
        var warnings: [String] = []
        var retired: String?
        var profile: SidecarProfile
        let deviceKey: DeviceKey
        let api: GatewayAPIClient
        let paired: Bool

        if let typedCode = request.pairingCode {
            guard let code = PairingCodeFormat.normalize(typedCode) else {
                throw SetupError(.invalidInput, "that is not a pairing code (8 letters or digits, like ABCD-EFGH); check what the owner gave you")
            }
            guard let url = request.gatewayURL ?? previous?.gatewayURL else {
                throw SetupError(.invalidInput, "pairing needs the gateway URL; pass --gateway https://…")
            }
            api = try Self.client(url, transport: transport)
            // Claim first: the pairing this profile has keeps working until the new device has
            // proved itself, and is retired only then (a used, wrong or rate-limited code must not
            // cost the user a working pairing).
            let keptNote = previous.map { " The previous pairing of profile \($0.name) is unchanged and still works." } ?? ""
            let previousKey = previous.flatMap { try? credentials.loadDeviceKey(for: $0, explicitKeyEncryptionKeyFile: request.keyFile) }
            deviceKey = DeviceKey.generate()
            let claim: PairingClaim
            do {
                claim = try await api.claimPairing(code: code, publicKey: deviceKey.publicKey, deviceName: request.deviceName)
            } catch let failure {
                throw UpstreamFailure(
                    code: failure.code, message: failure.message + keptNote, httpStatus: failure.httpStatus, gatewayCode: failure.gatewayCode,
                    retryAfterSeconds: failure.retryAfterSeconds)
            }
            // When a working pairing would be replaced, the new device must sign in before anything
            // local changes. (A first pairing has nothing to lose; a sign-in problem then shows as
            // a warning below, where the setup data is read.)
            if previous != nil {
                let proof: MintedSession
                do {
                    proof = try await api.mintSession(deviceKey: deviceKey, deviceID: claim.deviceID)
                } catch let failure {
                    throw UpstreamFailure(
                        code: failure.code,
                        message: "the gateway accepted the code but the new device \(claim.deviceID) could not sign in (\(failure.message)); "
                            + "ask the owner to revoke that device and for a new code." + keptNote,
                        httpStatus: failure.httpStatus, gatewayCode: failure.gatewayCode)
                }
                try? await api.endSession(token: proof.token)
            }
            let kekPath = credentials.keyEncryptionKeyFile(profile: request.profile, explicitPath: request.keyFile)
            try credentials.store(deviceKey, profile: request.profile, deviceID: claim.deviceID, keyEncryptionKeyFile: kekPath)
            profile = SidecarProfile(
                name: request.profile, gatewayURL: api.gateway.baseURL, deviceID: claim.deviceID, deviceName: request.deviceName,
                agent: claim.agent, owner: claim.owner, publicKey: deviceKey.publicKeyBase64,
                createdAt: Timestamp.iso8601(Timestamp.nowSeconds()), grants: claim.grants,
                keyEncryptionKeyFile: kekPath == paths.defaultKeyEncryptionKeyFile(request.profile) ? nil : kekPath,
                writtenFiles: previous?.writtenFiles ?? [])
            try profiles.save(profile)
            // Now retire the device this profile used before, so it does not linger at the gateway.
            if let previous, previous.deviceID != claim.deviceID {
                switch await Self.retire(previous, key: previousKey, transport: transport) {
                case .revoked: retired = previous.deviceID
                case .alreadyGone: break
                case .stillRegistered:
                    warnings.append(
                        "paired the new device, but could not revoke the previous one (\(previous.deviceID)); ask the agent's owner to revoke it")
                }
            }
            paired = true
        } else {
            guard let previous else {
                throw CredentialError(
                    .profileNotFound, "profile \(request.profile) is not paired yet; run `agent-sidecar setup --gateway URL --code CODE`")
            }
            profile = previous
            api = try Self.client(previous.gatewayURL, transport: transport)
            deviceKey = try credentials.loadDeviceKey(for: previous, explicitKeyEncryptionKeyFile: request.keyFile)
            paired = false
        }

        if let ca = request.gatewayCA { try GatewayCA.store(ca, paths: paths, profile: request.profile) }

        // The gateway's setup data: current grants with project names, and the tool summary.
        var tools: [AgentsMarkdown.Tool] = []
        do {
            let session = try await api.mintSession(deviceKey: deviceKey, deviceID: profile.deviceID)
            let fetched: Result<GatewaySetupData, UpstreamFailure>
            do { fetched = .success(try await api.setupData(token: session.token)) } catch { fetched = .failure(error) }
            // The first stored tool catalog (ToolCatalogCache.swift), so `serve` lists tools even without the gateway.
            if let warning = await storeToolCatalog(api: api, token: session.token, profile: profile) { warnings.append(warning) }
            try? await api.endSession(token: session.token)
            let data = try fetched.get()
            profile.agent = data.agent
            profile.owner = data.owner
            profile.grants = data.grants
            tools = data.tools
        } catch {
            if !paired { throw error }
            warnings.append("paired, but could not read the gateway's setup data (\(error.message)); the instructions list no tools yet")
        }

        let writer = SetupPacketWriter(locations: request.locations)
        let packet = try writer.plan(
            targets: request.targets, profile: profile, executablePath: request.executablePath,
            serverEnvironment: SetupPacketWriter.serverEnvironment(environment), tools: tools,
            forwardedVariables: ForwardedEnvironment.present(in: environment), approval: request.approval)
        warnings += packet.warnings.map(\.message)
        var written: [SetupWriteResult] = []
        if !request.printOnly {
            written = try writer.write(packet)
            for file in packet.files where !profile.writtenFiles.contains(where: { $0.path == file.path && $0.kind == file.target }) {
                profile.writtenFiles.append(.init(path: file.path, kind: file.target))
            }
        }
        try profiles.save(profile)
        var codexEntry: String?
        if request.targets.contains(.codex) {
            codexEntry = try CodexConfig.renderTable(
                serverName: SetupPacketWriter.serverName(profile: profile.name), profile: profile.name, command: request.executablePath,
                arguments: SetupPacketWriter.serveArguments(profile: profile.name),
                environment: SetupPacketWriter.serverEnvironment(environment),
                forwardedVariables: ForwardedEnvironment.present(in: environment), approval: request.approval, tools: tools)
        }
        return SetupOutcome(
            profile: profile, paired: paired, retiredDevice: retired, packet: packet, written: written, warnings: warnings,
            codexEntry: codexEntry)
    }

    /// Whether `error` from a refresh means the pairing is dead and only a new code can mend it.
    public static func needsNewPairing(_ error: any Error) -> Bool {
        if let error = error as? CredentialError { return error.needsNewPairing }
        if let error = error as? UpstreamFailure { return error.needsNewPairing }
        return false
    }

    /// What became of a profile's previous device after a new pairing.
    enum Retirement { case revoked, alreadyGone, stillRegistered }

    /// Revokes a profile's previous device with its own key.
    static func retire(_ profile: SidecarProfile, key: DeviceKey?, transport: any GatewayTransport) async -> Retirement {
        guard let key, let api = try? client(profile.gatewayURL, transport: transport) else { return .stillRegistered }
        do {
            let session = try await api.mintSession(deviceKey: key, deviceID: profile.deviceID)
            try await api.revokeDevice(token: session.token)
            return .revoked
        } catch {
            return error.needsNewPairing ? .alreadyGone : .stillRegistered
        }
    }

    /// Checks a gateway URL before anything is asked of the user: an absolute `https://` URL, or
    /// `http://` to loopback.
    public static func checkGatewayURL(_ url: String) throws {
        guard let gateway = GatewayOrigin(url) else {
            throw SetupError(.invalidInput, "\(url) is not a gateway URL; give one like https://gateway.example.com")
        }
        do {
            try UpstreamURL(gateway.origin).requireSecureTransport()
        } catch {
            throw SetupError(.invalidInput, error.description)
        }
    }

    static func client(_ url: String, transport: any GatewayTransport) throws -> GatewayAPIClient {
        guard let gateway = GatewayOrigin(url) else {
            throw SetupError(.invalidInput, "\(url) is not a gateway URL; give one like https://gateway.example.com")
        }
        return try GatewayAPIClient(gateway: gateway, transport: transport)
    }

    /// This machine's host name.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "device" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "device" : name
    }

    /// The absolute path of the running executable (what the MCP host should start).
    public static func currentExecutablePath() -> String {
        #if os(Linux)
        if let path = FileSystem.realPath("/proc/self/exe") { return path }
        #endif
        return FileSystem.realPath(CommandLine.arguments.first ?? "agent-sidecar") ?? (CommandLine.arguments.first ?? "agent-sidecar")
    }
}
