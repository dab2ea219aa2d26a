import NIOPosix
import PostgresNIO

/// The PostgreSQL store (issue 16): the same interface and the same semantics as
/// ``SQLiteGatewayStore``, over postgres-nio.
///
/// The interface's transaction closures are synchronous, so each transaction holds one pooled
/// connection on a thread that may block (``PostgresConnectionPool/blockingThreads`` for `read` and
/// `write`, the caller's own thread for `writeNow`) and waits there for every statement, each wait
/// bounded. `read` is a read-only REPEATABLE READ transaction: one snapshot, like SQLite's. `write`
/// and `writeNow` first take one transaction-scoped advisory lock, so that writers run one after
/// another as they do on SQLite (one writer at a time, across every gateway on the database), and
/// each statement then sees every earlier commit. `COMMIT` returns once the commit is flushed
/// (`synchronous_commit = on`, set on every connection): acknowledged means durable.
public final class PostgresGatewayStore: GatewayStore {
    /// The advisory lock every write transaction takes ("agw" in ASCII).
    static let writeLockKey: Int64 = 0x61_67_77
    /// The lock migrations take, so that gateways starting together migrate once.
    static let migrationLockKey: Int64 = 0x61_67_77_6d

    let pool: PostgresConnectionPool
    public var url: PostgresURL { pool.url }

    /// Connects (bounded by `limits`) and applies every migration not yet recorded. Blocks the
    /// calling thread: from a Swift task, use ``open(url:creating:limits:)``. Without `creating`, a
    /// database without the gateway's tables is refused (a typo in the URL must not start an empty
    /// gateway), as a missing SQLite file is.
    public init(url: PostgresURL, creating: Bool = true, limits: PostgresStoreLimits = PostgresStoreLimits()) throws {
        pool = try PostgresConnectionPool(url: url, limits: limits)
        if !creating {
            let exists = try transaction(readOnly: true) { transaction in
                try transaction.one("SELECT to_regclass('gatewaymigration') IS NOT NULL", []) { try $0.next(Bool.self) } ?? false
            }
            guard exists else {
                throw PostgresStoreError(
                    "the PostgreSQL database \(url) has no gateway tables; check the URL, or create them with `agent-gateway init --db URL`")
            }
        }
        try migrate()
    }

    /// ``init(url:creating:limits:)`` on a thread that may block.
    public static func open(
        url: PostgresURL, creating: Bool = true, limits: PostgresStoreLimits = PostgresStoreLimits()
    ) async throws
        -> PostgresGatewayStore
    {
        try await BlockingWork.run { try PostgresGatewayStore(url: url, creating: creating, limits: limits) }
    }

    /// Closes the idle connections; transactions after this open new ones.
    public func close() { pool.closeIdle() }

    public func read<T: Sendable>(_ body: @Sendable (any StoreReader) throws -> T) async throws -> T {
        try await withoutActuallyEscaping(body) { body in
            try await BlockingWork.run { try self.transaction(readOnly: true) { try body($0) } }
        }
    }

    public func write<T: Sendable>(_ body: @Sendable (any StoreWriter) throws -> T) async throws -> T {
        try await withoutActuallyEscaping(body) { body in
            try await BlockingWork.run { try self.transaction(readOnly: false) { try body($0) } }
        }
    }

    public func writeNow<T>(_ body: @Sendable (any StoreWriter) throws -> T) throws -> T {
        try transaction(readOnly: false, body)
    }

    /// One statement, no `BEGIN`/`COMMIT`: a single row needs no snapshot (three round trips become one).
    public func principalEpoch() async throws -> String {
        try await unlocked(transaction: false) { statements in
            try statements.one("SELECT value FROM setting WHERE name = ?", [.text(PrincipalEpoch.settingName)]) { try $0.next(String.self) }
                ?? "0"
        }
    }

    /// Statements outside the writers' lock, for the state the gateway instances share
    /// (``PostgresSharedState``): in one READ COMMITTED transaction when `transaction`, else each
    /// statement commits on its own. On a thread that may block, like `read` and `write`.
    func unlocked<T: Sendable>(transaction: Bool, _ body: @escaping @Sendable (PostgresTransaction) throws -> T) async throws -> T {
        try await BlockingWork.run {
            try self.pool.withConnection { link in
                guard transaction else { return try body(PostgresTransaction(link: link)) }
                return try Self.inTransaction(on: link, begin: "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE", body)
            }
        }
    }

    /// One transaction on one connection of the pool, on the calling thread.
    func transaction<T>(readOnly: Bool, _ body: (PostgresTransaction) throws -> T) throws -> T {
        try pool.withConnection { link in
            if readOnly { return try Self.inTransaction(on: link, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", body) }
            return try Self.inTransaction(on: link, begin: "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE") { transaction in
                try transaction.execute("SELECT pg_advisory_xact_lock(?)", [.int(Self.writeLockKey)])
                return try body(transaction)
            }
        }
    }

    /// `begin`, `body`, then `COMMIT`; `ROLLBACK` when `body` or the commit fails (a connection that
    /// cannot even roll back is dropped).
    static func inTransaction<T>(on link: PostgresLink, begin: String, _ body: (PostgresTransaction) throws -> T) throws -> T {
        let transaction = PostgresTransaction(link: link)
        try transaction.execute(begin)
        do {
            let result = try body(transaction)
            try transaction.execute("COMMIT")
            return result
        } catch {
            if !link.broken {
                do { try transaction.execute("ROLLBACK") } catch { link.broken = true }
            }
            throw error
        }
    }

    // MARK: Migrations

    /// The migrations, named and ordered as SQLite's (``SQLiteGatewayStore/migrator``), each a list
    /// of statements (the extended protocol runs one statement at a time).
    static let migrations: [(name: String, statements: [String])] = [
        ("v1", PostgresSchema.v1),
        ("v2-work-session-notes", PostgresSchema.v2),
        ("v3-owners-and-console", PostgresSchema.v3),
        ("v4-shared-state", PostgresSchema.v4),
        ("v5-approvals", PostgresSchema.v5),
    ]

    /// Applies the migrations not yet recorded in `gatewayMigration`, each in its own transaction
    /// under an advisory lock (DDL is transactional in PostgreSQL: a migration applies whole or not at all).
    func migrate() throws {
        for (ordinal, migration) in Self.migrations.enumerated() {
            try pool.withConnection { link in
                let transaction = PostgresTransaction(link: link)
                try transaction.execute("BEGIN")
                do {
                    try transaction.execute("SELECT pg_advisory_xact_lock(?)", [.int(Self.migrationLockKey)])
                    try transaction.execute(
                        "CREATE TABLE IF NOT EXISTS gatewayMigration (identifier TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, ordinal BIGINT NOT NULL, appliedAt BIGINT NOT NULL)"
                    )
                    let applied = try transaction.rows("SELECT 1 FROM gatewayMigration WHERE identifier = ?", [.text(migration.name)])
                    if applied.isEmpty {
                        for statement in migration.statements { try transaction.execute(statement) }
                        try transaction.execute(
                            "INSERT INTO gatewayMigration (identifier, ordinal, appliedAt) VALUES (?, ?, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
                            [.text(migration.name), .int(ordinal)])
                    }
                    try transaction.execute("COMMIT")
                } catch {
                    if !link.broken { _ = try? transaction.execute("ROLLBACK") }
                    throw PostgresStoreError("the PostgreSQL migration \(migration.name) failed: \(error)")
                }
            }
        }
    }

    /// The names of the migrations recorded in the database, in the order they were applied.
    public func appliedMigrations() async throws -> [String] {
        try await read { reader in
            guard let transaction = reader as? PostgresTransaction else { return [] }
            return try transaction.all("SELECT identifier FROM gatewayMigration ORDER BY ordinal", []) { try $0.next(String.self) }
        }
    }
}

/// The tables, as SQLite's with PostgreSQL's types: every text column compares bytewise (`COLLATE
/// "C"`, SQLite's BINARY), so that ordering and cursors (`id < ?`) agree on both; integers are
/// BIGINT (SQLite's INTEGER is 64-bit); flags are BOOLEAN; lists are JSON text, as GRDB stores them.
/// `user` and `grant` are reserved words in PostgreSQL and stay quoted.
enum PostgresSchema {
    static let text = "TEXT COLLATE \"C\""

    static let v1: [String] = [
        "CREATE TABLE setting (name \(text) PRIMARY KEY NOT NULL, value \(text) NOT NULL)",
        "CREATE TABLE \"user\" (id \(text) PRIMARY KEY NOT NULL, name \(text) NOT NULL, blockedAt BIGINT, createdAt BIGINT NOT NULL)",
        """
        CREATE TABLE agent (id \(text) PRIMARY KEY NOT NULL, ownerID \(text) NOT NULL REFERENCES "user"(id), name \(text) NOT NULL,
            createdAt BIGINT NOT NULL, revokedAt BIGINT)
        """,
        """
        CREATE TABLE "grant" (agentID \(text) NOT NULL REFERENCES agent(id), projectKey \(text) NOT NULL, scopes \(text) NOT NULL,
            PRIMARY KEY (agentID, projectKey))
        """,
        """
        CREATE TABLE pairingCode (codeHash \(text) PRIMARY KEY NOT NULL, agentID \(text) NOT NULL REFERENCES agent(id),
            createdAt BIGINT NOT NULL, expiresAt BIGINT NOT NULL, usedAt BIGINT)
        """,
        """
        CREATE TABLE device (id \(text) PRIMARY KEY NOT NULL, agentID \(text) NOT NULL REFERENCES agent(id), name \(text) NOT NULL,
            publicKey \(text) NOT NULL, createdAt BIGINT NOT NULL, revokedAt BIGINT)
        """,
        """
        CREATE TABLE session (id \(text) PRIMARY KEY NOT NULL, deviceID \(text) NOT NULL REFERENCES device(id),
            tokenHash \(text) NOT NULL UNIQUE, createdAt BIGINT NOT NULL, expiresAt BIGINT NOT NULL, endedAt BIGINT)
        """,
        "CREATE INDEX session_device ON session(deviceID)",
        "CREATE TABLE sessionNonce (deviceID \(text) NOT NULL, nonce \(text) NOT NULL, seenAt BIGINT NOT NULL, PRIMARY KEY (deviceID, nonce))",
        """
        CREATE TABLE project (id \(text) PRIMARY KEY NOT NULL, key \(text) NOT NULL UNIQUE, name \(text) NOT NULL, description \(text) NOT NULL,
            nextIssueNumber BIGINT NOT NULL, createdAt BIGINT NOT NULL)
        """,
        """
        CREATE TABLE state (id \(text) PRIMARY KEY NOT NULL, projectID \(text) NOT NULL REFERENCES project(id), name \(text) NOT NULL,
            category \(text) NOT NULL, position BIGINT NOT NULL)
        """,
        """
        CREATE TABLE label (id \(text) PRIMARY KEY NOT NULL, projectID \(text) NOT NULL REFERENCES project(id), name \(text) NOT NULL,
            color \(text) NOT NULL)
        """,
        """
        CREATE TABLE projectMember (projectID \(text) NOT NULL REFERENCES project(id), userID \(text) NOT NULL REFERENCES "user"(id),
            addedAt BIGINT NOT NULL, addedByAgentID \(text), PRIMARY KEY (projectID, userID))
        """,
        """
        CREATE TABLE issue (id \(text) PRIMARY KEY NOT NULL, projectID \(text) NOT NULL REFERENCES project(id), number BIGINT NOT NULL,
            title \(text) NOT NULL, description \(text) NOT NULL, priority \(text) NOT NULL,
            stateID \(text) NOT NULL REFERENCES state(id), labelIDs \(text) NOT NULL, assigneeIDs \(text) NOT NULL,
            blocks \(text) NOT NULL, createdByUserID \(text) NOT NULL, createdByAgentID \(text),
            createdAt BIGINT NOT NULL, updatedAt BIGINT NOT NULL, UNIQUE (projectID, number))
        """,
        """
        CREATE TABLE comment (id \(text) PRIMARY KEY NOT NULL, issueID \(text) NOT NULL REFERENCES issue(id), authorUserID \(text) NOT NULL,
            authorAgentID \(text), body \(text) NOT NULL, createdAt BIGINT NOT NULL)
        """,
        "CREATE INDEX comment_issue ON comment(issueID, createdAt)",
        """
        CREATE TABLE workSession (id \(text) PRIMARY KEY NOT NULL, agentID \(text) NOT NULL REFERENCES agent(id),
            projectID \(text) NOT NULL REFERENCES project(id), issueID \(text), summary \(text) NOT NULL,
            status \(text) NOT NULL, notes \(text) NOT NULL, result \(text), startedAt BIGINT NOT NULL,
            updatedAt BIGINT NOT NULL, finishedAt BIGINT)
        """,
        """
        CREATE TABLE idempotencyRecord (agentID \(text) NOT NULL, keyHash \(text) NOT NULL, tool \(text) NOT NULL, fingerprint \(text) NOT NULL,
            result \(text) NOT NULL, createdAt BIGINT NOT NULL, PRIMARY KEY (agentID, keyHash))
        """,
        """
        CREATE TABLE auditEvent (id \(text) PRIMARY KEY NOT NULL, at BIGINT NOT NULL, agentID \(text), ownerID \(text), deviceID \(text),
            sessionID \(text), tool \(text) NOT NULL, project \(text), targetIDs \(text) NOT NULL,
            argumentsSHA256 \(text) NOT NULL, outcome \(text) NOT NULL, errorCode \(text), idempotencyKeyHash \(text),
            replayed BOOLEAN NOT NULL, latencyMicroseconds BIGINT NOT NULL)
        """,
        "CREATE INDEX auditEvent_agent ON auditEvent(agentID, id)",
    ]

    /// Notes move to their own rows (see SQLite's v2); notes written before move with their order.
    static let v2: [String] = [
        """
        CREATE TABLE workSessionNote (workSessionID \(text) NOT NULL REFERENCES workSession(id), position BIGINT NOT NULL,
            at BIGINT NOT NULL, text \(text) NOT NULL, issueID \(text), PRIMARY KEY (workSessionID, position))
        """,
        """
        INSERT INTO workSessionNote (workSessionID, position, at, text, issueID)
            SELECT workSession.id, note.ordinality - 1, (note.value->>'at')::bigint, note.value->>'text', note.value->>'issueID'
            FROM workSession, jsonb_array_elements(workSession.notes::jsonb) WITH ORDINALITY AS note(value, ordinality)
        """,
        "ALTER TABLE workSession DROP COLUMN notes",
    ]

    static let v3: [String] = [
        "ALTER TABLE \"user\" ADD COLUMN role \(text) NOT NULL DEFAULT 'owner'",
        "ALTER TABLE \"user\" ADD COLUMN agentsEntitled BOOLEAN NOT NULL DEFAULT TRUE",
        """
        CREATE TABLE loginLink (tokenHash \(text) PRIMARY KEY NOT NULL, userID \(text) NOT NULL REFERENCES "user"(id),
            createdAt BIGINT NOT NULL, expiresAt BIGINT NOT NULL, usedAt BIGINT)
        """,
        """
        CREATE TABLE browserSession (id \(text) PRIMARY KEY NOT NULL, tokenHash \(text) NOT NULL UNIQUE, userID \(text) NOT NULL REFERENCES "user"(id),
            signedInVia \(text) NOT NULL, createdAt BIGINT NOT NULL, lastSeenAt BIGINT NOT NULL,
            expiresAt BIGINT NOT NULL, endedAt BIGINT)
        """,
        "CREATE INDEX browserSession_user ON browserSession(userID)",
        """
        CREATE TABLE issueChange (id \(text) PRIMARY KEY NOT NULL, issueID \(text) NOT NULL REFERENCES issue(id), at BIGINT NOT NULL,
            actorUserID \(text) NOT NULL, actorAgentID \(text), action \(text) NOT NULL, summary \(text) NOT NULL)
        """,
        "CREATE INDEX issueChange_issue ON issueChange(issueID, id)",
        """
        CREATE TABLE ownerAction (id \(text) PRIMARY KEY NOT NULL, at BIGINT NOT NULL, actorUserID \(text), action \(text) NOT NULL,
            subjectID \(text), subjectOwnerID \(text), detail \(text) NOT NULL)
        """,
        "CREATE INDEX ownerAction_actor ON ownerAction(actorUserID, id)",
        "CREATE INDEX auditEvent_owner ON auditEvent(ownerID, id)",
        "CREATE INDEX workSession_agent ON workSession(agentID, status)",
    ]

    /// What the gateway instances share (``PostgresSharedState``). The rate buckets, the claims and
    /// the pairing guard are UNLOGGED: they change at every call, and a commit that touched only
    /// them waits for no WAL flush. A PostgreSQL crash (not a clean restart) empties them: buckets
    /// start full, claims end, and the guard forgets its failures. MCP sessions are ordinary rows.
    static let v4: [String] = [
        """
        CREATE TABLE mcpSession (id \(text) PRIMARY KEY NOT NULL, agentID \(text) NOT NULL REFERENCES agent(id),
            protocolVersion \(text) NOT NULL, createdAt BIGINT NOT NULL, endedAt BIGINT)
        """,
        """
        CREATE UNLOGGED TABLE rateBucket (bucket \(text) PRIMARY KEY NOT NULL, tokens DOUBLE PRECISION NOT NULL, updatedAt BIGINT NOT NULL,
            granted BOOLEAN NOT NULL)
        """,
        """
        CREATE UNLOGGED TABLE idempotencyClaim (gateKey \(text) PRIMARY KEY NOT NULL, fingerprint \(text) NOT NULL, holder \(text) NOT NULL,
            expiresAt BIGINT NOT NULL)
        """,
        """
        CREATE UNLOGGED TABLE pairingGuard (scope \(text) PRIMARY KEY NOT NULL, times \(text) NOT NULL, next BIGINT NOT NULL,
            updatedAt BIGINT NOT NULL)
        """,
        "CREATE INDEX pairingGuard_updated ON pairingGuard(updatedAt)",
    ]
}
