import AgentWire

/// The owner API's and the console's operations for one signed-in person, with authorization:
/// an owner sees and changes only their own agents (anything else is "not found"), an admin sees
/// every agent and manages people. Every change goes through ``GatewayAdmin`` (the admin CLI's
/// operations), with the person as the actor, so it is written and audited in one place.
public struct OwnerService: Sendable {
    public let admin: GatewayAdmin
    public let viewer: UserRecord
    let staleAfterMilliseconds: Int64

    /// The most audit events one page holds.
    public static let auditPageLimit = 200

    var actor: ActionActor { .user(viewer.id) }
    var now: Int64 { admin.clock.nowMilliseconds() }

    static func notFound(_ what: String) -> AdminError {
        AdminError(code: "not_found", message: "there is no \(what) here; pick one from your list of agents")
    }

    /// The agent, if the viewer may see it; "not found" otherwise (never "forbidden").
    func visibleAgent(_ id: String, in store: any StoreReader) throws -> AgentRecord {
        guard let agent = try store.agent(id: id), viewer.isAdmin || agent.ownerID == viewer.id else { throw Self.notFound("agent \(id)") }
        return agent
    }

    func requireAdmin() throws {
        guard viewer.isAdmin else { throw Self.notFound("such page") }
    }

    // MARK: Agents

    /// The viewer's agents (an admin: every agent), oldest first.
    public func agents() async throws -> [AgentOverview] {
        let (moment, viewer, stale) = (now, viewer, staleAfterMilliseconds)
        return try await admin.store.read { store in
            try store.agents(ownerID: viewer.isAdmin ? nil : viewer.id).map {
                try AgentOverview.read($0, store: store, now: moment, staleAfterMilliseconds: stale)
            }
        }
    }

    public func agent(_ id: String) async throws -> AgentOverview {
        let (moment, stale) = (now, staleAfterMilliseconds)
        return try await admin.store.read { store in
            try AgentOverview.read(try visibleAgent(id, in: store), store: store, now: moment, staleAfterMilliseconds: stale)
        }
    }

    /// Creates an agent owned by the viewer.
    public func createAgent(name: String, grants: [String: [String]]) async throws -> String {
        try await admin.createAgent(ownerID: viewer.id, name: name, grants: grants, by: actor)
    }

    /// A one-time pairing code for one of the viewer's agents, and when it expires.
    public func pairingCode(agentID: String, ttlSeconds: Int) async throws -> (code: String, expiresAt: Int64) {
        _ = try await admin.store.read { try visibleAgent(agentID, in: $0) }
        let code = try await admin.createPairingCode(agentID: agentID, ttlSeconds: ttlSeconds, by: actor)
        return (code, now + Int64(ttlSeconds) * 1000)
    }

    public func revokeAgent(_ id: String) async throws {
        _ = try await admin.store.read { try visibleAgent(id, in: $0) }
        try await admin.revokeAgent(id: id, by: actor)
    }

    // MARK: Devices and sessions

    public func devices(agentID: String) async throws -> [DeviceRecord] {
        try await admin.store.read { store in
            _ = try visibleAgent(agentID, in: store)
            return try store.devices(agentID: agentID)
        }
    }

    /// The agent's sessions, newest first, open and closed.
    public func sessions(agentID: String, limit: Int = 50) async throws -> [SessionRecord] {
        try await admin.store.read { store in
            _ = try visibleAgent(agentID, in: store)
            return try store.sessions(agentID: agentID, openAt: nil, limit: limit)
        }
    }

    public func revokeDevice(agentID: String, deviceID: String) async throws {
        try await admin.store.read { store in
            _ = try visibleAgent(agentID, in: store)
            guard let device = try store.device(id: deviceID), device.agentID == agentID else { throw Self.notFound("device \(deviceID)") }
        }
        try await admin.revokeDevice(id: deviceID, by: actor)
    }

    public func endSession(agentID: String, sessionID: String) async throws {
        try await admin.store.read { store in
            _ = try visibleAgent(agentID, in: store)
            guard let session = try store.session(id: sessionID), let device = try store.device(id: session.deviceID), device.agentID == agentID
            else { throw Self.notFound("session \(sessionID)") }
        }
        try await admin.endSession(id: sessionID, by: actor)
    }

    // MARK: Audit

    /// A page of the audit feed, newest first: the viewer's agents' calls (an admin: everyone's).
    public func audit(_ query: AuditQuery) async throws -> [AuditEventRecord] {
        var query = query
        query.limit = max(1, min(query.limit, Self.auditPageLimit))
        if !viewer.isAdmin { query.ownerID = viewer.id }
        if let agentID = query.agentID { _ = try await admin.store.read { try visibleAgent(agentID, in: $0) } }
        let finalQuery = query
        return try await admin.store.read { try $0.auditEvents(matching: finalQuery) }
    }

    /// Owner and admin actions, newest first: by or about the viewer (an admin: all).
    public func actions(limit: Int = 50) async throws -> [OwnerActionRecord] {
        let viewer = viewer
        return try await admin.store.read { try $0.ownerActions(userID: viewer.isAdmin ? nil : viewer.id, limit: min(limit, 200)) }
    }

    // MARK: Approvals

    /// Approval requests the viewer may decide or follow, newest first: those of the viewer's
    /// agents, and for an admin every request.
    public func approvals(pendingOnly: Bool, limit: Int = 100) async throws -> [ApprovalRequestRecord] {
        try await admin.approvalRequests(ownerID: viewer.isAdmin ? nil : viewer.id, pendingOnly: pendingOnly, limit: min(limit, 200))
    }

    /// Approves or denies a request as the viewer (see ``GatewayAdmin/decideApproval(id:approve:reason:by:)``).
    public func decide(requestID: String, approve: Bool, reason: String?) async throws -> ApprovalRequestRecord {
        try await admin.decideApproval(id: requestID, approve: approve, reason: reason, by: actor)
    }

    /// The viewer's break-glass grant in force, if any.
    public func breakGlass() async throws -> BreakGlassGrantRecord? {
        guard viewer.isAdmin else { return nil }
        let (viewer, moment) = (viewer, now)
        return try await admin.store.read { try $0.breakGlassGrants(adminID: viewer.id, activeAt: moment, limit: 1).first }
    }

    // MARK: Admin

    public func users() async throws -> [UserRecord] {
        try requireAdmin()
        return try await admin.users()
    }

    public func setEntitlement(userID: String, entitled: Bool) async throws {
        try requireAdmin()
        try await admin.setEntitlement(userID: userID, entitled: entitled, by: actor)
    }

    public func setBlocked(userID: String, blocked: Bool) async throws {
        try requireAdmin()
        guard userID != viewer.id else {
            throw AdminError(code: "validation_failed", message: "you cannot block yourself; ask another admin")
        }
        try await admin.setOwnerBlocked(id: userID, blocked: blocked, by: actor)
    }
}

extension Gateway {
    /// The owner operations for a signed-in person.
    public func ownerService(for user: UserRecord) throws -> OwnerService {
        OwnerService(
            admin: try GatewayAdmin(store: store, hashKey: hashKey, clock: configuration.clock), viewer: user,
            staleAfterMilliseconds: Int64(configuration.staleAfterSeconds) * 1000)
    }
}
