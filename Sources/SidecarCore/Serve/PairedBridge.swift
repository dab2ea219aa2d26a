import Logging

/// `agent-sidecar serve --profile NAME`: the bridge to a paired gateway's `/mcp`, with short-lived
/// session tokens minted by the device key.
///
/// A profile that cannot be read is a mistake in how the sidecar was started, and ``makeServer``
/// throws it (the command exits with one line). Everything after that keeps the server up: a
/// device key that is missing, tampered or too open, and a device or agent revoked at the gateway,
/// are answered on every `tools/call` with a message that says what to do, and are reported once on
/// stderr. The MCP host then shows the reason instead of a server that died at start.
///
/// `tools/list` always succeeds: when the gateway cannot be reached or refuses the session, it
/// lists the last catalog the gateway served (``ToolCatalogCache``, which `setup` writes first),
/// and `initialize`'s instructions say why. An MCP host that drops a server whose `tools/list`
/// fails (Codex does, for the whole session) keeps the tools, and the model reads the reason on
/// its first call. When the gateway answers again, the next call goes through.
public struct PairedBridge: Sendable {
    /// The state layout (`SidecarPaths.current()`).
    public var paths: SidecarPaths
    /// The process environment (for `AGENT_SIDECAR_KEY_FILE`).
    public var environment: [String: String]
    /// The profile to serve.
    public var profile: String
    /// `--key-file PATH`, when given.
    public var keyFile: String?
    /// Timeouts, narrowing and limits, as in generic mode (its `upstreamURL` is replaced by the
    /// profile's gateway).
    public var bridge: BridgeConfiguration

    public init(paths: SidecarPaths, environment: [String: String], profile: String, keyFile: String?, bridge: BridgeConfiguration) {
        self.paths = paths
        self.environment = environment
        self.profile = profile
        self.keyFile = keyFile
        self.bridge = bridge
    }

    /// Loads the profile and the device key and returns the server.
    ///
    /// - Parameters:
    ///   - logger: Where logs go (stderr).
    ///   - report: Told, once per cause, why the sidecar cannot act (a one-line message that
    ///     never carries a secret); `serve` prints it on stderr.
    /// - Throws: `CredentialError` when the profile is missing or unreadable, `ConfigurationError`
    ///   when the profile's gateway URL or the flags are unusable.
    public func makeServer(logger: Logger, report: @escaping @Sendable (String) -> Void) throws -> MCPStdioServer {
        let loaded = try ProfileStore(paths: paths).load(profile)
        guard let gateway = loaded.gateway else {
            throw CredentialError(
                .malformedProfile, "the profile \(paths.profileFile(profile)) has no usable gateway URL; run `agent-sidecar setup` again")
        }
        var configuration = bridge
        configuration.upstreamURL = gateway.url("/mcp")
        configuration.bearerToken = nil
        configuration.probesModernRevision = false
        var httpConfiguration = try configuration.httpConfiguration()
        do {
            httpConfiguration.additionalCertificateAuthorities = GatewayCA.combined(
                try GatewayCA.stored(paths: paths, profile: profile), httpConfiguration.additionalCertificateAuthorities)
        } catch {
            throw ConfigurationError(
                "cannot read the gateway's CA kept for profile \(profile) (\(error)); run `agent-sidecar setup --ca-file FILE` again")
        }
        let http = CurlHTTPClient(configuration: httpConfiguration)
        let credentials: any UpstreamCredentialSource
        do {
            let key = try CredentialStore(paths: paths, environment: environment).loadDeviceKey(
                for: loaded, explicitKeyEncryptionKeyFile: keyFile)
            var api = try GatewayAPIClient(gateway: gateway, transport: http)
            api.timeout = min(configuration.requestTimeout, .seconds(30))
            credentials = PairedSessionCredentials(
                api: api, deviceKey: key, deviceID: loaded.deviceID, onRefusal: { failure in report(failure.message) })
        } catch let error as UpstreamFailure {
            throw ConfigurationError(error.message)
        } catch {
            // The key is missing, tampered, too open or unreadable: serve, and say so on every call.
            let message = "\(error)"
            report(message)
            credentials = UnavailableCredentials(failure: UpstreamFailure(code: .unauthorized, message: message))
        }
        logger.debug("serving profile \(profile) (device \(loaded.deviceID)) through \(gateway.baseURL)")
        let catalog = ToolCatalogMemory(cache: ToolCatalogCache(paths: paths, profile: profile, gatewayURL: loaded.gatewayURL), logger: logger)
        return try configuration.makeServer(logger: logger, http: http, credentials: credentials, catalog: catalog)
    }
}

/// A credential source that cannot supply a credential: every call fails with the same advice.
struct UnavailableCredentials: UpstreamCredentialSource {
    let failure: UpstreamFailure

    func authorizationHeader() async throws -> String? { throw failure }
    func credentialRejected(status: Int, errorCode: String?) async -> Bool { false }
    func close() async {}
}
