import AgentWire

/// One agent as its owner sees it: grants, devices, sessions and activity, with its state.
public struct AgentOverview: Sendable, Hashable {
    public let agent: AgentRecord
    public let ownerName: String
    public let grants: [GrantRecord]
    public let activeDevices: Int
    public let openSessions: Int
    public let lastCall: AuditEventRecord?
    public let openWorkSessions: Int
    /// `revoked`, `stopped` (owner blocked or without entitlement), `stale`, `connected` or `idle`.
    public let state: String

    /// Connected now: an open session (not ended, not expired).
    public var connected: Bool { openSessions > 0 && agent.revokedAt == nil }

    /// Reads an agent's overview inside a transaction.
    static func read(_ agent: AgentRecord, store: any StoreReader, now: Int64, staleAfterMilliseconds: Int64) throws -> AgentOverview {
        let owner = try store.user(id: agent.ownerID)
        let openSessions = try store.sessions(agentID: agent.id, openAt: now, limit: GatewayAdmin.sessionListLimit).count
        let lastCall = try store.lastAuditEvent(agentID: agent.id)
        let openWork = try store.openWorkSessionCount(agentID: agent.id)
        let state: String
        if agent.revokedAt != nil {
            state = "revoked"
        } else if owner?.blockedAt != nil || owner?.agentsEntitled == false {
            state = "stopped"
        } else if openWork > 0, now - (lastCall?.at ?? agent.createdAt) > staleAfterMilliseconds {
            state = "stale"
        } else if openSessions > 0 {
            state = "connected"
        } else {
            state = "idle"
        }
        return AgentOverview(
            agent: agent, ownerName: owner?.name ?? agent.ownerID, grants: try store.grants(agentID: agent.id),
            activeDevices: try store.devices(agentID: agent.id).filter { $0.revokedAt == nil }.count, openSessions: openSessions,
            lastCall: lastCall, openWorkSessions: openWork, state: state)
    }

    /// The owner API's JSON form.
    public var json: JSONValue {
        func time(_ value: Int64?) -> JSONValue { value.map { .string(Timestamp.rfc3339(milliseconds: $0, fractional: true)) } ?? .null }
        return [
            "id": .string(agent.id), "name": .string(agent.name), "owner": ["id": .string(agent.ownerID), "name": .string(ownerName)],
            "state": .string(state), "createdAt": time(agent.createdAt), "revokedAt": time(agent.revokedAt),
            "grants": .array(grants.map { ["project": .string($0.projectKey), "scopes": .array($0.scopes.map { .string($0) })] }),
            "activeDevices": .int(activeDevices), "openSessions": .int(openSessions),
            "activity": [
                "connected": .bool(connected), "lastCallAt": time(lastCall?.at), "lastTool": lastCall.map { .string($0.tool) } ?? .null,
                "lastOutcome": lastCall.map { .string($0.outcome) } ?? .null, "openWorkSessions": .int(openWorkSessions),
                "stale": .bool(state == "stale"),
            ],
        ]
    }
}

/// What each scope lets an agent do, in plain words (the console's Create agent page).
public enum ScopeExplanations {
    public static let text: [String: String] = [
        Scope.projectRead: "Read the project: its issues, comments, states, labels and members.",
        Scope.issueCreate: "Create new issues.",
        Scope.issueUpdate: "Change an issue's title, description, priority and sections.",
        Scope.issueMove: "Move issues between states (for example from Todo to Done).",
        Scope.issueComment: "Comment on issues.",
        Scope.issueLabel: "Set the labels of issues.",
        Scope.issueAssign: "Assign issues to project members.",
        Scope.projectMemberAddExisting: "Add an existing person of the workspace to the project.",
        Scope.reportWrite: "Report its work: start, update and finish work sessions.",
    ]
}
