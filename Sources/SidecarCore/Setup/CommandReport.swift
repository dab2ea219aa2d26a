import AgentWire

/// The text the `setup`, `status` and `logout` commands print. Only names, ids, paths and the
/// Codex entry: never a token, a key or a pairing code.
public enum CommandReport {
    /// `WEB (Website): project:read, issue:create`.
    static func describe(_ grant: SidecarProfile.Grant) -> String {
        let project = grant.name.map { "\(grant.project) (\($0))" } ?? grant.project
        return "\(project): \(grant.scopes.isEmpty ? "no scopes" : grant.scopes.joined(separator: ", "))"
    }

    static func json(_ grant: SidecarProfile.Grant) -> JSONValue {
        var entry: JSONObject = ["project": .string(grant.project)]
        if let name = grant.name { entry["name"] = .string(name) }
        entry["scopes"] = .array(grant.scopes.map { .string($0) })
        return .object(entry)
    }

    /// Label and value columns, each line indented by two spaces.
    static func aligned(_ lines: [(String, String)], minimumWidth: Int = 0) -> String {
        let width = max(minimumWidth, lines.map(\.0.count).max() ?? 0)
        return lines.map { label, value in
            "  " + label + String(repeating: " ", count: width - label.count + 2) + value
        }.joined(separator: "\n") + "\n"
    }

    /// What `setup` did, for people: the pairing, the files, warnings and the Codex entry.
    ///
    /// - Parameter outcome: The outcome of ``SidecarSetup/run(_:)``.
    public static func setup(_ outcome: SetupOutcome, printOnly: Bool) -> String {
        let profile = outcome.profile
        var text =
            outcome.paired
            ? "Paired profile \"\(profile.name)\" with \(profile.gatewayURL).\n"
            : "Profile \"\(profile.name)\" (\(profile.gatewayURL)) is paired; refreshed its setup packet.\n"
        var lines: [(String, String)] = [
            ("agent", "\(profile.agent.name) (\(profile.agent.id))"),
            ("owner", "\(profile.owner.name) (\(profile.owner.id))"),
            ("device", "\(profile.deviceName) (\(profile.deviceID))"),
        ]
        if let retired = outcome.retiredDevice { lines.append(("retired", "the previous device \(retired), revoked at the gateway")) }
        let grants = profile.grants.isEmpty ? ["none yet: ask the owner to grant a project"] : profile.grants.map(describe)
        for (index, line) in grants.enumerated() { lines.append((index == 0 ? "grants" : "", line)) }
        text += aligned(lines)
        if printOnly {
            text += "Nothing written (--print); the files follow on stdout.\n"
        } else if !outcome.written.isEmpty {
            text += "Files:\n"
            text += aligned(
                outcome.written.map { result in
                    let backup = result.backupPath.map { " (previous content in \($0))" } ?? ""
                    return (result.outcome.rawValue, result.path + backup)
                }, minimumWidth: "unchanged".count)
        }
        for warning in outcome.warnings { text += "Warning: \(warning)\n" }
        if let entry = outcome.codexEntry, !printOnly {
            let file = outcome.packet.files.first { $0.target == .codex }?.path ?? "config.toml"
            text += "Codex entry in \(file):\n"
            text +=
                entry.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { $0.isEmpty ? "" : "  " + $0 }.joined(
                    separator: "\n") + "\n"
        }
        if !printOnly {
            text += "Check it with `agent-sidecar status\(profile.name == ProfileName.defaultName ? "" : " --profile \(profile.name)")`.\n"
        }
        return text
    }

    /// What `logout` did, for people. The second value is the line for stderr when the device could
    /// not be revoked at the gateway (nil when it was, or when revocation was not asked for).
    public static func logout(
        _ outcome: LogoutOutcome, profile: String, deviceID: String?, revokeRequested: Bool
    ) -> (
        text: String, warning: String?
    ) {
        var text = ""
        var warning: String?
        let device = deviceID.map { "device \($0)" } ?? "the device"
        let byHand =
            deviceID.map { "the agent's owner must revoke device \($0) at the gateway (reference gateway: `agent-gateway device revoke \($0)`)" }
            ?? "the agent's owner must revoke this device at the gateway"
        if outcome.revoked {
            text += "Revoked \(device) at the gateway.\n"
        } else if outcome.keptLocalState, let failure = outcome.revocationFailure {
            text += "Kept the key and profile, so that logout can revoke \(device) once the gateway answers.\n"
            warning =
                "could not revoke \(device) at the gateway (\(failure.message)); nothing was deleted: run `agent-sidecar logout` again when the gateway answers, or add --force to delete the local key anyway (then \(byHand))"
        } else if let failure = outcome.revocationFailure {
            if failure.needsNewPairing, let code = failure.gatewayCode {
                text += "The gateway had already revoked \(device) (\(code)).\n"
            } else {
                warning = "could not revoke \(device) at the gateway (\(failure.message)); deleted the local key anyway (--force): \(byHand)"
            }
        } else if let unusable = outcome.keyUnusable {
            warning = "could not revoke \(device): its key cannot be used (\(unusable.code)); deleted what was left locally: \(byHand)"
        } else if !revokeRequested {
            text += "Did not contact the gateway (--no-revoke): \(device) stays registered until the owner revokes it.\n"
        }
        for result in outcome.purged {
            let backup = result.backupPath.map { " (previous content in \($0))" } ?? ""
            text +=
                "\(result.outcome == .removed ? "Removed" : result.outcome == .written ? "Took the entry out of" : "Unchanged:") \(result.path)\(backup)\n"
        }
        for file in outcome.removedFiles { text += "Deleted \(file)\n" }
        if !outcome.keptLocalState { text += "Logged out of profile \"\(profile)\".\n" }
        return (text, warning)
    }
}
