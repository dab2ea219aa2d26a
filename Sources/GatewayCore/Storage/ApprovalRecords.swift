/// A high or critical tool call waiting for a person's decision (issue 17). It names who asks
/// (agent, owner, device, session), the tool and the project, and says what the call would do in
/// words (`summary`); the arguments themselves appear only as their fingerprint.
public struct ApprovalRequestRecord: Codable, Sendable, Hashable {
    public var id: String
    public var agentID: String
    public var ownerID: String
    public var deviceID: String
    /// The agent's authenticated session (`ses_…`): a session-wide approval covers it.
    public var sessionID: String
    public var tool: String
    public var project: String?
    /// SHA-256 of the tool name and the canonical arguments: a retry finds its request by it.
    public var fingerprint: String
    /// What the call would do, in words, bounded; no argument text beyond it.
    public var summary: String
    /// `high` or `critical`.
    public var tier: String
    /// `call` or `session` (``ApprovalScope``).
    public var scope: String
    /// `owner`, `admin` or `owner-or-admin` (``Approvers``).
    public var approvers: String
    /// `pending`, `approved` or `denied`; a pending request past `expiresAt` reads as `expired`.
    public var status: String
    public var decidedBy: String?
    public var decidedAt: Int64?
    public var reason: String?
    /// The break-glass grant an approval of a critical request was given under.
    public var breakGlassID: String?
    public var createdAt: Int64
    public var expiresAt: Int64
    /// The audit event of the call that ran under this approval (a call-wide approval runs one call).
    public var usedByAuditID: String?

    /// The status as people see it: a pending request past its time is expired.
    public func effectiveStatus(at moment: Int64) -> String {
        status == ApprovalStatus.pending && expiresAt <= moment ? ApprovalStatus.expired : status
    }
}

public enum ApprovalStatus {
    public static let pending = "pending"
    public static let approved = "approved"
    public static let denied = "denied"
    public static let expired = "expired"
}

/// A time-boxed grant that lets one admin approve critical requests, with the reason they gave.
public struct BreakGlassGrantRecord: Codable, Sendable, Hashable {
    public var id: String
    public var adminID: String
    public var reason: String
    public var createdAt: Int64
    public var expiresAt: Int64
    public var endedAt: Int64?
    /// Who opened it (an admin's id, or nil for the host's admin CLI).
    public var openedBy: String?

    public func isActive(at moment: Int64) -> Bool { endedAt == nil && expiresAt > moment }
}

/// Filters for listing approval requests, newest first.
public struct ApprovalQuery: Sendable, Hashable {
    /// Only requests this owner may see as owner (nil: all).
    public var ownerID: String?
    /// Only pending requests not yet expired at `openAt`.
    public var openAt: Int64?
    public var limit: Int

    public init(ownerID: String? = nil, openAt: Int64? = nil, limit: Int = 200) {
        self.ownerID = ownerID
        self.openAt = openAt
        self.limit = limit
    }
}
