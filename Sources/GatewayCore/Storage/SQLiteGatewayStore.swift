import AgentWire
import GRDB

/// How hard SQLite works to keep a committed transaction across a crash.
public enum Durability: String, Sendable, CaseIterable {
    /// WAL + `synchronous=NORMAL`: a commit is in the WAL file (in the OS page cache) before the
    /// gateway answers, so killing the process (even `kill -9`) loses nothing; a power cut can lose
    /// the last transactions but never corrupts the database.
    case normal
    /// WAL + `synchronous=FULL`: every commit is fsynced before the gateway answers.
    case full
}

/// The SQLite store: one database file in WAL mode, migrations applied on open, through GRDB's
/// `DatabasePool` (one writer, concurrent readers).
public final class SQLiteGatewayStore: GatewayStore {
    let pool: DatabasePool
    public let path: String

    /// Opens (creating if needed) the database at `path` and applies every migration. The file
    /// and its companions are made owner-only first (see ``DatabaseFiles``).
    public init(path: String, durability: Durability = .normal) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.maximumReaderCount = 8
        let synchronous = durability == .full ? "FULL" : "NORMAL"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        self.path = path
        try DatabaseFiles.prepare(path: path)
        self.pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
    }

    public func read<T: Sendable>(_ body: @Sendable (any StoreReader) throws -> T) async throws -> T {
        try await pool.read { db in try body(SQLiteTransaction(db: db)) }
    }

    public func write<T: Sendable>(_ body: @Sendable (any StoreWriter) throws -> T) async throws -> T {
        try await pool.write { db in try body(SQLiteTransaction(db: db)) }
    }

    public func writeNow<T>(_ body: @Sendable (any StoreWriter) throws -> T) throws -> T {
        try pool.write { db in try body(SQLiteTransaction(db: db)) }
    }

    /// Copies the WAL into the database file and truncates the WAL (for measuring the file's size).
    public func checkpoint() throws {
        try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }

    /// The journal mode SQLite reports (`wal`).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(try db.cachedStatement(sql: "PRAGMA journal_mode")) ?? "" }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE setting (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                    CREATE TABLE user (
                        id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, blockedAt INTEGER, createdAt INTEGER NOT NULL);
                    CREATE TABLE agent (
                        id TEXT PRIMARY KEY NOT NULL, ownerID TEXT NOT NULL REFERENCES user(id), name TEXT NOT NULL,
                        createdAt INTEGER NOT NULL, revokedAt INTEGER);
                    CREATE TABLE "grant" (
                        agentID TEXT NOT NULL REFERENCES agent(id), projectKey TEXT NOT NULL, scopes TEXT NOT NULL,
                        PRIMARY KEY (agentID, projectKey));
                    CREATE TABLE pairingCode (
                        codeHash TEXT PRIMARY KEY NOT NULL, agentID TEXT NOT NULL REFERENCES agent(id),
                        createdAt INTEGER NOT NULL, expiresAt INTEGER NOT NULL, usedAt INTEGER);
                    CREATE TABLE device (
                        id TEXT PRIMARY KEY NOT NULL, agentID TEXT NOT NULL REFERENCES agent(id), name TEXT NOT NULL,
                        publicKey TEXT NOT NULL, createdAt INTEGER NOT NULL, revokedAt INTEGER);
                    CREATE TABLE session (
                        id TEXT PRIMARY KEY NOT NULL, deviceID TEXT NOT NULL REFERENCES device(id),
                        tokenHash TEXT NOT NULL UNIQUE, createdAt INTEGER NOT NULL, expiresAt INTEGER NOT NULL, endedAt INTEGER);
                    CREATE INDEX session_device ON session(deviceID);
                    CREATE TABLE sessionNonce (
                        deviceID TEXT NOT NULL, nonce TEXT NOT NULL, seenAt INTEGER NOT NULL, PRIMARY KEY (deviceID, nonce));
                    CREATE TABLE project (
                        id TEXT PRIMARY KEY NOT NULL, key TEXT NOT NULL UNIQUE, name TEXT NOT NULL, description TEXT NOT NULL,
                        nextIssueNumber INTEGER NOT NULL, createdAt INTEGER NOT NULL);
                    CREATE TABLE state (
                        id TEXT PRIMARY KEY NOT NULL, projectID TEXT NOT NULL REFERENCES project(id), name TEXT NOT NULL,
                        category TEXT NOT NULL, position INTEGER NOT NULL);
                    CREATE TABLE label (
                        id TEXT PRIMARY KEY NOT NULL, projectID TEXT NOT NULL REFERENCES project(id), name TEXT NOT NULL,
                        color TEXT NOT NULL);
                    CREATE TABLE projectMember (
                        projectID TEXT NOT NULL REFERENCES project(id), userID TEXT NOT NULL REFERENCES user(id),
                        addedAt INTEGER NOT NULL, addedByAgentID TEXT, PRIMARY KEY (projectID, userID));
                    CREATE TABLE issue (
                        id TEXT PRIMARY KEY NOT NULL, projectID TEXT NOT NULL REFERENCES project(id), number INTEGER NOT NULL,
                        title TEXT NOT NULL, description TEXT NOT NULL, priority TEXT NOT NULL,
                        stateID TEXT NOT NULL REFERENCES state(id), labelIDs TEXT NOT NULL, assigneeIDs TEXT NOT NULL,
                        blocks TEXT NOT NULL, createdByUserID TEXT NOT NULL, createdByAgentID TEXT,
                        createdAt INTEGER NOT NULL, updatedAt INTEGER NOT NULL, UNIQUE (projectID, number));
                    CREATE TABLE comment (
                        id TEXT PRIMARY KEY NOT NULL, issueID TEXT NOT NULL REFERENCES issue(id), authorUserID TEXT NOT NULL,
                        authorAgentID TEXT, body TEXT NOT NULL, createdAt INTEGER NOT NULL);
                    CREATE INDEX comment_issue ON comment(issueID, createdAt);
                    CREATE TABLE workSession (
                        id TEXT PRIMARY KEY NOT NULL, agentID TEXT NOT NULL REFERENCES agent(id),
                        projectID TEXT NOT NULL REFERENCES project(id), issueID TEXT, summary TEXT NOT NULL,
                        status TEXT NOT NULL, notes TEXT NOT NULL, result TEXT, startedAt INTEGER NOT NULL,
                        updatedAt INTEGER NOT NULL, finishedAt INTEGER);
                    CREATE TABLE idempotencyRecord (
                        agentID TEXT NOT NULL, keyHash TEXT NOT NULL, tool TEXT NOT NULL, fingerprint TEXT NOT NULL,
                        result TEXT NOT NULL, createdAt INTEGER NOT NULL, PRIMARY KEY (agentID, keyHash));
                    CREATE TABLE auditEvent (
                        id TEXT PRIMARY KEY NOT NULL, at INTEGER NOT NULL, agentID TEXT, ownerID TEXT, deviceID TEXT,
                        sessionID TEXT, tool TEXT NOT NULL, project TEXT, targetIDs TEXT NOT NULL,
                        argumentsSHA256 TEXT NOT NULL, outcome TEXT NOT NULL, errorCode TEXT, idempotencyKeyHash TEXT,
                        replayed INTEGER NOT NULL, latencyMicroseconds INTEGER NOT NULL);
                    CREATE INDEX auditEvent_agent ON auditEvent(agentID, id);
                    """)
        }
        migrator.registerMigration("v2-work-session-notes") { db in
            // Notes move to their own rows, so that adding one is an insert, not a rewrite of all of
            // them inside the write transaction.
            try db.execute(
                sql: """
                    CREATE TABLE workSessionNote (
                        workSessionID TEXT NOT NULL REFERENCES workSession(id), position INTEGER NOT NULL,
                        at INTEGER NOT NULL, text TEXT NOT NULL, issueID TEXT, PRIMARY KEY (workSessionID, position));
                    INSERT INTO workSessionNote (workSessionID, position, at, text, issueID)
                        SELECT workSession.id, CAST(note.key AS INTEGER), json_extract(note.value, '$.at'),
                            json_extract(note.value, '$.text'), json_extract(note.value, '$.issueID')
                        FROM workSession, json_each(workSession.notes) AS note;
                    ALTER TABLE workSession DROP COLUMN notes;
                    """)
        }
        registerOwnerMigrations(&migrator)
        // PostgreSQL's v4 makes the tables that gateway instances share (rate buckets, idempotency
        // claims, the pairing guard, MCP sessions). A gateway on SQLite is the only process on its
        // database and keeps that state in memory (`ProcessSharedState`); the migration is recorded
        // all the same, so that both backends list the same migrations.
        migrator.registerMigration("v4-shared-state") { _ in }
        registerApprovalMigrations(&migrator)
        return migrator
    }
}

extension UserRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "user" }
extension AgentRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "agent" }
extension GrantRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "grant" }
extension PairingCodeRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "pairingCode" }
extension DeviceRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "device" }
extension SessionRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "session" }
extension ProjectRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "project" }
extension StateRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "state" }
extension LabelRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "label" }
extension ProjectMemberRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "projectMember" }
extension IssueRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "issue" }
extension CommentRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "comment" }
extension WorkSessionRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "workSession" }
extension WorkSessionNote: FetchableRecord, PersistableRecord { public static let databaseTableName = "workSessionNote" }
extension IdempotencyRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "idempotencyRecord" }
extension AuditEventRecord: FetchableRecord, PersistableRecord { public static let databaseTableName = "auditEvent" }

/// One transaction on the SQLite database, as the store interface sees it.
struct SQLiteTransaction: StoreWriter {
    let db: Database

    func setting(_ name: String) throws -> String? {
        try String.fetchOne(try db.cachedStatement(sql: "SELECT value FROM setting WHERE name = ?"), arguments: [name])
    }
    func user(id: String) throws -> UserRecord? { try UserRecord.fetchOne(db, key: id) }
    func users() throws -> [UserRecord] { try UserRecord.fetchAll(try db.cachedStatement(sql: "SELECT * FROM user ORDER BY id")) }
    func users(ids: [String]) throws -> [UserRecord] {
        // One cached statement per list length (a read names a few people: the statements repeat).
        try distinctIDChunks(ids).flatMap { chunk in
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            return try UserRecord.fetchAll(
                try db.cachedStatement(sql: "SELECT * FROM user WHERE id IN (\(marks))"), arguments: StatementArguments(chunk))
        }
    }
    func agent(id: String) throws -> AgentRecord? { try AgentRecord.fetchOne(db, key: id) }
    func agents(ownerID: String?) throws -> [AgentRecord] {
        if let ownerID {
            return try AgentRecord.fetchAll(
                try db.cachedStatement(sql: "SELECT * FROM agent WHERE ownerID = ? ORDER BY createdAt, id"), arguments: [ownerID])
        }
        return try AgentRecord.fetchAll(try db.cachedStatement(sql: "SELECT * FROM agent ORDER BY createdAt, id"))
    }
    func grants(agentID: String) throws -> [GrantRecord] {
        try GrantRecord.fetchAll(try db.cachedStatement(sql: "SELECT * FROM \"grant\" WHERE agentID = ? ORDER BY projectKey"), arguments: [agentID])
    }
    func pairingCode(hash: String) throws -> PairingCodeRecord? { try PairingCodeRecord.fetchOne(db, key: hash) }
    func device(id: String) throws -> DeviceRecord? { try DeviceRecord.fetchOne(db, key: id) }
    func devices(agentID: String) throws -> [DeviceRecord] {
        try DeviceRecord.fetchAll(
            try db.cachedStatement(sql: "SELECT * FROM device WHERE agentID = ? ORDER BY createdAt, id"), arguments: [agentID])
    }
    func sessions(agentID: String, openAt: Int64?, limit: Int) throws -> [SessionRecord] {
        let open = openAt == nil ? "" : " AND session.endedAt IS NULL AND session.expiresAt > ?"
        var arguments: StatementArguments = [agentID]
        if let openAt { arguments += [openAt] }
        arguments += [limit]
        return try SessionRecord.fetchAll(
            try db.cachedStatement(
                sql: "SELECT session.* FROM session JOIN device ON device.id = session.deviceID WHERE device.agentID = ?\(open) "
                    + "ORDER BY session.createdAt DESC, session.id DESC LIMIT ?"),
            arguments: arguments)
    }
    func session(tokenHash: String) throws -> SessionRecord? {
        try SessionRecord.fetchOne(try db.cachedStatement(sql: "SELECT * FROM session WHERE tokenHash = ?"), arguments: [tokenHash])
    }
    func session(id: String) throws -> SessionRecord? { try SessionRecord.fetchOne(db, key: id) }
    func nonceSeen(deviceID: String, nonce: String) throws -> Bool {
        try Bool.fetchOne(
            try db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM sessionNonce WHERE deviceID = ? AND nonce = ?)"), arguments: [deviceID, nonce])
            ?? false
    }

    func projects() throws -> [ProjectRecord] { try ProjectRecord.fetchAll(try db.cachedStatement(sql: "SELECT * FROM project ORDER BY key")) }
    func project(key: String) throws -> ProjectRecord? {
        try ProjectRecord.fetchOne(try db.cachedStatement(sql: "SELECT * FROM project WHERE key = ?"), arguments: [key])
    }
    func project(id: String) throws -> ProjectRecord? { try ProjectRecord.fetchOne(db, key: id) }
    func states(projectID: String) throws -> [StateRecord] {
        try StateRecord.fetchAll(try db.cachedStatement(sql: "SELECT * FROM state WHERE projectID = ? ORDER BY position"), arguments: [projectID])
    }
    func labels(projectID: String) throws -> [LabelRecord] {
        try LabelRecord.fetchAll(try db.cachedStatement(sql: "SELECT * FROM label WHERE projectID = ? ORDER BY name"), arguments: [projectID])
    }
    func members(projectID: String) throws -> [UserRecord] {
        try UserRecord.fetchAll(
            try db.cachedStatement(
                sql: "SELECT user.* FROM user JOIN projectMember ON projectMember.userID = user.id WHERE projectMember.projectID = ? ORDER BY user.id"
            ),
            arguments: [projectID])
    }
    func issue(projectID: String, number: Int) throws -> IssueRecord? {
        try IssueRecord.fetchOne(
            try db.cachedStatement(sql: "SELECT * FROM issue WHERE projectID = ? AND number = ?"), arguments: [projectID, number])
    }
    func issue(id: String) throws -> IssueRecord? { try IssueRecord.fetchOne(db, key: id) }
    func searchIssues(_ query: IssueQuery) throws -> [IssueRecord] {
        var sql = "SELECT * FROM issue WHERE projectID = ? AND number > ?"
        var arguments: StatementArguments = [query.projectID, query.afterNumber]
        if let text = query.text, !text.isEmpty {
            sql += " AND (title LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\')"
            let escaped = text.replacing("\\", with: "\\\\").replacing("%", with: "\\%").replacing("_", with: "\\_")
            _ = arguments.append(contentsOf: ["%\(escaped)%", "%\(escaped)%"])
        }
        if let state = query.stateID {
            sql += " AND stateID = ?"
            _ = arguments.append(contentsOf: [state])
        }
        if let label = query.labelID {
            sql += " AND EXISTS (SELECT 1 FROM json_each(issue.labelIDs) WHERE value = ?)"
            _ = arguments.append(contentsOf: [label])
        }
        if let assignee = query.assigneeID {
            sql += " AND EXISTS (SELECT 1 FROM json_each(issue.assigneeIDs) WHERE value = ?)"
            _ = arguments.append(contentsOf: [assignee])
        }
        sql += " ORDER BY number LIMIT ?"
        _ = arguments.append(contentsOf: [query.limit])
        return try IssueRecord.fetchAll(try db.cachedStatement(sql: sql), arguments: arguments)
    }
    func comment(id: String) throws -> CommentRecord? { try CommentRecord.fetchOne(db, key: id) }
    func comments(issueID: String, after: CommentPosition?, limit: Int) throws -> [CommentRecord] {
        guard let after else {
            return try CommentRecord.fetchAll(
                try db.cachedStatement(sql: "SELECT * FROM comment WHERE issueID = ? ORDER BY createdAt, id LIMIT ?"), arguments: [issueID, limit])
        }
        return try CommentRecord.fetchAll(
            try db.cachedStatement(
                sql: "SELECT * FROM comment WHERE issueID = ? AND (createdAt > ? OR (createdAt = ? AND id > ?)) ORDER BY createdAt, id LIMIT ?"),
            arguments: [issueID, after.createdAt, after.createdAt, after.id, limit])
    }
    func commentCount(issueID: String) throws -> Int {
        try Int.fetchOne(try db.cachedStatement(sql: "SELECT COUNT(*) FROM comment WHERE issueID = ?"), arguments: [issueID]) ?? 0
    }
    func workSession(id: String) throws -> WorkSessionRecord? { try WorkSessionRecord.fetchOne(db, key: id) }
    func workSessionNotes(workSessionID: String) throws -> [WorkSessionNote] {
        try WorkSessionNote.fetchAll(
            try db.cachedStatement(sql: "SELECT * FROM workSessionNote WHERE workSessionID = ? ORDER BY position"), arguments: [workSessionID])
    }
    func workSessionNoteCount(workSessionID: String) throws -> Int {
        try Int.fetchOne(
            try db.cachedStatement(sql: "SELECT COALESCE(MAX(position) + 1, 0) FROM workSessionNote WHERE workSessionID = ?"),
            arguments: [workSessionID]) ?? 0
    }
    func idempotencyRecord(agentID: String, keyHash: String) throws -> IdempotencyRecord? {
        try IdempotencyRecord.fetchOne(
            try db.cachedStatement(sql: "SELECT * FROM idempotencyRecord WHERE agentID = ? AND keyHash = ?"), arguments: [agentID, keyHash])
    }
    func auditEvents(agentID: String?, limit: Int) throws -> [AuditEventRecord] {
        if let agentID {
            return try AuditEventRecord.fetchAll(
                try db.cachedStatement(sql: "SELECT * FROM auditEvent WHERE agentID = ? ORDER BY id LIMIT ?"), arguments: [agentID, limit])
        }
        return try AuditEventRecord.fetchAll(try db.cachedStatement(sql: "SELECT * FROM auditEvent ORDER BY id LIMIT ?"), arguments: [limit])
    }
    func auditEventCount() throws -> Int { try Int.fetchOne(try db.cachedStatement(sql: "SELECT COUNT(*) FROM auditEvent")) ?? 0 }
    func lastAuditTime(agentID: String) throws -> Int64? {
        try Int64.fetchOne(try db.cachedStatement(sql: "SELECT MAX(at) FROM auditEvent WHERE agentID = ?"), arguments: [agentID])
    }

    // MARK: Writes

    func setSetting(_ name: String, value: String) throws {
        try db.execute(
            sql: "INSERT INTO setting (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            arguments: [name, value])
    }
    func insertUser(_ user: UserRecord) throws { try user.insert(db) }
    func setUserBlocked(id: String, at: Int64?) throws {
        try db.execute(sql: "UPDATE user SET blockedAt = ? WHERE id = ?", arguments: [at, id])
        try bumpPrincipalEpoch()
    }

    /// Counts every change to who may call (see ``PrincipalEpoch``), in the change's transaction.
    func bumpPrincipalEpoch() throws {
        try db.execute(
            sql: """
                INSERT INTO setting (name, value) VALUES (?, '1')
                ON CONFLICT(name) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
                """, arguments: [PrincipalEpoch.settingName])
    }
    func insertAgent(_ agent: AgentRecord) throws { try agent.insert(db) }
    func insertGrant(_ grant: GrantRecord) throws {
        try grant.insert(db)
        try bumpPrincipalEpoch()
    }
    func setAgentRevoked(id: String, at: Int64) throws {
        try db.execute(sql: "UPDATE agent SET revokedAt = COALESCE(revokedAt, ?) WHERE id = ?", arguments: [at, id])
        try bumpPrincipalEpoch()
    }
    func insertPairingCode(_ code: PairingCodeRecord) throws { try code.insert(db) }
    func markPairingCodeUsed(hash: String, at: Int64) throws {
        try db.execute(sql: "UPDATE pairingCode SET usedAt = ? WHERE codeHash = ?", arguments: [at, hash])
    }
    func insertDevice(_ device: DeviceRecord) throws { try device.insert(db) }
    func setDeviceRevoked(id: String, at: Int64) throws {
        try db.execute(sql: "UPDATE device SET revokedAt = COALESCE(revokedAt, ?) WHERE id = ?", arguments: [at, id])
        try bumpPrincipalEpoch()
    }
    func insertSession(_ session: SessionRecord) throws { try session.insert(db) }
    func endSession(id: String, at: Int64) throws {
        try db.execute(sql: "UPDATE session SET endedAt = COALESCE(endedAt, ?) WHERE id = ?", arguments: [at, id])
        try bumpPrincipalEpoch()
    }
    func endSessions(deviceID: String, at: Int64) throws {
        try db.execute(sql: "UPDATE session SET endedAt = ? WHERE deviceID = ? AND endedAt IS NULL", arguments: [at, deviceID])
        try bumpPrincipalEpoch()
    }
    func endSessions(ownerID: String, at: Int64) throws {
        try db.execute(
            sql: """
                UPDATE session SET endedAt = ? WHERE endedAt IS NULL AND deviceID IN (
                    SELECT device.id FROM device JOIN agent ON agent.id = device.agentID WHERE agent.ownerID = ?)
                """, arguments: [at, ownerID])
        try db.execute(
            sql: """
                UPDATE pairingCode SET expiresAt = ? WHERE usedAt IS NULL AND expiresAt > ?
                    AND agentID IN (SELECT id FROM agent WHERE ownerID = ?)
                """, arguments: [at, at, ownerID])
        try bumpPrincipalEpoch()
    }
    func insertNonce(deviceID: String, nonce: String, at: Int64) throws {
        try db.execute(sql: "INSERT INTO sessionNonce (deviceID, nonce, seenAt) VALUES (?, ?, ?)", arguments: [deviceID, nonce, at])
    }
    func insertProject(_ project: ProjectRecord) throws { try project.insert(db) }
    func insertState(_ state: StateRecord) throws { try state.insert(db) }
    func insertLabel(_ label: LabelRecord) throws { try label.insert(db) }
    func insertProjectMember(_ member: ProjectMemberRecord) throws { try member.insert(db, onConflict: .ignore) }
    func insertIssue(_ issue: IssueRecord) throws -> IssueRecord {
        guard
            let number = try Int.fetchOne(
                try db.cachedStatement(sql: "UPDATE project SET nextIssueNumber = nextIssueNumber + 1 WHERE id = ? RETURNING nextIssueNumber - 1"),
                arguments: [issue.projectID])
        else { throw GatewayError.notFound("project \(issue.projectID) does not exist") }
        var numbered = issue
        numbered.number = number
        try numbered.insert(db)
        return numbered
    }
    func updateIssue(_ issue: IssueRecord) throws { try issue.update(db) }
    func insertComment(_ comment: CommentRecord) throws { try comment.insert(db) }
    func insertWorkSession(_ session: WorkSessionRecord) throws { try session.insert(db) }
    func updateWorkSession(_ session: WorkSessionRecord) throws { try session.update(db) }
    func insertWorkSessionNote(_ note: WorkSessionNote) throws { try note.insert(db) }
    func saveIdempotencyRecord(_ record: IdempotencyRecord) throws { try record.insert(db, onConflict: .replace) }
    /// One cached statement: every call inserts an audit event, and GRDB's generic record insert
    /// (Codable encoding) was 5 % of a read call's CPU time.
    func insertAuditEvent(_ event: AuditEventRecord) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO auditEvent (id, at, agentID, ownerID, deviceID, sessionID, tool, project, targetIDs, argumentsSHA256,
                    outcome, errorCode, idempotencyKeyHash, replayed, latencyMicroseconds, tier, approvalID)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        try statement.execute(arguments: [
            event.id, event.at, event.agentID, event.ownerID, event.deviceID, event.sessionID, event.tool, event.project,
            JSONValue.array(event.targetIDs.map { .string($0) }).jsonText, event.argumentsSHA256, event.outcome, event.errorCode,
            event.idempotencyKeyHash, event.replayed, event.latencyMicroseconds, event.tier, event.approvalID,
        ])
    }
}
