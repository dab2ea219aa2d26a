import GRDB

/// The SQLite tables of approval requests and break-glass grants (migration v5-approvals), the
/// audit's link to them, and the store operations on them.
extension SQLiteGatewayStore {
    static func registerApprovalMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v5-approvals") { db in
            try db.execute(
                sql: """
                    CREATE TABLE approvalRequest (
                        id TEXT PRIMARY KEY NOT NULL, agentID TEXT NOT NULL REFERENCES agent(id), ownerID TEXT NOT NULL,
                        deviceID TEXT NOT NULL, sessionID TEXT NOT NULL, tool TEXT NOT NULL, project TEXT, fingerprint TEXT NOT NULL,
                        summary TEXT NOT NULL, tier TEXT NOT NULL, scope TEXT NOT NULL, approvers TEXT NOT NULL, status TEXT NOT NULL,
                        decidedBy TEXT, decidedAt INTEGER, reason TEXT, breakGlassID TEXT, createdAt INTEGER NOT NULL,
                        expiresAt INTEGER NOT NULL, usedByAuditID TEXT);
                    CREATE INDEX approvalRequest_session ON approvalRequest(sessionID, fingerprint);
                    CREATE INDEX approvalRequest_status ON approvalRequest(status, id);
                    CREATE INDEX approvalRequest_owner ON approvalRequest(ownerID, id);
                    CREATE INDEX approvalRequest_agent ON approvalRequest(agentID, status);
                    CREATE TABLE breakGlassGrant (
                        id TEXT PRIMARY KEY NOT NULL, adminID TEXT NOT NULL REFERENCES user(id), reason TEXT NOT NULL,
                        createdAt INTEGER NOT NULL, expiresAt INTEGER NOT NULL, endedAt INTEGER, openedBy TEXT);
                    ALTER TABLE auditEvent ADD COLUMN tier TEXT;
                    ALTER TABLE auditEvent ADD COLUMN approvalID TEXT;
                    """)
        }
    }
}

extension ApprovalRequestRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "approvalRequest" }
extension BreakGlassGrantRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "breakGlassGrant" }

extension SQLiteTransaction {
    func approvalRequest(id: String) throws -> ApprovalRequestRecord? { try ApprovalRequestRecord.fetchOne(db, key: id) }

    func resumableApprovalRequest(sessionID: String, deviceID: String, fingerprint: String) throws -> ApprovalRequestRecord? {
        try ApprovalRequestRecord.fetchOne(
            try db.cachedStatement(
                sql: """
                    SELECT * FROM approvalRequest WHERE (sessionID = ? OR deviceID = ?) AND fingerprint = ? AND usedByAuditID IS NULL
                        AND status IN ('pending', 'approved') ORDER BY (sessionID = ?) DESC, id DESC LIMIT 1
                    """), arguments: [sessionID, deviceID, fingerprint, sessionID])
    }

    func sessionApproval(sessionID: String, tool: String, project: String?) throws -> ApprovalRequestRecord? {
        guard let project else { return nil }
        return try ApprovalRequestRecord.fetchOne(
            try db.cachedStatement(
                sql: """
                    SELECT * FROM approvalRequest WHERE sessionID = ? AND tool = ? AND project = ? AND scope = 'session'
                        AND status = 'approved' ORDER BY id DESC LIMIT 1
                    """), arguments: [sessionID, tool, project])
    }

    func approvalRequests(_ query: ApprovalQuery) throws -> [ApprovalRequestRecord] {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let ownerID = query.ownerID {
            conditions.append("ownerID = ?")
            _ = arguments.append(contentsOf: [ownerID])
        }
        if let openAt = query.openAt {
            conditions.append("status = 'pending' AND expiresAt > ?")
            _ = arguments.append(contentsOf: [openAt])
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        _ = arguments.append(contentsOf: [query.limit])
        return try ApprovalRequestRecord.fetchAll(
            try db.cachedStatement(sql: "SELECT * FROM approvalRequest\(filter) ORDER BY id DESC LIMIT ?"), arguments: arguments)
    }

    func openApprovalRequestCount(agentID: String, at: Int64) throws -> Int {
        try Int.fetchOne(
            try db.cachedStatement(sql: "SELECT COUNT(*) FROM approvalRequest WHERE agentID = ? AND status = 'pending' AND expiresAt > ?"),
            arguments: [agentID, at]) ?? 0
    }

    func breakGlassGrants(adminID: String?, activeAt: Int64?, limit: Int) throws -> [BreakGlassGrantRecord] {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let adminID {
            conditions.append("adminID = ?")
            _ = arguments.append(contentsOf: [adminID])
        }
        if let activeAt {
            conditions.append("endedAt IS NULL AND expiresAt > ?")
            _ = arguments.append(contentsOf: [activeAt])
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        _ = arguments.append(contentsOf: [limit])
        return try BreakGlassGrantRecord.fetchAll(
            try db.cachedStatement(sql: "SELECT * FROM breakGlassGrant\(filter) ORDER BY id DESC LIMIT ?"), arguments: arguments)
    }

    func insertApprovalRequest(_ request: ApprovalRequestRecord) throws { try request.insert(db) }

    func decideApprovalRequest(
        id: String, status: String, decidedBy: String?, at: Int64, reason: String?, breakGlassID: String?
    ) throws -> Bool {
        try db.execute(
            sql: """
                UPDATE approvalRequest SET status = ?, decidedBy = ?, decidedAt = ?, reason = ?, breakGlassID = ?
                WHERE id = ? AND status = 'pending' AND expiresAt > ?
                """, arguments: [status, decidedBy, at, reason, breakGlassID, id, at])
        return db.changesCount > 0
    }

    func markApprovalUsed(id: String, auditID: String) throws -> Bool {
        try db.execute(
            sql: "UPDATE approvalRequest SET usedByAuditID = ? WHERE id = ? AND status = 'approved' AND usedByAuditID IS NULL",
            arguments: [auditID, id])
        return db.changesCount > 0
    }

    func insertBreakGlassGrant(_ grant: BreakGlassGrantRecord) throws { try grant.insert(db) }

    func endBreakGlassGrant(id: String, at: Int64) throws -> Bool {
        try db.execute(
            sql: "UPDATE breakGlassGrant SET endedAt = ? WHERE id = ? AND endedAt IS NULL AND expiresAt > ?", arguments: [at, id, at])
        return db.changesCount > 0
    }
}
