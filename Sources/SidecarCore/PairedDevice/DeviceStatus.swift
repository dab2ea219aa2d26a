import AgentWire
import SystemSupport

/// What `agent-sidecar status` found: the profile, and whether the gateway would give this device
/// a session right now. Nothing in it is secret.
public struct StatusReport: Sendable {
    /// Why the sidecar could not act, as `code` (the gateway's or the local store's) and one line.
    public struct Problem: Sendable, Equatable {
        /// Where the problem lies, which decides what the user can do about it.
        public enum Kind: String, Sendable {
            /// The gateway answered and refused this device (revoked, blocked, unknown, bad signature).
            case refused
            /// The gateway could not be reached (connection, time-out, TLS): nothing is known about the pairing.
            case unreachable
            /// The gateway answered with a failure of its own.
            case gatewayFailed = "gateway_failed"
            /// The local key or profile cannot be used, so the gateway was not asked.
            case local
        }
        public let kind: Kind
        public let code: String
        public let message: String

        public init(kind: Kind, code: String, message: String) {
            self.kind = kind
            self.code = code
            self.message = message
        }

        /// The `session` line of the report: what was found, not why (the one-line reason goes to stderr once).
        var summary: String {
            switch kind {
            case .refused: "refused by the gateway (\(code))"
            case .unreachable: "not checked: the gateway could not be reached (\(code))"
            case .gatewayFailed: "not checked: the gateway failed (\(code))"
            case .local: "not checked: the device key cannot be used (\(code))"
            }
        }
    }

    public let profile: SidecarProfile
    /// The grants as the gateway reports them now (the profile's snapshot when it could not be asked).
    public let grants: [SidecarProfile.Grant]
    /// When a session minted now would expire (ISO 8601, as the gateway wrote it).
    public let sessionExpiresAt: String?
    /// Its lifetime in seconds.
    public let sessionLifetimeSeconds: Int?
    /// How many tools the agent may use (from the gateway's setup data).
    public let toolCount: Int?
    /// Why no session could be had, if one could not.
    public let problem: Problem?

    /// Whether the gateway refused the device for good (revoked, blocked) rather than being unreachable.
    public var isRefused: Bool { problem?.kind == .refused }

    /// A few aligned lines for people.
    public var text: String {
        var lines: [(String, String)] = [
            ("profile", profile.name),
            ("gateway", profile.gatewayURL),
            ("agent", "\(profile.agent.name) (\(profile.agent.id))"),
            ("owner", "\(profile.owner.name) (\(profile.owner.id))"),
            ("device", profile.deviceName.isEmpty ? profile.deviceID : "\(profile.deviceName) (\(profile.deviceID))"),
        ]
        let grantLines = grants.isEmpty ? ["none"] : grants.map(CommandReport.describe)
        for (index, line) in grantLines.enumerated() { lines.append((index == 0 ? "grants" : "", line)) }
        if let problem {
            lines.append(("session", problem.summary))
        } else if let sessionLifetimeSeconds {
            let until = sessionExpiresAt.map { ", until \($0)" } ?? ""
            lines.append(("session", "ok: minted one valid for \(sessionLifetimeSeconds) s\(until), and ended it"))
        }
        if let toolCount { lines.append(("tools", "\(toolCount)")) }
        return CommandReport.aligned(lines)
    }

    /// The same facts for scripts.
    public var json: JSONValue {
        var object: JSONObject = [
            "profile": .string(profile.name),
            "gateway": .string(profile.gatewayURL),
            "agent": ["id": .string(profile.agent.id), "name": .string(profile.agent.name)],
            "owner": ["id": .string(profile.owner.id), "name": .string(profile.owner.name)],
            "device": ["id": .string(profile.deviceID), "name": .string(profile.deviceName)],
            "grants": .array(grants.map(CommandReport.json)),
        ]
        if let problem {
            object["ok"] = false
            object["error"] = ["kind": .string(problem.kind.rawValue), "code": .string(problem.code), "message": .string(problem.message)]
        } else {
            object["ok"] = true
            var session: JSONObject = [:]
            if let sessionExpiresAt { session["expiresAt"] = .string(sessionExpiresAt) }
            if let sessionLifetimeSeconds { session["expiresInSeconds"] = .int(sessionLifetimeSeconds) }
            object["session"] = .object(session)
        }
        if let toolCount { object["tools"] = .int(toolCount) }
        return .object(object)
    }
}

extension SidecarSetup {
    /// Checks a profile end to end: loads the device key, mints a session, reads the setup data
    /// (current grants, tool count) and ends the session again.
    ///
    /// - Parameters:
    ///   - name: The profile.
    ///   - keyFile: `--key-file PATH`, when given.
    /// - Throws: `CredentialError` when the profile itself cannot be read; every later problem
    ///   (key, gateway) is in the report.
    public func status(profile name: String, keyFile: String? = nil) async throws -> StatusReport {
        let profile = try profiles.load(name)
        func report(problem: StatusReport.Problem) -> StatusReport {
            StatusReport(
                profile: profile, grants: profile.grants, sessionExpiresAt: nil, sessionLifetimeSeconds: nil, toolCount: nil,
                problem: problem)
        }
        let key: DeviceKey
        let api: GatewayAPIClient
        do {
            key = try credentials.loadDeviceKey(for: profile, explicitKeyEncryptionKeyFile: keyFile)
            api = try Self.client(profile.gatewayURL, transport: transport)
        } catch let error as CredentialError {
            return report(problem: .init(kind: .local, code: error.code.description, message: error.message))
        } catch let error as UpstreamFailure {
            return report(problem: .init(kind: .local, code: error.code.rawValue, message: error.message))
        } catch {
            return report(problem: .init(kind: .local, code: "local_error", message: "\(error)"))
        }
        let session: MintedSession
        do {
            session = try await api.mintSession(deviceKey: key, deviceID: profile.deviceID)
        } catch {
            return report(problem: Self.problem(error))
        }
        let setupData: GatewaySetupData?
        do { setupData = try await api.setupData(token: session.token) } catch { setupData = nil }
        try? await api.endSession(token: session.token)
        return StatusReport(
            profile: profile, grants: setupData?.grants ?? profile.grants, sessionExpiresAt: session.expiresAt.isEmpty ? nil : session.expiresAt,
            sessionLifetimeSeconds: session.expiresInSeconds, toolCount: setupData?.tools.count, problem: nil)
    }

    /// Sorts a failed session mint by where the problem lies.
    static func problem(_ failure: UpstreamFailure) -> StatusReport.Problem {
        let code = failure.gatewayCode ?? failure.code.rawValue
        let kind: StatusReport.Problem.Kind
        if failure.gatewayError?.refusesDevice == true {
            kind = .refused
        } else {
            switch failure.code {
            case .unreachable, .timedOut, .tls, .cancelled: kind = .unreachable
            case .configuration: kind = .local
            default: kind = .gatewayFailed
            }
        }
        return StatusReport.Problem(kind: kind, code: code, message: failure.message)
    }

    /// The names of the profiles on this machine (for messages that suggest one).
    public func profileNames() -> [String] { profiles.names() }
}
