/// The rows the gateway stores. Times are milliseconds since the Unix epoch (UTC); secrets
/// (tokens, pairing codes, idempotency keys) appear only as keyed hashes.

/// A person of the workspace: an owner of agents, a project member, an assignee.
public struct UserRecord: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var blockedAt: Int64?
    public var createdAt: Int64
    /// `owner` or `admin` (see ``UserRole``).
    public var role: String = UserRole.owner.rawValue
    /// Whether the person may have agents (an admin switches it); without it their agents stop.
    public var agentsEntitled: Bool = true

    public var isAdmin: Bool { role == UserRole.admin.rawValue }
}

/// An agent: a named identity acting for one owner, with grants.
public struct AgentRecord: Codable, Sendable, Hashable {
    public var id: String
    public var ownerID: String
    public var name: String
    public var createdAt: Int64
    public var revokedAt: Int64?
}

/// The scopes an agent holds on one project.
public struct GrantRecord: Codable, Sendable, Hashable {
    public var agentID: String
    public var projectKey: String
    public var scopes: [String]

    public init(agentID: String, projectKey: String, scopes: [String]) {
        self.agentID = agentID
        self.projectKey = projectKey
        self.scopes = scopes
    }
}

public struct PairingCodeRecord: Codable, Sendable, Hashable {
    public var codeHash: String
    public var agentID: String
    public var createdAt: Int64
    public var expiresAt: Int64
    public var usedAt: Int64?
}

/// A device registered by claiming a pairing code: it signs session challenges with its Ed25519 key.
public struct DeviceRecord: Codable, Sendable, Hashable {
    public var id: String
    public var agentID: String
    public var name: String
    public var publicKey: String
    public var createdAt: Int64
    public var revokedAt: Int64?
}

public struct SessionRecord: Codable, Sendable, Hashable {
    public var id: String
    public var deviceID: String
    public var tokenHash: String
    public var createdAt: Int64
    public var expiresAt: Int64
    public var endedAt: Int64?
}

public struct ProjectRecord: Codable, Sendable, Hashable {
    public var id: String
    public var key: String
    public var name: String
    public var description: String
    public var nextIssueNumber: Int
    public var createdAt: Int64
}

public struct StateRecord: Codable, Sendable, Hashable {
    public var id: String
    public var projectID: String
    public var name: String
    /// backlog, unstarted, started, completed.
    public var category: String
    public var position: Int
}

public struct LabelRecord: Codable, Sendable, Hashable {
    public var id: String
    public var projectID: String
    public var name: String
    public var color: String
}

public struct ProjectMemberRecord: Codable, Sendable, Hashable {
    public var projectID: String
    public var userID: String
    public var addedAt: Int64
    public var addedByAgentID: String?
}

/// A named section of an issue's body, such as "Acceptance criteria", "Plan" or "Result".
public struct IssueBlock: Codable, Sendable, Hashable {
    public var name: String
    public var text: String
}

public struct IssueRecord: Codable, Sendable, Hashable {
    public var id: String
    public var projectID: String
    public var number: Int
    public var title: String
    public var description: String
    public var priority: String
    public var stateID: String
    public var labelIDs: [String]
    public var assigneeIDs: [String]
    public var blocks: [IssueBlock]
    public var createdByUserID: String
    public var createdByAgentID: String?
    public var createdAt: Int64
    public var updatedAt: Int64
}

public struct CommentRecord: Codable, Sendable, Hashable {
    public var id: String
    public var issueID: String
    public var authorUserID: String
    public var authorAgentID: String?
    public var body: String
    public var createdAt: Int64
}

/// Where a page of comments ends: the last comment's time and id (comments are ordered by both).
public struct CommentPosition: Sendable, Hashable {
    public var createdAt: Int64
    public var id: String

    public init(createdAt: Int64, id: String) {
        self.createdAt = createdAt
        self.id = id
    }
}

/// A note an agent adds while reporting on a work session: one row each, numbered from 0.
public struct WorkSessionNote: Codable, Sendable, Hashable {
    public var workSessionID: String
    public var position: Int
    public var at: Int64
    public var text: String
    public var issueID: String?
}

public struct WorkSessionRecord: Codable, Sendable, Hashable {
    public var id: String
    public var agentID: String
    public var projectID: String
    public var issueID: String?
    public var summary: String
    public var status: String
    public var result: String?
    public var startedAt: Int64
    public var updatedAt: Int64
    public var finishedAt: Int64?
}

/// The stored outcome of a write call, replayed for 24 hours to a retry with the same key.
public struct IdempotencyRecord: Codable, Sendable, Hashable {
    public var agentID: String
    public var keyHash: String
    public var tool: String
    public var fingerprint: String
    public var result: String
    public var createdAt: Int64
}

/// One tool call, allowed or denied. Holds hashes and ids, never argument text or tokens.
public struct AuditEventRecord: Codable, Sendable, Hashable {
    public var id: String
    public var at: Int64
    public var agentID: String?
    public var ownerID: String?
    public var deviceID: String?
    public var sessionID: String?
    public var tool: String
    public var project: String?
    public var targetIDs: [String]
    public var argumentsSHA256: String
    public var outcome: String
    public var errorCode: String?
    public var idempotencyKeyHash: String?
    public var replayed: Bool
    public var latencyMicroseconds: Int64
    /// The call's tier (``Tier``) when the policy put it above low: medium calls are flagged by it.
    public var tier: String? = nil
    /// The approval request the call waited for or ran under (``ApprovalRequestRecord``).
    public var approvalID: String? = nil
}

/// Filters for `search_issues`, already resolved to ids.
public struct IssueQuery: Sendable, Hashable {
    public var projectID: String
    public var text: String?
    public var stateID: String?
    public var labelID: String?
    public var assigneeID: String?
    /// Only issues with a number greater than this (the cursor).
    public var afterNumber: Int
    public var limit: Int

    public init(
        projectID: String, text: String? = nil, stateID: String? = nil, labelID: String? = nil, assigneeID: String? = nil, afterNumber: Int = 0,
        limit: Int = 20
    ) {
        self.projectID = projectID
        self.text = text
        self.stateID = stateID
        self.labelID = labelID
        self.assigneeID = assigneeID
        self.afterNumber = afterNumber
        self.limit = limit
    }
}
