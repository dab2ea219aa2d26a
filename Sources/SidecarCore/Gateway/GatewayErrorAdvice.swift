import AgentWire
import SystemSupport

/// The sidecar's own one line for the gateway's error codes that a person has to act on: what
/// happened and what to do next, in the words of someone running `agent-sidecar`.
enum GatewayErrorAdvice {
    /// The advice for `code`, or nil for codes the sidecar has no special advice for (then the
    /// gateway's own message is shown).
    static func message(for code: String, retryAfter: Int?) -> String? {
        guard let known = GatewayErrorCode(rawValue: code) else { return nil }
        switch known {
        case .pairingCodeInvalid:
            return "the gateway does not know this pairing code; check it, or ask the agent's owner for a new one"
        case .pairingCodeExpired:
            return "the pairing code has expired; ask the agent's owner for a new one and run `agent-sidecar setup` again"
        case .pairingCodeUsed:
            return "the pairing code was already used; ask the agent's owner for a new one and run `agent-sidecar setup` again"
        case .pairingRateLimited:
            return "too many pairing attempts; wait \(retryAfter.map { "\($0) s" } ?? "a minute") and try again"
        case .agentRevoked:
            return "this agent was revoked by its owner at the gateway; \(CredentialError.newPairingAdvice)"
        case .deviceRevoked:
            return "this device was revoked at the gateway; \(CredentialError.newPairingAdvice)"
        case .ownerBlocked:
            return "the agent's owner is blocked at the gateway, so the agent cannot act; the owner must contact the gateway's administrator"
        case .signatureInvalid, .timestampOutOfRange, .nonceReused:
            return
                "the gateway refused this device's signature (\(code)); check the system clock and that the URL is the gateway you paired with"
        case .deviceUnknown:
            return "the gateway does not know this device; \(CredentialError.newPairingAdvice)"
        case .tokenExpired:
            return "the session expired; the sidecar will start a new one, retry the call"
        default:
            return nil
        }
    }
}

extension UpstreamFailure {
    /// The gateway's error code, when it sent one this sidecar knows.
    public var gatewayError: GatewayErrorCode? { gatewayCode.flatMap(GatewayErrorCode.init(rawValue:)) }

    /// Whether only a new pairing (a new code from the owner) can mend this refusal.
    public var needsNewPairing: Bool { gatewayError?.needsNewPairing ?? false }
}
