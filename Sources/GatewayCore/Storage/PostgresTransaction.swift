import AgentWire
import PostgresNIO

/// A value bound to a statement's placeholder. Every value goes through binding, never into the SQL text.
enum PostgresValue {
    case text(String?)
    case int(Int64?)
    case bool(Bool?)

    static func int(_ value: Int) -> Self { .int(Int64(value)) }
}

/// Reads a row's columns in order.
struct PostgresColumns {
    let row: PostgresRandomAccessRow
    var index = 0

    init(_ row: PostgresRow) { self.row = row.makeRandomAccess() }

    mutating func next<T: PostgresDecodable>(_: T.Type = T.self) throws -> T {
        defer { index += 1 }
        do {
            return try row[index].decode(T.self)
        } catch {
            throw PostgresStoreError("PostgreSQL returned an unexpected value in column \(row[index].columnName) (\(T.self) expected)")
        }
    }

    mutating func strings() throws -> [String] {
        let column = row[index].columnName
        let text: String = try next()
        guard let values = (try? JSONValue(parsing: text))?.arrayValue else {
            throw PostgresStoreError("the stored list in column \(column) is not a JSON array")
        }
        return try values.map { value in
            guard let string = value.stringValue else { throw PostgresStoreError("the stored list in column \(column) holds a non-string") }
            return string
        }
    }

    mutating func blocks() throws -> [IssueBlock] {
        let text: String = try next()
        guard let values = (try? JSONValue(parsing: text))?.arrayValue else {
            throw PostgresStoreError("the stored blocks of an issue are not a JSON array")
        }
        return try values.map { value in
            guard let name = value["name"]?.stringValue, let text = value["text"]?.stringValue else {
                throw PostgresStoreError("a stored block of an issue lacks its name or text")
            }
            return IssueBlock(name: name, text: text)
        }
    }
}

extension Array where Element == String {
    var postgresJSON: String { JSONValue.array(map { .string($0) }).jsonText }
}

extension Array where Element == IssueBlock {
    var postgresJSON: String { JSONValue.array(map { ["name": .string($0.name), "text": .string($0.text)] }).jsonText }
}

/// One transaction on a PostgreSQL connection, as the store interface sees it. The SQL is SQLite's
/// wherever both dialects agree; placeholders are written `?` and numbered `$1`, `$2`, … on the way out.
struct PostgresTransaction: StoreWriter {
    let link: PostgresLink

    // MARK: Statements

    func rows(_ sql: String, _ values: [PostgresValue] = []) throws -> [PostgresRow] {
        try run(sql, values).rows
    }

    @discardableResult
    func execute(_ sql: String, _ values: [PostgresValue] = []) throws -> Int {
        try run(sql, values).changed
    }

    private func run(_ sql: String, _ values: [PostgresValue]) throws -> (rows: [PostgresRow], changed: Int) {
        var binds = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .text(let text):
                if let text, text.utf8.contains(0) {
                    throw PostgresStoreError("PostgreSQL cannot store text with a NUL character (U+0000); remove it")
                }
                binds.append(text)
            case .int(let number): binds.append(number)
            case .bool(let flag): binds.append(flag)
            }
        }
        return try link.run(Self.numbered(sql), binds)
    }

    /// `?` → `$1`, `$2`, … (the statements here have no `?` inside literals).
    static func numbered(_ sql: String) -> String {
        var result = ""
        result.reserveCapacity(sql.utf8.count + 8)
        var count = 0
        for character in sql {
            if character == "?" {
                count += 1
                result += "$\(count)"
            } else {
                result.append(character)
            }
        }
        return result
    }

    func one<T>(_ sql: String, _ values: [PostgresValue], _ decode: (inout PostgresColumns) throws -> T) throws -> T? {
        guard let row = try rows(sql, values).first else { return nil }
        var columns = PostgresColumns(row)
        return try decode(&columns)
    }

    func all<T>(_ sql: String, _ values: [PostgresValue], _ decode: (inout PostgresColumns) throws -> T) throws -> [T] {
        try rows(sql, values).map { row in
            var columns = PostgresColumns(row)
            return try decode(&columns)
        }
    }

    func count(_ sql: String, _ values: [PostgresValue]) throws -> Int {
        try one(sql, values) { try $0.next(Int.self) } ?? 0
    }

    /// Fails like GRDB's `update` when no row has the record's key.
    func updateOne(_ sql: String, _ values: [PostgresValue], what: String) throws {
        guard try execute(sql, values) > 0 else { throw PostgresStoreError("\(what) does not exist") }
    }

    // MARK: Columns and decoders

    static let userColumns = "id, name, blockedAt, createdAt, role, agentsEntitled"
    static func user(_ c: inout PostgresColumns) throws -> UserRecord {
        UserRecord(
            id: try c.next(), name: try c.next(), blockedAt: try c.next(), createdAt: try c.next(), role: try c.next(), agentsEntitled: try c.next())
    }
    static let agentColumns = "id, ownerID, name, createdAt, revokedAt"
    static func agent(_ c: inout PostgresColumns) throws -> AgentRecord {
        AgentRecord(id: try c.next(), ownerID: try c.next(), name: try c.next(), createdAt: try c.next(), revokedAt: try c.next())
    }
    static func grant(_ c: inout PostgresColumns) throws -> GrantRecord {
        GrantRecord(agentID: try c.next(), projectKey: try c.next(), scopes: try c.strings())
    }
    static let pairingCodeColumns = "codeHash, agentID, createdAt, expiresAt, usedAt"
    static func pairingCode(_ c: inout PostgresColumns) throws -> PairingCodeRecord {
        PairingCodeRecord(codeHash: try c.next(), agentID: try c.next(), createdAt: try c.next(), expiresAt: try c.next(), usedAt: try c.next())
    }
    static let deviceColumns = "id, agentID, name, publicKey, createdAt, revokedAt"
    static func device(_ c: inout PostgresColumns) throws -> DeviceRecord {
        DeviceRecord(
            id: try c.next(), agentID: try c.next(), name: try c.next(), publicKey: try c.next(), createdAt: try c.next(), revokedAt: try c.next())
    }
    static let sessionColumns = "session.id, session.deviceID, session.tokenHash, session.createdAt, session.expiresAt, session.endedAt"
    static func session(_ c: inout PostgresColumns) throws -> SessionRecord {
        SessionRecord(
            id: try c.next(), deviceID: try c.next(), tokenHash: try c.next(), createdAt: try c.next(), expiresAt: try c.next(), endedAt: try c.next()
        )
    }
    static let projectColumns = "id, key, name, description, nextIssueNumber, createdAt"
    static func project(_ c: inout PostgresColumns) throws -> ProjectRecord {
        ProjectRecord(
            id: try c.next(), key: try c.next(), name: try c.next(), description: try c.next(), nextIssueNumber: try c.next(), createdAt: try c.next()
        )
    }
    static func state(_ c: inout PostgresColumns) throws -> StateRecord {
        StateRecord(id: try c.next(), projectID: try c.next(), name: try c.next(), category: try c.next(), position: try c.next())
    }
    static func label(_ c: inout PostgresColumns) throws -> LabelRecord {
        LabelRecord(id: try c.next(), projectID: try c.next(), name: try c.next(), color: try c.next())
    }
    static let issueColumns =
        "id, projectID, number, title, description, priority, stateID, labelIDs, assigneeIDs, blocks, createdByUserID, createdByAgentID, createdAt, updatedAt"
    static func issue(_ c: inout PostgresColumns) throws -> IssueRecord {
        IssueRecord(
            id: try c.next(), projectID: try c.next(), number: try c.next(), title: try c.next(), description: try c.next(), priority: try c.next(),
            stateID: try c.next(), labelIDs: try c.strings(), assigneeIDs: try c.strings(), blocks: try c.blocks(), createdByUserID: try c.next(),
            createdByAgentID: try c.next(), createdAt: try c.next(), updatedAt: try c.next())
    }
    static func issueValues(_ issue: IssueRecord) -> [PostgresValue] {
        [
            .text(issue.id), .text(issue.projectID), .int(issue.number), .text(issue.title), .text(issue.description), .text(issue.priority),
            .text(issue.stateID), .text(issue.labelIDs.postgresJSON), .text(issue.assigneeIDs.postgresJSON), .text(issue.blocks.postgresJSON),
            .text(issue.createdByUserID), .text(issue.createdByAgentID), .int(issue.createdAt), .int(issue.updatedAt),
        ]
    }
    static let commentColumns = "id, issueID, authorUserID, authorAgentID, body, createdAt"
    static func comment(_ c: inout PostgresColumns) throws -> CommentRecord {
        CommentRecord(
            id: try c.next(), issueID: try c.next(), authorUserID: try c.next(), authorAgentID: try c.next(), body: try c.next(),
            createdAt: try c.next())
    }
    static let workSessionColumns = "id, agentID, projectID, issueID, summary, status, result, startedAt, updatedAt, finishedAt"
    static func workSession(_ c: inout PostgresColumns) throws -> WorkSessionRecord {
        WorkSessionRecord(
            id: try c.next(), agentID: try c.next(), projectID: try c.next(), issueID: try c.next(), summary: try c.next(), status: try c.next(),
            result: try c.next(), startedAt: try c.next(), updatedAt: try c.next(), finishedAt: try c.next())
    }
    static func workSessionNote(_ c: inout PostgresColumns) throws -> WorkSessionNote {
        WorkSessionNote(workSessionID: try c.next(), position: try c.next(), at: try c.next(), text: try c.next(), issueID: try c.next())
    }
    static func idempotency(_ c: inout PostgresColumns) throws -> IdempotencyRecord {
        IdempotencyRecord(
            agentID: try c.next(), keyHash: try c.next(), tool: try c.next(), fingerprint: try c.next(), result: try c.next(), createdAt: try c.next()
        )
    }
    static let auditColumns =
        "id, at, agentID, ownerID, deviceID, sessionID, tool, project, targetIDs, argumentsSHA256, outcome, errorCode, idempotencyKeyHash, replayed, latencyMicroseconds, tier, approvalID"
    static func audit(_ c: inout PostgresColumns) throws -> AuditEventRecord {
        AuditEventRecord(
            id: try c.next(), at: try c.next(), agentID: try c.next(), ownerID: try c.next(), deviceID: try c.next(), sessionID: try c.next(),
            tool: try c.next(), project: try c.next(), targetIDs: try c.strings(), argumentsSHA256: try c.next(), outcome: try c.next(),
            errorCode: try c.next(), idempotencyKeyHash: try c.next(), replayed: try c.next(), latencyMicroseconds: try c.next(),
            tier: try c.next(), approvalID: try c.next())
    }
    static func loginLink(_ c: inout PostgresColumns) throws -> LoginLinkRecord {
        LoginLinkRecord(tokenHash: try c.next(), userID: try c.next(), createdAt: try c.next(), expiresAt: try c.next(), usedAt: try c.next())
    }
    static let browserSessionColumns = "id, tokenHash, userID, signedInVia, createdAt, lastSeenAt, expiresAt, endedAt"
    static func browserSession(_ c: inout PostgresColumns) throws -> BrowserSessionRecord {
        BrowserSessionRecord(
            id: try c.next(), tokenHash: try c.next(), userID: try c.next(), signedInVia: try c.next(), createdAt: try c.next(),
            lastSeenAt: try c.next(), expiresAt: try c.next(), endedAt: try c.next())
    }
    static func issueChange(_ c: inout PostgresColumns) throws -> IssueChangeRecord {
        IssueChangeRecord(
            id: try c.next(), issueID: try c.next(), at: try c.next(), actorUserID: try c.next(), actorAgentID: try c.next(), action: try c.next(),
            summary: try c.next())
    }
    static let ownerActionColumns = "id, at, actorUserID, action, subjectID, subjectOwnerID, detail"
    static func ownerAction(_ c: inout PostgresColumns) throws -> OwnerActionRecord {
        OwnerActionRecord(
            id: try c.next(), at: try c.next(), actorUserID: try c.next(), action: try c.next(), subjectID: try c.next(),
            subjectOwnerID: try c.next(), detail: try c.next())
    }

    // MARK: Reads

    func setting(_ name: String) throws -> String? {
        try one("SELECT value FROM setting WHERE name = ?", [.text(name)]) { try $0.next(String.self) }
    }
    func user(id: String) throws -> UserRecord? {
        try one("SELECT \(Self.userColumns) FROM \"user\" WHERE id = ?", [.text(id)], Self.user)
    }
    func users() throws -> [UserRecord] { try all("SELECT \(Self.userColumns) FROM \"user\" ORDER BY id", [], Self.user) }
    func users(ids: [String]) throws -> [UserRecord] {
        try distinctIDChunks(ids).flatMap { chunk in
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
            return try all("SELECT \(Self.userColumns) FROM \"user\" WHERE id IN (\(marks))", chunk.map { .text($0) }, Self.user)
        }
    }
    func agent(id: String) throws -> AgentRecord? {
        try one("SELECT \(Self.agentColumns) FROM agent WHERE id = ?", [.text(id)], Self.agent)
    }
    func agents(ownerID: String?) throws -> [AgentRecord] {
        if let ownerID {
            return try all("SELECT \(Self.agentColumns) FROM agent WHERE ownerID = ? ORDER BY createdAt, id", [.text(ownerID)], Self.agent)
        }
        return try all("SELECT \(Self.agentColumns) FROM agent ORDER BY createdAt, id", [], Self.agent)
    }
    func grants(agentID: String) throws -> [GrantRecord] {
        try all("SELECT agentID, projectKey, scopes FROM \"grant\" WHERE agentID = ? ORDER BY projectKey", [.text(agentID)], Self.grant)
    }
    func pairingCode(hash: String) throws -> PairingCodeRecord? {
        try one("SELECT \(Self.pairingCodeColumns) FROM pairingCode WHERE codeHash = ?", [.text(hash)], Self.pairingCode)
    }
    func device(id: String) throws -> DeviceRecord? {
        try one("SELECT \(Self.deviceColumns) FROM device WHERE id = ?", [.text(id)], Self.device)
    }
    func devices(agentID: String) throws -> [DeviceRecord] {
        try all("SELECT \(Self.deviceColumns) FROM device WHERE agentID = ? ORDER BY createdAt, id", [.text(agentID)], Self.device)
    }
    func sessions(agentID: String, openAt: Int64?, limit: Int) throws -> [SessionRecord] {
        let open = openAt == nil ? "" : " AND session.endedAt IS NULL AND session.expiresAt > ?"
        var values: [PostgresValue] = [.text(agentID)]
        if let openAt { values.append(.int(openAt)) }
        values.append(.int(limit))
        return try all(
            "SELECT \(Self.sessionColumns) FROM session JOIN device ON device.id = session.deviceID WHERE device.agentID = ?\(open) "
                + "ORDER BY session.createdAt DESC, session.id DESC LIMIT ?", values, Self.session)
    }
    func session(tokenHash: String) throws -> SessionRecord? {
        try one("SELECT \(Self.sessionColumns) FROM session WHERE tokenHash = ?", [.text(tokenHash)], Self.session)
    }
    func session(id: String) throws -> SessionRecord? {
        try one("SELECT \(Self.sessionColumns) FROM session WHERE id = ?", [.text(id)], Self.session)
    }
    func nonceSeen(deviceID: String, nonce: String) throws -> Bool {
        try one("SELECT EXISTS (SELECT 1 FROM sessionNonce WHERE deviceID = ? AND nonce = ?)", [.text(deviceID), .text(nonce)]) {
            try $0.next(Bool.self)
        } ?? false
    }

    func projects() throws -> [ProjectRecord] { try all("SELECT \(Self.projectColumns) FROM project ORDER BY key", [], Self.project) }
    func project(key: String) throws -> ProjectRecord? {
        try one("SELECT \(Self.projectColumns) FROM project WHERE key = ?", [.text(key)], Self.project)
    }
    func project(id: String) throws -> ProjectRecord? {
        try one("SELECT \(Self.projectColumns) FROM project WHERE id = ?", [.text(id)], Self.project)
    }
    func states(projectID: String) throws -> [StateRecord] {
        try all("SELECT id, projectID, name, category, position FROM state WHERE projectID = ? ORDER BY position", [.text(projectID)], Self.state)
    }
    func labels(projectID: String) throws -> [LabelRecord] {
        try all("SELECT id, projectID, name, color FROM label WHERE projectID = ? ORDER BY name", [.text(projectID)], Self.label)
    }
    func members(projectID: String) throws -> [UserRecord] {
        let columns = Self.userColumns.split(separator: ", ").map { "\"user\".\($0)" }.joined(separator: ", ")
        return try all(
            "SELECT \(columns) FROM \"user\" JOIN projectMember ON projectMember.userID = \"user\".id WHERE projectMember.projectID = ? ORDER BY \"user\".id",
            [.text(projectID)], Self.user)
    }
    func issue(projectID: String, number: Int) throws -> IssueRecord? {
        try one("SELECT \(Self.issueColumns) FROM issue WHERE projectID = ? AND number = ?", [.text(projectID), .int(number)], Self.issue)
    }
    func issue(id: String) throws -> IssueRecord? {
        try one("SELECT \(Self.issueColumns) FROM issue WHERE id = ?", [.text(id)], Self.issue)
    }
    /// SQLite's LIKE ignores the case of ASCII letters only; `translate` folds exactly those, so
    /// the same text matches the same issues on both (ILIKE would also fold other letters).
    func searchIssues(_ query: IssueQuery) throws -> [IssueRecord] {
        let upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        let lower = "abcdefghijklmnopqrstuvwxyz"
        var sql = "SELECT \(Self.issueColumns) FROM issue WHERE projectID = ? AND number > ?"
        var values: [PostgresValue] = [.text(query.projectID), .int(query.afterNumber)]
        if let text = query.text, !text.isEmpty {
            sql +=
                " AND (translate(title, '\(upper)', '\(lower)') LIKE ? ESCAPE '\\' OR translate(description, '\(upper)', '\(lower)') LIKE ? ESCAPE '\\')"
            let escaped = text.replacing("\\", with: "\\\\").replacing("%", with: "\\%").replacing("_", with: "\\_")
            let folded = String(
                String.UnicodeScalarView(
                    "%\(escaped)%".unicodeScalars.map { scalar in
                        (65...90).contains(scalar.value) ? Unicode.Scalar(scalar.value + 32)! : scalar
                    }))
            values += [.text(folded), .text(folded)]
        }
        if let state = query.stateID {
            sql += " AND stateID = ?"
            values.append(.text(state))
        }
        if let label = query.labelID {
            sql += " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(issue.labelIDs::jsonb) AS element(value) WHERE element.value = ?)"
            values.append(.text(label))
        }
        if let assignee = query.assigneeID {
            sql += " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(issue.assigneeIDs::jsonb) AS element(value) WHERE element.value = ?)"
            values.append(.text(assignee))
        }
        sql += " ORDER BY number LIMIT ?"
        values.append(.int(query.limit))
        return try all(sql, values, Self.issue)
    }
    func comment(id: String) throws -> CommentRecord? {
        try one("SELECT \(Self.commentColumns) FROM comment WHERE id = ?", [.text(id)], Self.comment)
    }
    func comments(issueID: String, after: CommentPosition?, limit: Int) throws -> [CommentRecord] {
        guard let after else {
            return try all(
                "SELECT \(Self.commentColumns) FROM comment WHERE issueID = ? ORDER BY createdAt, id LIMIT ?", [.text(issueID), .int(limit)],
                Self.comment)
        }
        return try all(
            "SELECT \(Self.commentColumns) FROM comment WHERE issueID = ? AND (createdAt > ? OR (createdAt = ? AND id > ?)) ORDER BY createdAt, id LIMIT ?",
            [.text(issueID), .int(after.createdAt), .int(after.createdAt), .text(after.id), .int(limit)], Self.comment)
    }
    func commentCount(issueID: String) throws -> Int { try count("SELECT COUNT(*) FROM comment WHERE issueID = ?", [.text(issueID)]) }
    func workSession(id: String) throws -> WorkSessionRecord? {
        try one("SELECT \(Self.workSessionColumns) FROM workSession WHERE id = ?", [.text(id)], Self.workSession)
    }
    func workSessionNotes(workSessionID: String) throws -> [WorkSessionNote] {
        try all(
            "SELECT workSessionID, position, at, text, issueID FROM workSessionNote WHERE workSessionID = ? ORDER BY position",
            [.text(workSessionID)],
            Self.workSessionNote)
    }
    func workSessionNoteCount(workSessionID: String) throws -> Int {
        try count("SELECT COALESCE(MAX(position) + 1, 0) FROM workSessionNote WHERE workSessionID = ?", [.text(workSessionID)])
    }
    func idempotencyRecord(agentID: String, keyHash: String) throws -> IdempotencyRecord? {
        try one(
            "SELECT agentID, keyHash, tool, fingerprint, result, createdAt FROM idempotencyRecord WHERE agentID = ? AND keyHash = ?",
            [.text(agentID), .text(keyHash)], Self.idempotency)
    }
    func auditEvents(agentID: String?, limit: Int) throws -> [AuditEventRecord] {
        if let agentID {
            return try all(
                "SELECT \(Self.auditColumns) FROM auditEvent WHERE agentID = ? ORDER BY id LIMIT ?", [.text(agentID), .int(limit)], Self.audit)
        }
        return try all("SELECT \(Self.auditColumns) FROM auditEvent ORDER BY id LIMIT ?", [.int(limit)], Self.audit)
    }
    func auditEventCount() throws -> Int { try count("SELECT COUNT(*) FROM auditEvent", []) }
    func lastAuditTime(agentID: String) throws -> Int64? {
        try one("SELECT MAX(at) FROM auditEvent WHERE agentID = ?", [.text(agentID)]) { try $0.next(Int64?.self) } ?? nil
    }
    func lastAuditEvent(agentID: String) throws -> AuditEventRecord? {
        try one("SELECT \(Self.auditColumns) FROM auditEvent WHERE agentID = ? ORDER BY id DESC LIMIT 1", [.text(agentID)], Self.audit)
    }
    func auditEvents(matching query: AuditQuery) throws -> [AuditEventRecord] {
        var conditions: [String] = []
        var values: [PostgresValue] = []
        func add(_ condition: String, _ value: PostgresValue?) {
            guard let value else { return }
            conditions.append(condition)
            values.append(value)
        }
        add("ownerID = ?", query.ownerID.map { .text($0) })
        add("agentID = ?", query.agentID.map { .text($0) })
        add("tool = ?", query.tool.map { .text($0) })
        add("outcome = ?", query.outcome.map { .text($0) })
        add("at >= ?", query.since.map { .int($0) })
        add("at <= ?", query.until.map { .int($0) })
        add("id < ?", query.beforeID.map { .text($0) })
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        values.append(.int(query.limit))
        return try all("SELECT \(Self.auditColumns) FROM auditEvent\(filter) ORDER BY id DESC LIMIT ?", values, Self.audit)
    }

    func loginLink(tokenHash: String) throws -> LoginLinkRecord? {
        try one("SELECT tokenHash, userID, createdAt, expiresAt, usedAt FROM loginLink WHERE tokenHash = ?", [.text(tokenHash)], Self.loginLink)
    }
    func browserSession(tokenHash: String) throws -> BrowserSessionRecord? {
        try one("SELECT \(Self.browserSessionColumns) FROM browserSession WHERE tokenHash = ?", [.text(tokenHash)], Self.browserSession)
    }
    func openWorkSessionCount(agentID: String) throws -> Int {
        try count("SELECT COUNT(*) FROM workSession WHERE agentID = ? AND status = 'active'", [.text(agentID)])
    }
    func issueChanges(issueID: String, limit: Int) throws -> [IssueChangeRecord] {
        try all(
            "SELECT id, issueID, at, actorUserID, actorAgentID, action, summary FROM issueChange WHERE issueID = ? ORDER BY id LIMIT ?",
            [.text(issueID), .int(limit)], Self.issueChange)
    }
    func ownerActions(userID: String?, limit: Int) throws -> [OwnerActionRecord] {
        guard let userID else {
            return try all("SELECT \(Self.ownerActionColumns) FROM ownerAction ORDER BY id DESC LIMIT ?", [.int(limit)], Self.ownerAction)
        }
        return try all(
            "SELECT \(Self.ownerActionColumns) FROM ownerAction WHERE actorUserID = ? OR subjectOwnerID = ? OR subjectID = ? ORDER BY id DESC LIMIT ?",
            [.text(userID), .text(userID), .text(userID), .int(limit)], Self.ownerAction)
    }

    // MARK: Writes

    /// Counts every change to who may call (see ``PrincipalEpoch``), in the change's transaction.
    func bumpPrincipalEpoch() throws {
        try execute(
            """
            INSERT INTO setting (name, value) VALUES (?, '1')
            ON CONFLICT (name) DO UPDATE SET value = (CAST(setting.value AS BIGINT) + 1)::text
            """, [.text(PrincipalEpoch.settingName)])
    }

    func setSetting(_ name: String, value: String) throws {
        try execute(
            "INSERT INTO setting (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", [.text(name), .text(value)])
    }
    func insertUser(_ user: UserRecord) throws {
        try execute(
            "INSERT INTO \"user\" (\(Self.userColumns)) VALUES (?, ?, ?, ?, ?, ?)",
            [.text(user.id), .text(user.name), .int(user.blockedAt), .int(user.createdAt), .text(user.role), .bool(user.agentsEntitled)])
    }
    func setUserBlocked(id: String, at: Int64?) throws {
        try execute("UPDATE \"user\" SET blockedAt = ? WHERE id = ?", [.int(at), .text(id)])
        try bumpPrincipalEpoch()
    }
    func insertAgent(_ agent: AgentRecord) throws {
        try execute(
            "INSERT INTO agent (\(Self.agentColumns)) VALUES (?, ?, ?, ?, ?)",
            [.text(agent.id), .text(agent.ownerID), .text(agent.name), .int(agent.createdAt), .int(agent.revokedAt)])
    }
    func insertGrant(_ grant: GrantRecord) throws {
        try execute(
            "INSERT INTO \"grant\" (agentID, projectKey, scopes) VALUES (?, ?, ?)",
            [.text(grant.agentID), .text(grant.projectKey), .text(grant.scopes.postgresJSON)])
        try bumpPrincipalEpoch()
    }
    func setAgentRevoked(id: String, at: Int64) throws {
        try execute("UPDATE agent SET revokedAt = COALESCE(revokedAt, ?) WHERE id = ?", [.int(at), .text(id)])
        try bumpPrincipalEpoch()
    }
    func insertPairingCode(_ code: PairingCodeRecord) throws {
        try execute(
            "INSERT INTO pairingCode (\(Self.pairingCodeColumns)) VALUES (?, ?, ?, ?, ?)",
            [.text(code.codeHash), .text(code.agentID), .int(code.createdAt), .int(code.expiresAt), .int(code.usedAt)])
    }
    func markPairingCodeUsed(hash: String, at: Int64) throws {
        try execute("UPDATE pairingCode SET usedAt = ? WHERE codeHash = ?", [.int(at), .text(hash)])
    }
    func insertDevice(_ device: DeviceRecord) throws {
        try execute(
            "INSERT INTO device (\(Self.deviceColumns)) VALUES (?, ?, ?, ?, ?, ?)",
            [.text(device.id), .text(device.agentID), .text(device.name), .text(device.publicKey), .int(device.createdAt), .int(device.revokedAt)])
    }
    func setDeviceRevoked(id: String, at: Int64) throws {
        try execute("UPDATE device SET revokedAt = COALESCE(revokedAt, ?) WHERE id = ?", [.int(at), .text(id)])
        try bumpPrincipalEpoch()
    }
    func insertSession(_ session: SessionRecord) throws {
        try execute(
            "INSERT INTO session (id, deviceID, tokenHash, createdAt, expiresAt, endedAt) VALUES (?, ?, ?, ?, ?, ?)",
            [
                .text(session.id), .text(session.deviceID), .text(session.tokenHash), .int(session.createdAt), .int(session.expiresAt),
                .int(session.endedAt),
            ])
    }
    func endSession(id: String, at: Int64) throws {
        try execute("UPDATE session SET endedAt = COALESCE(endedAt, ?) WHERE id = ?", [.int(at), .text(id)])
        try bumpPrincipalEpoch()
    }
    func endSessions(deviceID: String, at: Int64) throws {
        try execute("UPDATE session SET endedAt = ? WHERE deviceID = ? AND endedAt IS NULL", [.int(at), .text(deviceID)])
        try bumpPrincipalEpoch()
    }
    func endSessions(ownerID: String, at: Int64) throws {
        try execute(
            """
            UPDATE session SET endedAt = ? WHERE endedAt IS NULL AND deviceID IN (
                SELECT device.id FROM device JOIN agent ON agent.id = device.agentID WHERE agent.ownerID = ?)
            """, [.int(at), .text(ownerID)])
        try execute(
            """
            UPDATE pairingCode SET expiresAt = ? WHERE usedAt IS NULL AND expiresAt > ?
                AND agentID IN (SELECT id FROM agent WHERE ownerID = ?)
            """, [.int(at), .int(at), .text(ownerID)])
        try bumpPrincipalEpoch()
    }
    func insertNonce(deviceID: String, nonce: String, at: Int64) throws {
        try execute("INSERT INTO sessionNonce (deviceID, nonce, seenAt) VALUES (?, ?, ?)", [.text(deviceID), .text(nonce), .int(at)])
    }
    func insertProject(_ project: ProjectRecord) throws {
        try execute(
            "INSERT INTO project (\(Self.projectColumns)) VALUES (?, ?, ?, ?, ?, ?)",
            [
                .text(project.id), .text(project.key), .text(project.name), .text(project.description), .int(project.nextIssueNumber),
                .int(project.createdAt),
            ])
    }
    func insertState(_ state: StateRecord) throws {
        try execute(
            "INSERT INTO state (id, projectID, name, category, position) VALUES (?, ?, ?, ?, ?)",
            [.text(state.id), .text(state.projectID), .text(state.name), .text(state.category), .int(state.position)])
    }
    func insertLabel(_ label: LabelRecord) throws {
        try execute(
            "INSERT INTO label (id, projectID, name, color) VALUES (?, ?, ?, ?)",
            [.text(label.id), .text(label.projectID), .text(label.name), .text(label.color)])
    }
    /// SQLite's `INSERT OR IGNORE`: a member already there stays as they were.
    func insertProjectMember(_ member: ProjectMemberRecord) throws {
        try execute(
            "INSERT INTO projectMember (projectID, userID, addedAt, addedByAgentID) VALUES (?, ?, ?, ?) ON CONFLICT (projectID, userID) DO NOTHING",
            [.text(member.projectID), .text(member.userID), .int(member.addedAt), .text(member.addedByAgentID)])
    }
    func insertIssue(_ issue: IssueRecord) throws -> IssueRecord {
        guard
            let number = try one(
                "UPDATE project SET nextIssueNumber = nextIssueNumber + 1 WHERE id = ? RETURNING nextIssueNumber - 1", [.text(issue.projectID)],
                { try $0.next(Int.self) })
        else { throw GatewayError.notFound("project \(issue.projectID) does not exist") }
        var numbered = issue
        numbered.number = number
        try execute("INSERT INTO issue (\(Self.issueColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", Self.issueValues(numbered))
        return numbered
    }
    func updateIssue(_ issue: IssueRecord) throws {
        let values = Self.issueValues(issue)
        try updateOne(
            """
            UPDATE issue SET projectID = ?, number = ?, title = ?, description = ?, priority = ?, stateID = ?, labelIDs = ?, assigneeIDs = ?,
                blocks = ?, createdByUserID = ?, createdByAgentID = ?, createdAt = ?, updatedAt = ? WHERE id = ?
            """, Array(values.dropFirst()) + [values[0]], what: "issue \(issue.id)")
    }
    func insertComment(_ comment: CommentRecord) throws {
        try execute(
            "INSERT INTO comment (\(Self.commentColumns)) VALUES (?, ?, ?, ?, ?, ?)",
            [
                .text(comment.id), .text(comment.issueID), .text(comment.authorUserID), .text(comment.authorAgentID), .text(comment.body),
                .int(comment.createdAt),
            ])
    }
    static func workSessionValues(_ session: WorkSessionRecord) -> [PostgresValue] {
        [
            .text(session.id), .text(session.agentID), .text(session.projectID), .text(session.issueID), .text(session.summary),
            .text(session.status),
            .text(session.result), .int(session.startedAt), .int(session.updatedAt), .int(session.finishedAt),
        ]
    }
    func insertWorkSession(_ session: WorkSessionRecord) throws {
        try execute("INSERT INTO workSession (\(Self.workSessionColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", Self.workSessionValues(session))
    }
    func updateWorkSession(_ session: WorkSessionRecord) throws {
        let values = Self.workSessionValues(session)
        try updateOne(
            """
            UPDATE workSession SET agentID = ?, projectID = ?, issueID = ?, summary = ?, status = ?, result = ?, startedAt = ?, updatedAt = ?,
                finishedAt = ? WHERE id = ?
            """, Array(values.dropFirst()) + [values[0]], what: "work session \(session.id)")
    }
    func insertWorkSessionNote(_ note: WorkSessionNote) throws {
        try execute(
            "INSERT INTO workSessionNote (workSessionID, position, at, text, issueID) VALUES (?, ?, ?, ?, ?)",
            [.text(note.workSessionID), .int(note.position), .int(note.at), .text(note.text), .text(note.issueID)])
    }
    /// SQLite's `INSERT OR REPLACE`: the caller replaces a record only once it is past its replay window.
    func saveIdempotencyRecord(_ record: IdempotencyRecord) throws {
        try execute(
            """
            INSERT INTO idempotencyRecord (agentID, keyHash, tool, fingerprint, result, createdAt) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (agentID, keyHash) DO UPDATE SET tool = excluded.tool, fingerprint = excluded.fingerprint,
                    result = excluded.result, createdAt = excluded.createdAt
            """,
            [
                .text(record.agentID), .text(record.keyHash), .text(record.tool), .text(record.fingerprint), .text(record.result),
                .int(record.createdAt),
            ])
    }
    func insertAuditEvent(_ event: AuditEventRecord) throws {
        try execute(
            "INSERT INTO auditEvent (\(Self.auditColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(event.id), .int(event.at), .text(event.agentID), .text(event.ownerID), .text(event.deviceID), .text(event.sessionID),
                .text(event.tool), .text(event.project), .text(event.targetIDs.postgresJSON), .text(event.argumentsSHA256), .text(event.outcome),
                .text(event.errorCode), .text(event.idempotencyKeyHash), .bool(event.replayed), .int(event.latencyMicroseconds),
                .text(event.tier), .text(event.approvalID),
            ])
    }

    func setUserRole(id: String, role: UserRole) throws {
        try execute("UPDATE \"user\" SET role = ? WHERE id = ?", [.text(role.rawValue), .text(id)])
        try bumpPrincipalEpoch()
    }
    func setUserEntitled(id: String, entitled: Bool) throws {
        try execute("UPDATE \"user\" SET agentsEntitled = ? WHERE id = ?", [.bool(entitled), .text(id)])
        try bumpPrincipalEpoch()
    }
    func insertLoginLink(_ link: LoginLinkRecord) throws {
        try execute(
            "INSERT INTO loginLink (tokenHash, userID, createdAt, expiresAt, usedAt) VALUES (?, ?, ?, ?, ?)",
            [.text(link.tokenHash), .text(link.userID), .int(link.createdAt), .int(link.expiresAt), .int(link.usedAt)])
    }
    func markLoginLinkUsed(tokenHash: String, at: Int64) throws {
        try execute("UPDATE loginLink SET usedAt = ? WHERE tokenHash = ? AND usedAt IS NULL", [.int(at), .text(tokenHash)])
    }
    func insertBrowserSession(_ session: BrowserSessionRecord) throws {
        try execute(
            "INSERT INTO browserSession (\(Self.browserSessionColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(session.id), .text(session.tokenHash), .text(session.userID), .text(session.signedInVia), .int(session.createdAt),
                .int(session.lastSeenAt), .int(session.expiresAt), .int(session.endedAt),
            ])
    }
    func touchBrowserSession(id: String, at: Int64) throws {
        try execute("UPDATE browserSession SET lastSeenAt = ? WHERE id = ?", [.int(at), .text(id)])
    }
    func endBrowserSession(id: String, at: Int64) throws {
        try execute("UPDATE browserSession SET endedAt = COALESCE(endedAt, ?) WHERE id = ?", [.int(at), .text(id)])
    }
    func endBrowserSessions(userID: String, at: Int64) throws {
        try execute("UPDATE browserSession SET endedAt = ? WHERE userID = ? AND endedAt IS NULL", [.int(at), .text(userID)])
    }
    func insertIssueChange(_ change: IssueChangeRecord) throws {
        try execute(
            "INSERT INTO issueChange (id, issueID, at, actorUserID, actorAgentID, action, summary) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                .text(change.id), .text(change.issueID), .int(change.at), .text(change.actorUserID), .text(change.actorAgentID), .text(change.action),
                .text(change.summary),
            ])
    }
    func insertOwnerAction(_ action: OwnerActionRecord) throws {
        try execute(
            "INSERT INTO ownerAction (\(Self.ownerActionColumns)) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                .text(action.id), .int(action.at), .text(action.actorUserID), .text(action.action), .text(action.subjectID),
                .text(action.subjectOwnerID),
                .text(action.detail),
            ])
    }
}
