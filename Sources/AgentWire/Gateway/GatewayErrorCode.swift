/// Every error code the gateway sends: in `{"error":{"code":…}}` of a REST or authentication
/// failure, and in `structuredContent.error.code` of a failed tool call. The gateway raises
/// them and the sidecar matches on them; this is the one list both read.
public enum GatewayErrorCode: String, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// The code as it is sent (`token_expired`), also when interpolated into text.
    public var description: String { rawValue }

    // Authentication (401 unless noted)
    case tokenMissing = "token_missing"
    case tokenInvalid = "token_invalid"
    case tokenExpired = "token_expired"
    case sessionEnded = "session_ended"
    case deviceRevoked = "device_revoked"
    case deviceUnknown = "device_unknown"
    case agentRevoked = "agent_revoked"
    /// 403: the agent's owner is blocked, or has lost the agent entitlement.
    case ownerBlocked = "owner_blocked"
    case signatureInvalid = "signature_invalid"
    case timestampOutOfRange = "timestamp_out_of_range"
    case nonceReused = "nonce_reused"

    // Pairing
    case pairingCodeInvalid = "pairing_code_invalid"
    case pairingCodeExpired = "pairing_code_expired"
    case pairingCodeUsed = "pairing_code_used"
    case pairingRateLimited = "pairing_rate_limited"

    // Requests
    case badRequest = "bad_request"
    case validationFailed = "validation_failed"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case payloadTooLarge = "payload_too_large"
    case rateLimited = "rate_limited"

    // Tool calls
    case unknownTool = "unknown_tool"
    case scopeDenied = "scope_denied"
    case projectNotGranted = "project_not_granted"
    case idempotencyKeyReused = "idempotency_key_reused"
    case idempotencyInFlight = "idempotency_in_flight"
    case internalError = "internal_error"
    /// The gateway's database did not answer (PostgreSQL down, restarting or out of connections); retryable.
    case databaseUnavailable = "database_unavailable"
    /// The tool is not available on the tracker this gateway serves (Plane has no such API).
    case notSupported = "not_supported"

    // Approvals (issue 17): high and critical calls wait for a person
    /// The approver denied the call; the message carries their reason.
    case approvalDenied = "approval_denied"
    /// No decision within the policy's wait; the request stays open, and a retry with the same
    /// arguments resumes the wait (retryable).
    case approvalPending = "approval_pending"
    /// The request expired undecided; a new call asks again.
    case approvalExpired = "approval_expired"
    /// A critical tool runs only while an admin holds a break-glass grant.
    case breakGlassRequired = "break_glass_required"

    // The tracker behind the gateway (Plane); retryable unless noted
    /// The tracker did not answer, or answered with a server error.
    case trackerUnavailable = "tracker_unavailable"
    /// The tracker's own rate limit held after the gateway's back-off.
    case trackerRateLimited = "tracker_rate_limited"
    /// The tracker refused the change as invalid (not retryable).
    case trackerRejected = "tracker_rejected"

    // The owner API (people in a browser, not agents)
    case notSignedIn = "not_signed_in"
    case csrfFailed = "csrf_failed"

    /// Refusals only a new pairing mends (a new code from the agent's owner, then `setup`).
    public var needsNewPairing: Bool { [.agentRevoked, .deviceRevoked, .deviceUnknown].contains(self) }

    /// Refusals of the device itself: minting another session with the same key cannot help.
    public var refusesDevice: Bool {
        [.deviceRevoked, .agentRevoked, .ownerBlocked, .deviceUnknown, .signatureInvalid, .timestampOutOfRange].contains(self)
    }
}
