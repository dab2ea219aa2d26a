/// The gateway's storage, kept narrow so that a PostgreSQL backend can follow the SQLite one.
///
/// Everything goes through typed operations inside a transaction: `read` for a consistent
/// snapshot, `write` for one atomic unit (a tracker change, its idempotency record and its audit
/// event commit together or not at all). There is no delete and no archive operation anywhere in
/// this interface: the gateway cannot destroy tracker data even by mistake.
public protocol GatewayStore: Sendable {
    func read<T: Sendable>(_ body: @Sendable (any StoreReader) throws -> T) async throws -> T
    func write<T: Sendable>(_ body: @Sendable (any StoreWriter) throws -> T) async throws -> T
    /// `write`, blocking the calling thread: for the gateway's `FairWriteScheduler`, which runs
    /// transactions back to back on its own queue. Never call it from a Swift concurrency task.
    func writeNow<T>(_ body: @Sendable (any StoreWriter) throws -> T) throws -> T
    /// The principal epoch (``PrincipalEpoch``), which every call with a cached session checks: one
    /// setting, so a backend may read it without a transaction of its own.
    func principalEpoch() async throws -> String
}

extension GatewayStore {
    public func principalEpoch() async throws -> String { try await read { try PrincipalEpoch.read($0) } }
}

/// `ids` without repeats, in lists of at most 500: one `IN (…)` query each, within what SQLite and
/// PostgreSQL bind in one statement; none for none.
func distinctIDChunks(_ ids: [String]) -> [[String]] {
    let distinct = Array(Set(ids))
    return stride(from: 0, to: distinct.count, by: 500).map { Array(distinct[$0..<min($0 + 500, distinct.count)]) }
}

/// Reads inside a transaction.
public protocol StoreReader {
    func setting(_ name: String) throws -> String?

    func user(id: String) throws -> UserRecord?
    func users() throws -> [UserRecord]
    /// The people with these ids (any order; unknown ids are left out): what an issue's rendering
    /// names, so that a read never loads the whole workspace.
    func users(ids: [String]) throws -> [UserRecord]

    func agent(id: String) throws -> AgentRecord?
    /// Every agent, or one owner's, oldest first.
    func agents(ownerID: String?) throws -> [AgentRecord]
    func grants(agentID: String) throws -> [GrantRecord]
    func pairingCode(hash: String) throws -> PairingCodeRecord?
    func device(id: String) throws -> DeviceRecord?
    /// An agent's devices, oldest first.
    func devices(agentID: String) throws -> [DeviceRecord]
    func session(tokenHash: String) throws -> SessionRecord?
    func session(id: String) throws -> SessionRecord?
    /// The sessions of an agent's devices, newest first, at most `limit`; with `openAt`, only those
    /// neither ended nor expired at that time.
    func sessions(agentID: String, openAt: Int64?, limit: Int) throws -> [SessionRecord]
    func nonceSeen(deviceID: String, nonce: String) throws -> Bool

    func projects() throws -> [ProjectRecord]
    func project(key: String) throws -> ProjectRecord?
    func project(id: String) throws -> ProjectRecord?
    func states(projectID: String) throws -> [StateRecord]
    func labels(projectID: String) throws -> [LabelRecord]
    func members(projectID: String) throws -> [UserRecord]
    func issue(projectID: String, number: Int) throws -> IssueRecord?
    func issue(id: String) throws -> IssueRecord?
    func searchIssues(_ query: IssueQuery) throws -> [IssueRecord]
    func comment(id: String) throws -> CommentRecord?
    /// A page of an issue's comments, oldest first, after the comment `after` names (if any).
    func comments(issueID: String, after: CommentPosition?, limit: Int) throws -> [CommentRecord]
    func commentCount(issueID: String) throws -> Int
    func workSession(id: String) throws -> WorkSessionRecord?
    func workSessionNotes(workSessionID: String) throws -> [WorkSessionNote]
    func workSessionNoteCount(workSessionID: String) throws -> Int

    func idempotencyRecord(agentID: String, keyHash: String) throws -> IdempotencyRecord?
    func auditEvents(agentID: String?, limit: Int) throws -> [AuditEventRecord]
    func auditEventCount() throws -> Int
    /// When the agent's latest audited call was, if it made one.
    func lastAuditTime(agentID: String) throws -> Int64?
    /// The agent's latest audited call, if it made one.
    func lastAuditEvent(agentID: String) throws -> AuditEventRecord?
    /// A page of the audit feed, newest first.
    func auditEvents(matching query: AuditQuery) throws -> [AuditEventRecord]

    // Owners, sign-in and the console (OwnerRecords.swift).
    func loginLink(tokenHash: String) throws -> LoginLinkRecord?
    func browserSession(tokenHash: String) throws -> BrowserSessionRecord?
    /// The agent's work sessions that are neither finished nor abandoned.
    func openWorkSessionCount(agentID: String) throws -> Int
    /// An issue's history, oldest first, at most `limit`.
    func issueChanges(issueID: String, limit: Int) throws -> [IssueChangeRecord]
    /// Owner and admin actions, newest first: all of them, or those by or about one person.
    func ownerActions(userID: String?, limit: Int) throws -> [OwnerActionRecord]

    // Approvals and break-glass grants (ApprovalRecords.swift, migration v5-approvals).
    func approvalRequest(id: String) throws -> ApprovalRequestRecord?
    /// The request a retry resumes, for these arguments (`fingerprint` covers the tool): pending or
    /// approved, not yet used by a call; the session's newest, else the device's newest (the
    /// sidecar renews its session token every few minutes, and a retry after that is the same call).
    func resumableApprovalRequest(sessionID: String, deviceID: String, fingerprint: String) throws -> ApprovalRequestRecord?
    /// An approved session-wide request of the session for the tool on the project (nil project: none).
    func sessionApproval(sessionID: String, tool: String, project: String?) throws -> ApprovalRequestRecord?
    /// Requests, newest first.
    func approvalRequests(_ query: ApprovalQuery) throws -> [ApprovalRequestRecord]
    /// How many of the agent's requests are pending and not expired at `at`.
    func openApprovalRequestCount(agentID: String, at: Int64) throws -> Int
    /// Break-glass grants, newest first: all, or one admin's; with `activeAt`, only those in force then.
    func breakGlassGrants(adminID: String?, activeAt: Int64?, limit: Int) throws -> [BreakGlassGrantRecord]
}

/// Reads and writes inside a transaction. Inserts and updates only.
public protocol StoreWriter: StoreReader {
    func setSetting(_ name: String, value: String) throws

    func insertUser(_ user: UserRecord) throws
    func setUserBlocked(id: String, at: Int64?) throws

    func insertAgent(_ agent: AgentRecord) throws
    func insertGrant(_ grant: GrantRecord) throws
    func setAgentRevoked(id: String, at: Int64) throws
    func insertPairingCode(_ code: PairingCodeRecord) throws
    func markPairingCodeUsed(hash: String, at: Int64) throws
    func insertDevice(_ device: DeviceRecord) throws
    func setDeviceRevoked(id: String, at: Int64) throws
    func insertSession(_ session: SessionRecord) throws
    func endSession(id: String, at: Int64) throws
    func endSessions(deviceID: String, at: Int64) throws
    /// Ends every open session of every device of every agent of the owner, and expires the
    /// owner's unused pairing codes (blocking an owner).
    func endSessions(ownerID: String, at: Int64) throws
    func insertNonce(deviceID: String, nonce: String, at: Int64) throws

    func insertProject(_ project: ProjectRecord) throws
    func insertState(_ state: StateRecord) throws
    func insertLabel(_ label: LabelRecord) throws
    func insertProjectMember(_ member: ProjectMemberRecord) throws
    /// Allocates the next issue number of the project and inserts the issue with it.
    func insertIssue(_ issue: IssueRecord) throws -> IssueRecord
    func updateIssue(_ issue: IssueRecord) throws
    func insertComment(_ comment: CommentRecord) throws
    func insertWorkSession(_ session: WorkSessionRecord) throws
    func updateWorkSession(_ session: WorkSessionRecord) throws
    /// Appends a note to a work session (notes live in their own rows: adding one never rewrites the others).
    func insertWorkSessionNote(_ note: WorkSessionNote) throws

    /// Inserts or, once the previous record is past its replay window, replaces.
    func saveIdempotencyRecord(_ record: IdempotencyRecord) throws
    func insertAuditEvent(_ event: AuditEventRecord) throws

    func setUserRole(id: String, role: UserRole) throws
    func setUserEntitled(id: String, entitled: Bool) throws
    func insertLoginLink(_ link: LoginLinkRecord) throws
    func markLoginLinkUsed(tokenHash: String, at: Int64) throws
    func insertBrowserSession(_ session: BrowserSessionRecord) throws
    func touchBrowserSession(id: String, at: Int64) throws
    func endBrowserSession(id: String, at: Int64) throws
    /// Ends every browser session of a person (blocking them signs them out).
    func endBrowserSessions(userID: String, at: Int64) throws
    func insertIssueChange(_ change: IssueChangeRecord) throws
    func insertOwnerAction(_ action: OwnerActionRecord) throws

    func insertApprovalRequest(_ request: ApprovalRequestRecord) throws
    /// Decides a pending request not expired at `at`; `false` when it was not pending (or expired).
    /// On PostgreSQL the decision is announced (`NOTIFY`) when the transaction commits, so the
    /// waiting call wakes on whichever gateway instance holds it.
    func decideApprovalRequest(
        id: String, status: String, decidedBy: String?, at: Int64, reason: String?, breakGlassID: String?
    ) throws -> Bool
    /// Marks an approved request as used by the call whose audit event is `auditID`; `false` when
    /// another call used it first (a call-wide approval runs one call).
    func markApprovalUsed(id: String, auditID: String) throws -> Bool
    func insertBreakGlassGrant(_ grant: BreakGlassGrantRecord) throws
    /// Ends a grant before its expiry; `false` when it was not in force.
    func endBreakGlassGrant(id: String, at: Int64) throws -> Bool
}
