import AgentWire

/// What each console page shows, as Mustache contexts built from the owner operations.
struct ConsolePages {
    let service: OwnerService
    let signedIn: SignedInUser
    let staleMinutes: Int
    /// The projects an owner may grant come from the gateway's tracker (Plane's, over Plane).
    let tracker: any Tracker

    var csrf: String { signedIn.csrfToken }

    /// The approvals page: pending requests with their forms, then recent decisions.
    func approvals(refreshSeconds: Int) async throws -> [String: Any] {
        let moment = service.now
        let pending = try await service.approvals(pendingOnly: true)
        let recent = try await service.approvals(pendingOnly: false, limit: 50).filter { $0.effectiveStatus(at: moment) != ApprovalStatus.pending }
        let agents = Dictionary(try await service.agents().map { ($0.agent.id, $0.agent.name) }, uniquingKeysWith: { first, _ in first })
        var page: [String: Any] = [
            "refresh": refreshSeconds, "hasDecided": !recent.isEmpty,
            "pending": pending.map { request -> [String: Any] in
                var row: [String: Any] = [
                    "id": request.id, "summary": request.summary, "tier": request.tier,
                    "tierLabel": request.tier == Tier.critical.rawValue ? "CRITICAL (admin with break-glass only)" : "high",
                    "critical": request.tier == Tier.critical.rawValue, "agentID": request.agentID,
                    "agentName": agents[request.agentID] ?? request.agentID, "ownerID": request.ownerID, "tool": request.tool,
                    "scopeLabel": request.scope == ApprovalScope.session.rawValue ? "session-wide" : "this call only",
                    "asked": ConsoleRenderer.time(request.createdAt), "expires": ConsoleRenderer.time(request.expiresAt),
                    "sessionID": request.sessionID, "deviceID": request.deviceID, "csrf": csrf,
                ]
                if let project = request.project { row["project"] = project }
                return row
            },
            "decided": recent.prefix(20).map { request -> [String: Any] in
                [
                    "id": request.id, "status": request.effectiveStatus(at: moment), "summary": request.summary,
                    "decidedBy": request.decidedBy ?? "-", "decidedAt": ConsoleRenderer.time(request.decidedAt), "reason": request.reason ?? "",
                ]
            },
        ]
        if let grant = try await service.breakGlass() { page["breakGlass"] = ["id": grant.id, "until": ConsoleRenderer.time(grant.expiresAt)] }
        return page
    }

    func agents() async throws -> [String: Any] {
        let agents = try await service.agents()
        return [
            "hasAgents": !agents.isEmpty, "showOwner": signedIn.user.isAdmin, "staleMinutes": staleMinutes,
            "agents": agents.map { overview -> [String: Any] in
                [
                    "id": overview.agent.id, "name": overview.agent.name, "owner": overview.ownerName, "state": overview.state,
                    "lastActivity": overview.lastCall.map { "\(ConsoleRenderer.time($0.at)) · \($0.tool)" } ?? "never",
                    "devices": overview.activeDevices, "projects": overview.grants.map(\.projectKey).joined(separator: ", "),
                ]
            },
        ]
    }

    func newAgent() async throws -> [String: Any] {
        let projects = try await tracker.projects()
        return [
            "csrf": csrf, "entitled": signedIn.user.agentsEntitled,
            "projects": projects.map { project -> [String: Any] in
                [
                    "key": project.key, "name": project.name,
                    "scopes": Scope.all.map { scope -> [String: Any] in
                        ["scope": scope, "explanation": ScopeExplanations.text[scope] ?? "", "checked": scope == Scope.projectRead]
                    },
                ]
            },
        ]
    }

    /// The grants a Create agent form asks for: `grant=KEY SCOPE`, repeated.
    static func grants(from form: [String: [String]]) -> [String: [String]] {
        var grants: [String: [String]] = [:]
        for value in form["grant"] ?? [] {
            let parts = value.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { continue }
            grants[String(parts[0]), default: []].append(String(parts[1]))
        }
        return grants
    }

    func pairing(agent: AgentOverview, code: String, expiresAt: Int64, ttlSeconds: Int, command: String) -> [String: Any] {
        [
            "agentName": agent.agent.name, "agentID": agent.agent.id, "code": code, "expiresAt": ConsoleRenderer.time(expiresAt),
            "ttlMinutes": ttlSeconds / 60, "command": command,
        ]
    }

    func detail(agentID: String, query: AuditQuery) async throws -> [String: Any] {
        let overview = try await service.agent(agentID)
        let devices = try await service.devices(agentID: agentID)
        let sessions = try await service.sessions(agentID: agentID, limit: 20)
        let events = try await service.audit(query)
        let now = service.now
        return [
            "id": overview.agent.id, "name": overview.agent.name, "owner": overview.ownerName, "state": overview.state, "csrf": csrf,
            "revoked": overview.agent.revokedAt != nil,
            "lastCall": overview.lastCall.map { "\(ConsoleRenderer.time($0.at)) · \($0.tool) · \($0.outcome)" } ?? "never",
            "connected": overview.connected ? "yes" : "no",
            "grants": overview.grants.map { ["project": $0.projectKey, "scopes": $0.scopes.joined(separator: ", ")] },
            "hasDevices": !devices.isEmpty,
            "devices": devices.map { device -> [String: Any] in
                [
                    "id": device.id, "agentID": agentID, "name": device.name, "paired": ConsoleRenderer.time(device.createdAt),
                    "deviceState": device.revokedAt.map { "revoked \(ConsoleRenderer.time($0))" } ?? "active", "active": device.revokedAt == nil,
                ]
            },
            "hasSessions": !sessions.isEmpty,
            "sessions": sessions.map { session -> [String: Any] in
                let open = session.endedAt == nil && session.expiresAt > now
                return [
                    "id": session.id, "agentID": agentID, "started": ConsoleRenderer.time(session.createdAt),
                    "ends": session.endedAt.map { "ended \(ConsoleRenderer.time($0))" } ?? ConsoleRenderer.time(session.expiresAt), "open": open,
                ]
            },
            "filterTool": query.tool ?? "", "filterOutcome": query.outcome ?? "",
            "outcomes": ["ok", "replayed", "denied", "rejected", "refused", "failed"].map {
                ["value": $0, "selected": $0 == (query.outcome ?? "")] as [String: Any]
            },
            "hasEvents": !events.isEmpty,
            "events": events.map { event -> [String: Any] in
                [
                    "time": ConsoleRenderer.time(event.at), "tool": event.tool, "project": event.project ?? "", "outcome": event.outcome,
                    "errorCode": event.errorCode ?? "",
                    "tier": event.tier.map { "\($0) tier" + (event.approvalID.map { ", request \($0)" } ?? "") } ?? "",
                ]
            },
            "nextCursor": events.count == query.limit ? (events.last?.id ?? "") : "",
        ]
    }

    func admin() async throws -> [String: Any] {
        let users = try await service.users()
        let actions = try await service.actions(limit: 30)
        return [
            "users": users.map { user -> [String: Any] in
                [
                    "id": user.id, "name": user.name, "role": user.role, "entitled": user.agentsEntitled, "blocked": user.blockedAt != nil,
                    "isSelf": user.id == signedIn.user.id, "csrf": csrf,
                ]
            },
            "actions": actions.map { action -> [String: Any] in
                [
                    "time": ConsoleRenderer.time(action.at), "actor": action.actorUserID ?? "admin CLI", "action": action.action,
                    "subject": action.subjectID ?? "", "detail": action.detail,
                ]
            },
        ]
    }
}
