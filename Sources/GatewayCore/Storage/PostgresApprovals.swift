import PostgresNIO

/// Approval requests and break-glass grants on PostgreSQL (migration v5-approvals), as SQLite's
/// (SQLiteApprovalTables.swift). A decision is announced with `NOTIFY agent_gateway_approvals`
/// (payload: the request id) inside its transaction, so PostgreSQL delivers it at commit, to every
/// gateway instance, whichever process decided (a console on another instance, the admin CLI).
extension PostgresSchema {
    static let v5: [String] = [
        """
        CREATE TABLE approvalRequest (id \(text) PRIMARY KEY NOT NULL, agentID \(text) NOT NULL REFERENCES agent(id), ownerID \(text) NOT NULL,
            deviceID \(text) NOT NULL, sessionID \(text) NOT NULL, tool \(text) NOT NULL, project \(text), fingerprint \(text) NOT NULL,
            summary \(text) NOT NULL, tier \(text) NOT NULL, scope \(text) NOT NULL, approvers \(text) NOT NULL, status \(text) NOT NULL,
            decidedBy \(text), decidedAt BIGINT, reason \(text), breakGlassID \(text), createdAt BIGINT NOT NULL,
            expiresAt BIGINT NOT NULL, usedByAuditID \(text))
        """,
        "CREATE INDEX approvalRequest_session ON approvalRequest(sessionID, fingerprint)",
        "CREATE INDEX approvalRequest_status ON approvalRequest(status, id)",
        "CREATE INDEX approvalRequest_owner ON approvalRequest(ownerID, id)",
        "CREATE INDEX approvalRequest_agent ON approvalRequest(agentID, status)",
        """
        CREATE TABLE breakGlassGrant (id \(text) PRIMARY KEY NOT NULL, adminID \(text) NOT NULL REFERENCES "user"(id), reason \(text) NOT NULL,
            createdAt BIGINT NOT NULL, expiresAt BIGINT NOT NULL, endedAt BIGINT, openedBy \(text))
        """,
        "ALTER TABLE auditEvent ADD COLUMN tier \(text)",
        "ALTER TABLE auditEvent ADD COLUMN approvalID \(text)",
    ]
}

extension PostgresTransaction {
    static let approvalChannel = "agent_gateway_approvals"

    static let approvalColumns = """
        id, agentID, ownerID, deviceID, sessionID, tool, project, fingerprint, summary, tier, scope, approvers, status, decidedBy, \
        decidedAt, reason, breakGlassID, createdAt, expiresAt, usedByAuditID
        """
    static func approval(_ c: inout PostgresColumns) throws -> ApprovalRequestRecord {
        ApprovalRequestRecord(
            id: try c.next(), agentID: try c.next(), ownerID: try c.next(), deviceID: try c.next(), sessionID: try c.next(),
            tool: try c.next(), project: try c.next(), fingerprint: try c.next(), summary: try c.next(), tier: try c.next(),
            scope: try c.next(), approvers: try c.next(), status: try c.next(), decidedBy: try c.next(), decidedAt: try c.next(),
            reason: try c.next(), breakGlassID: try c.next(), createdAt: try c.next(), expiresAt: try c.next(), usedByAuditID: try c.next())
    }
    static let breakGlassColumns = "id, adminID, reason, createdAt, expiresAt, endedAt, openedBy"
    static func breakGlass(_ c: inout PostgresColumns) throws -> BreakGlassGrantRecord {
        BreakGlassGrantRecord(
            id: try c.next(), adminID: try c.next(), reason: try c.next(), createdAt: try c.next(), expiresAt: try c.next(),
            endedAt: try c.next(), openedBy: try c.next())
    }

    func approvalRequest(id: String) throws -> ApprovalRequestRecord? {
        try one("SELECT \(Self.approvalColumns) FROM approvalRequest WHERE id = ?", [.text(id)], Self.approval)
    }

    func resumableApprovalRequest(sessionID: String, deviceID: String, fingerprint: String) throws -> ApprovalRequestRecord? {
        try one(
            """
            SELECT \(Self.approvalColumns) FROM approvalRequest WHERE (sessionID = ? OR deviceID = ?) AND fingerprint = ?
                AND usedByAuditID IS NULL AND status IN ('pending', 'approved') ORDER BY (sessionID = ?) DESC, id DESC LIMIT 1
            """, [.text(sessionID), .text(deviceID), .text(fingerprint), .text(sessionID)], Self.approval)
    }

    func sessionApproval(sessionID: String, tool: String, project: String?) throws -> ApprovalRequestRecord? {
        guard let project else { return nil }
        return try one(
            """
            SELECT \(Self.approvalColumns) FROM approvalRequest WHERE sessionID = ? AND tool = ? AND project = ? AND scope = 'session'
                AND status = 'approved' ORDER BY id DESC LIMIT 1
            """, [.text(sessionID), .text(tool), .text(project)], Self.approval)
    }

    func approvalRequests(_ query: ApprovalQuery) throws -> [ApprovalRequestRecord] {
        var conditions: [String] = []
        var values: [PostgresValue] = []
        if let ownerID = query.ownerID {
            conditions.append("ownerID = ?")
            values.append(.text(ownerID))
        }
        if let openAt = query.openAt {
            conditions.append("status = 'pending' AND expiresAt > ?")
            values.append(.int(openAt))
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        values.append(.int(query.limit))
        return try all("SELECT \(Self.approvalColumns) FROM approvalRequest\(filter) ORDER BY id DESC LIMIT ?", values, Self.approval)
    }

    func openApprovalRequestCount(agentID: String, at: Int64) throws -> Int {
        try count(
            "SELECT COUNT(*) FROM approvalRequest WHERE agentID = ? AND status = 'pending' AND expiresAt > ?", [.text(agentID), .int(at)])
    }

    func breakGlassGrants(adminID: String?, activeAt: Int64?, limit: Int) throws -> [BreakGlassGrantRecord] {
        var conditions: [String] = []
        var values: [PostgresValue] = []
        if let adminID {
            conditions.append("adminID = ?")
            values.append(.text(adminID))
        }
        if let activeAt {
            conditions.append("endedAt IS NULL AND expiresAt > ?")
            values.append(.int(activeAt))
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        values.append(.int(limit))
        return try all("SELECT \(Self.breakGlassColumns) FROM breakGlassGrant\(filter) ORDER BY id DESC LIMIT ?", values, Self.breakGlass)
    }

    func insertApprovalRequest(_ r: ApprovalRequestRecord) throws {
        try execute(
            "INSERT INTO approvalRequest (\(Self.approvalColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(r.id), .text(r.agentID), .text(r.ownerID), .text(r.deviceID), .text(r.sessionID), .text(r.tool), .text(r.project),
                .text(r.fingerprint), .text(r.summary), .text(r.tier), .text(r.scope), .text(r.approvers), .text(r.status),
                .text(r.decidedBy), .int(r.decidedAt), .text(r.reason), .text(r.breakGlassID), .int(r.createdAt), .int(r.expiresAt),
                .text(r.usedByAuditID),
            ])
    }

    func decideApprovalRequest(
        id: String, status: String, decidedBy: String?, at: Int64, reason: String?, breakGlassID: String?
    ) throws -> Bool {
        let changed = try execute(
            """
            UPDATE approvalRequest SET status = ?, decidedBy = ?, decidedAt = ?, reason = ?, breakGlassID = ?
            WHERE id = ? AND status = 'pending' AND expiresAt > ?
            """, [.text(status), .text(decidedBy), .int(at), .text(reason), .text(breakGlassID), .text(id), .int(at)])
        guard changed > 0 else { return false }
        _ = try rows("SELECT pg_notify('\(Self.approvalChannel)', ?)", [.text(id)])
        return true
    }

    func markApprovalUsed(id: String, auditID: String) throws -> Bool {
        try execute(
            "UPDATE approvalRequest SET usedByAuditID = ? WHERE id = ? AND status = 'approved' AND usedByAuditID IS NULL",
            [.text(auditID), .text(id)]) > 0
    }

    func insertBreakGlassGrant(_ g: BreakGlassGrantRecord) throws {
        try execute(
            "INSERT INTO breakGlassGrant (\(Self.breakGlassColumns)) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [.text(g.id), .text(g.adminID), .text(g.reason), .int(g.createdAt), .int(g.expiresAt), .int(g.endedAt), .text(g.openedBy)])
    }

    func endBreakGlassGrant(id: String, at: Int64) throws -> Bool {
        try execute(
            "UPDATE breakGlassGrant SET endedAt = ? WHERE id = ? AND endedAt IS NULL AND expiresAt > ?", [.int(at), .text(id), .int(at)]) > 0
    }
}
