import GRDB

/// The SQLite tables of owners, sign-in, the console and the tracker's history (migration v3),
/// and the store operations on them.
extension SQLiteGatewayStore {
    static func registerOwnerMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v3-owners-and-console") { db in
            // Existing people stay owners with agents, so that a database from before keeps working.
            try db.execute(
                sql: """
                    ALTER TABLE user ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
                    ALTER TABLE user ADD COLUMN agentsEntitled INTEGER NOT NULL DEFAULT 1;
                    CREATE TABLE loginLink (
                        tokenHash TEXT PRIMARY KEY NOT NULL, userID TEXT NOT NULL REFERENCES user(id),
                        createdAt INTEGER NOT NULL, expiresAt INTEGER NOT NULL, usedAt INTEGER);
                    CREATE TABLE browserSession (
                        id TEXT PRIMARY KEY NOT NULL, tokenHash TEXT NOT NULL UNIQUE, userID TEXT NOT NULL REFERENCES user(id),
                        signedInVia TEXT NOT NULL, createdAt INTEGER NOT NULL, lastSeenAt INTEGER NOT NULL,
                        expiresAt INTEGER NOT NULL, endedAt INTEGER);
                    CREATE INDEX browserSession_user ON browserSession(userID);
                    CREATE TABLE issueChange (
                        id TEXT PRIMARY KEY NOT NULL, issueID TEXT NOT NULL REFERENCES issue(id), at INTEGER NOT NULL,
                        actorUserID TEXT NOT NULL, actorAgentID TEXT, action TEXT NOT NULL, summary TEXT NOT NULL);
                    CREATE INDEX issueChange_issue ON issueChange(issueID, id);
                    CREATE TABLE ownerAction (
                        id TEXT PRIMARY KEY NOT NULL, at INTEGER NOT NULL, actorUserID TEXT, action TEXT NOT NULL,
                        subjectID TEXT, subjectOwnerID TEXT, detail TEXT NOT NULL);
                    CREATE INDEX ownerAction_actor ON ownerAction(actorUserID, id);
                    CREATE INDEX auditEvent_owner ON auditEvent(ownerID, id);
                    CREATE INDEX workSession_agent ON workSession(agentID, status);
                    """)
        }
    }
}

extension LoginLinkRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "loginLink" }
extension BrowserSessionRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "browserSession" }
extension IssueChangeRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "issueChange" }
extension OwnerActionRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "ownerAction" }

extension SQLiteTransaction {
    func lastAuditEvent(agentID: String) throws -> AuditEventRecord? {
        try AuditEventRecord.fetchOne(
            try db.cachedStatement(sql: "SELECT * FROM auditEvent WHERE agentID = ? ORDER BY id DESC LIMIT 1"), arguments: [agentID])
    }

    func auditEvents(matching query: AuditQuery) throws -> [AuditEventRecord] {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        func add(_ condition: String, _ value: (any DatabaseValueConvertible)?) {
            guard let value else { return }
            conditions.append(condition)
            _ = arguments.append(contentsOf: [value])
        }
        add("ownerID = ?", query.ownerID)
        add("agentID = ?", query.agentID)
        add("tool = ?", query.tool)
        add("outcome = ?", query.outcome)
        add("at >= ?", query.since)
        add("at <= ?", query.until)
        add("id < ?", query.beforeID)
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        _ = arguments.append(contentsOf: [query.limit])
        return try AuditEventRecord.fetchAll(
            try db.cachedStatement(sql: "SELECT * FROM auditEvent\(filter) ORDER BY id DESC LIMIT ?"), arguments: arguments)
    }

    func loginLink(tokenHash: String) throws -> LoginLinkRecord? { try LoginLinkRecord.fetchOne(db, key: tokenHash) }
    func browserSession(tokenHash: String) throws -> BrowserSessionRecord? {
        try BrowserSessionRecord.fetchOne(try db.cachedStatement(sql: "SELECT * FROM browserSession WHERE tokenHash = ?"), arguments: [tokenHash])
    }
    func openWorkSessionCount(agentID: String) throws -> Int {
        try Int.fetchOne(
            try db.cachedStatement(sql: "SELECT COUNT(*) FROM workSession WHERE agentID = ? AND status = 'active'"), arguments: [agentID]) ?? 0
    }
    func issueChanges(issueID: String, limit: Int) throws -> [IssueChangeRecord] {
        try IssueChangeRecord.fetchAll(
            try db.cachedStatement(sql: "SELECT * FROM issueChange WHERE issueID = ? ORDER BY id LIMIT ?"), arguments: [issueID, limit])
    }
    func ownerActions(userID: String?, limit: Int) throws -> [OwnerActionRecord] {
        guard let userID else {
            return try OwnerActionRecord.fetchAll(
                try db.cachedStatement(sql: "SELECT * FROM ownerAction ORDER BY id DESC LIMIT ?"), arguments: [limit])
        }
        return try OwnerActionRecord.fetchAll(
            try db.cachedStatement(
                sql: "SELECT * FROM ownerAction WHERE actorUserID = ? OR subjectOwnerID = ? OR subjectID = ? ORDER BY id DESC LIMIT ?"),
            arguments: [userID, userID, userID, limit])
    }

    func setUserRole(id: String, role: UserRole) throws {
        try db.execute(sql: "UPDATE user SET role = ? WHERE id = ?", arguments: [role.rawValue, id])
        try bumpPrincipalEpoch()
    }
    func setUserEntitled(id: String, entitled: Bool) throws {
        try db.execute(sql: "UPDATE user SET agentsEntitled = ? WHERE id = ?", arguments: [entitled, id])
        try bumpPrincipalEpoch()
    }
    func insertLoginLink(_ link: LoginLinkRecord) throws { try link.insert(db) }
    func markLoginLinkUsed(tokenHash: String, at: Int64) throws {
        try db.execute(sql: "UPDATE loginLink SET usedAt = ? WHERE tokenHash = ? AND usedAt IS NULL", arguments: [at, tokenHash])
    }
    func insertBrowserSession(_ session: BrowserSessionRecord) throws { try session.insert(db) }
    func touchBrowserSession(id: String, at: Int64) throws {
        try db.execute(sql: "UPDATE browserSession SET lastSeenAt = ? WHERE id = ?", arguments: [at, id])
    }
    func endBrowserSession(id: String, at: Int64) throws {
        try db.execute(sql: "UPDATE browserSession SET endedAt = COALESCE(endedAt, ?) WHERE id = ?", arguments: [at, id])
    }
    func endBrowserSessions(userID: String, at: Int64) throws {
        try db.execute(sql: "UPDATE browserSession SET endedAt = ? WHERE userID = ? AND endedAt IS NULL", arguments: [at, userID])
    }
    func insertIssueChange(_ change: IssueChangeRecord) throws { try change.insert(db) }
    func insertOwnerAction(_ action: OwnerActionRecord) throws { try action.insert(db) }
}
