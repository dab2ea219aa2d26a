import AgentWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One agent as the admin CLI lists it: who owns it, its state, its devices and its last call.
public struct AgentSummary: Sendable, Hashable {
    public let agent: AgentRecord
    public let ownerBlocked: Bool
    /// Whether the owner still has the agent entitlement.
    public var ownerEntitled: Bool = true
    public let grants: [GrantRecord]
    public let activeDevices: Int
    public let openSessions: Int
    public let lastCallAt: Int64?

    /// `active`, `revoked`, `owner blocked` or `owner not entitled`.
    public var state: String {
        if agent.revokedAt != nil { return "revoked" }
        if ownerBlocked { return "owner blocked" }
        if !ownerEntitled { return "owner not entitled" }
        return "active"
    }
}

/// Listing and ending things: agents, devices, sessions. The admin CLI calls these; an owner API
/// would call the same.
extension GatewayAdmin {
    /// The most sessions one listing shows (newest first).
    public static let sessionListLimit = 1_000

    /// Every agent (or one owner's), oldest first, with its state and activity.
    public func agentSummaries(ownerID: String? = nil) async throws -> [AgentSummary] {
        let now = clock.nowMilliseconds()
        return try await store.read { store in
            if let ownerID, try store.user(id: ownerID) == nil {
                throw AdminError(code: "unknown_owner", message: "unknown owner \(ownerID); list the agents without --owner to see the owners")
            }
            let users = try store.users()
            let blocked = Set(users.filter { $0.blockedAt != nil }.map(\.id))
            let unentitled = Set(users.filter { !$0.agentsEntitled }.map(\.id))
            return try store.agents(ownerID: ownerID).map { agent in
                AgentSummary(
                    agent: agent, ownerBlocked: blocked.contains(agent.ownerID), ownerEntitled: !unentitled.contains(agent.ownerID),
                    grants: try store.grants(agentID: agent.id),
                    activeDevices: try store.devices(agentID: agent.id).filter { $0.revokedAt == nil }.count,
                    openSessions: try store.sessions(agentID: agent.id, openAt: now, limit: Self.sessionListLimit).count,
                    lastCallAt: try store.lastAuditTime(agentID: agent.id))
            }
        }
    }

    /// An agent's devices, oldest first.
    public func devices(agentID: String) async throws -> [DeviceRecord] {
        try await store.read { store in
            try Self.requireAgent(agentID, in: store)
            return try store.devices(agentID: agentID)
        }
    }

    /// An agent's sessions, newest first; only the open ones unless `includeClosed`.
    public func sessions(agentID: String, includeClosed: Bool = false) async throws -> [SessionRecord] {
        let now = clock.nowMilliseconds()
        return try await store.read { store in
            try Self.requireAgent(agentID, in: store)
            return try store.sessions(agentID: agentID, openAt: includeClosed ? nil : now, limit: Self.sessionListLimit)
        }
    }

    /// Revokes one device: its sessions end, and its next call fails with `device_revoked`.
    public func revokeDevice(id: String, by actor: ActionActor = .hostCLI) async throws {
        let now = clock.nowMilliseconds()
        try await store.write { store in
            guard let device = try store.device(id: id) else {
                throw AdminError(code: "unknown_device", message: "unknown device \(id); see `agent-gateway device list --agent AGENT`")
            }
            try store.setDeviceRevoked(id: id, at: now)
            try store.endSessions(deviceID: id, at: now)
            try OwnerActionLog.record(
                store, actor: actor, action: "revoke_device", subjectID: id, subjectOwnerID: try store.agent(id: device.agentID)?.ownerID,
                detail: "agent \(device.agentID)", at: now)
        }
    }

    /// Ends one session: its token stops working; the device may sign in again.
    public func endSession(id: String, by actor: ActionActor = .hostCLI) async throws {
        let now = clock.nowMilliseconds()
        try await store.write { store in
            guard let session = try store.session(id: id) else {
                throw AdminError(code: "unknown_session", message: "unknown session \(id); see `agent-gateway session list --agent AGENT`")
            }
            if session.endedAt == nil { try store.endSession(id: id, at: now) }
            let agent = try store.device(id: session.deviceID).flatMap { try store.agent(id: $0.agentID) }
            try OwnerActionLog.record(
                store, actor: actor, action: "end_session", subjectID: id, subjectOwnerID: agent?.ownerID,
                detail: agent.map { "agent \($0.id)" } ?? "",
                at: now)
        }
    }

    static func requireAgent(_ id: String, in store: any StoreReader) throws {
        guard try store.agent(id: id) != nil else {
            throw AdminError(code: "unknown_agent", message: "unknown agent \(id); see `agent-gateway agent list`")
        }
    }

    /// Refuses a database path that does not name an existing file, so that a typo in `--db`
    /// never creates a new, empty database. Only `serve`, `seed-demo` and `init` create one.
    public static func requireExistingDatabase(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw AdminError(
                code: "database_missing",
                message: "there is no database at \(path); check the path, or create one with `agent-gateway init --db \(path)`")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw AdminError(code: "database_not_a_file", message: "\(path) is not a database file; pass the .sqlite file to --db")
        }
    }
}
