/// The rows behind owner sign-in, the owner API, the console and the tracker's history. Times are
/// milliseconds since the Unix epoch (UTC); sign-in links and browser session tokens appear only as
/// keyed hashes.

/// What a person may do on the console and the owner API.
public enum UserRole: String, Sendable, CaseIterable {
    /// Sees and changes only their own agents.
    case owner
    /// Sees every agent; switches entitlements; blocks and unblocks people.
    case admin
}

/// A single-use sign-in link: opening it (and confirming) starts a browser session.
public struct LoginLinkRecord: Codable, Sendable, Hashable {
    public var tokenHash: String
    public var userID: String
    public var createdAt: Int64
    public var expiresAt: Int64
    public var usedAt: Int64?
}

/// A signed-in browser: its cookie's keyed hash, an idle and an absolute expiry, and its end.
public struct BrowserSessionRecord: Codable, Sendable, Hashable {
    public var id: String
    public var tokenHash: String
    public var userID: String
    /// `link` (a sign-in link) or `proxy` (the trusted proxy's user header).
    public var signedInVia: String
    public var createdAt: Int64
    public var lastSeenAt: Int64
    /// The absolute end; the idle end is `lastSeenAt` plus the configured idle time.
    public var expiresAt: Int64
    public var endedAt: Int64?
}

/// One change to a tracker issue, naming its actor: a person, or an agent acting for its owner.
public struct IssueChangeRecord: Codable, Sendable, Hashable {
    public var id: String
    public var issueID: String
    public var at: Int64
    public var actorUserID: String
    /// Set when an agent made the change for `actorUserID`.
    public var actorAgentID: String?
    /// The tool or action (`create_issue`, `comment_issue`, …).
    public var action: String
    /// A short plain description ("moved the issue to Done"); never argument text beyond names.
    public var summary: String
}

/// One owner or admin action (on the console, the owner API or the admin CLI): who, what, when.
/// Never holds a secret: no link, code, cookie or token, only ids and names.
public struct OwnerActionRecord: Codable, Sendable, Hashable {
    public var id: String
    public var at: Int64
    /// The signed-in person, or nil for the host's admin CLI.
    public var actorUserID: String?
    /// `sign_in`, `create_agent`, `create_pairing_code`, `revoke_agent`, `set_entitlement`, …
    public var action: String
    /// The agent, device, session or person acted on.
    public var subjectID: String?
    /// The owner whose agent it concerns (so that an owner's feed shows admin actions on their agents).
    public var subjectOwnerID: String?
    public var detail: String
}

/// Filters and a page of the audit feed, newest first.
public struct AuditQuery: Sendable, Hashable {
    /// Only events of this owner's agents.
    public var ownerID: String?
    public var agentID: String?
    public var tool: String?
    public var outcome: String?
    /// Inclusive bounds, in milliseconds.
    public var since: Int64?
    public var until: Int64?
    /// Only events older than this event id (the cursor: event ids are ULIDs, ordered by time).
    public var beforeID: String?
    public var limit: Int

    public init(
        ownerID: String? = nil, agentID: String? = nil, tool: String? = nil, outcome: String? = nil, since: Int64? = nil, until: Int64? = nil,
        beforeID: String? = nil, limit: Int = 50
    ) {
        self.ownerID = ownerID
        self.agentID = agentID
        self.tool = tool
        self.outcome = outcome
        self.since = since
        self.until = until
        self.beforeID = beforeID
        self.limit = limit
    }
}
