import AgentWire
import SystemSupport

/// What logout did.
public struct LogoutOutcome: Sendable {
    /// Whether the gateway confirmed the device revocation.
    public let revoked: Bool
    /// Why revocation did not happen, when the gateway was asked and failed or refused.
    public let revocationFailure: UpstreamFailure?
    /// Why revocation could not even be attempted: the device key cannot be used.
    public let keyUnusable: CredentialError?
    /// True when nothing local was deleted because the gateway could not be reached (retry, or `--force`).
    public let keptLocalState: Bool
    /// Config files changed or removed by `--purge-config`.
    public let purged: [SetupWriteResult]
    /// Local files deleted (key, default KEK, profile).
    public let removedFiles: [String]
}

/// `agent-sidecar logout`: retire this device at the gateway and remove what setup left here.
extension SidecarSetup {
    /// Revokes the device at the gateway (when `revoke`), takes our entries out of the files setup
    /// wrote (when `purgeConfig`), and deletes the local key and profile.
    ///
    /// When the gateway cannot be reached or fails, nothing local is touched (the key is what
    /// revokes the device from here, so it is kept for a retry) unless `force` is set. When
    /// revoking is impossible for good (the key is unusable, or the gateway already revoked the
    /// device), local state is wiped and the outcome says so.
    public func logout(
        profile name: String, revoke: Bool = true, purgeConfig: Bool = false, keyFile: String? = nil, force: Bool = false
    ) async throws
        -> LogoutOutcome
    {
        let profile = try profiles.load(name)
        var revoked = false
        var failure: UpstreamFailure?
        var keyUnusable: CredentialError?
        if revoke {
            do {
                let api = try Self.client(profile.gatewayURL, transport: transport)
                let key = try credentials.loadDeviceKey(for: profile, explicitKeyEncryptionKeyFile: keyFile)
                let session = try await api.mintSession(deviceKey: key, deviceID: profile.deviceID)
                try await api.revokeDevice(token: session.token)
                revoked = true
            } catch let error as UpstreamFailure {
                failure = error
            } catch let error as CredentialError {
                keyUnusable = error
            } catch {
                failure = UpstreamFailure(code: .configuration, message: "\(error)")
            }
        }
        if let failure, !failure.needsNewPairing, !force {
            return LogoutOutcome(
                revoked: false, revocationFailure: failure, keyUnusable: nil, keptLocalState: true, purged: [], removedFiles: [])
        }
        var purged: [SetupWriteResult] = []
        if purgeConfig {
            let writer = SetupPacketWriter(
                locations: SetupLocations(codexHome: "/", projectDirectory: "/"))  // paths come from the profile's records
            purged = try writer.write(try writer.planRemoval(profile: name, files: profile.writtenFiles))
        }
        var removed = try credentials.remove(profile: name)
        if try profiles.remove(name) { removed.append(paths.profileFile(name)) }
        if try GatewayCA.remove(paths: paths, profile: name) { removed.append(paths.gatewayCAFile(name)) }
        if (try? ToolCatalogCache(paths: paths, profile: name, gatewayURL: profile.gatewayURL).remove()) == true {
            removed.append(paths.toolCatalogFile(name))
        }
        return LogoutOutcome(
            revoked: revoked, revocationFailure: failure, keyUnusable: keyUnusable, keptLocalState: false, purged: purged, removedFiles: removed)
    }
}
