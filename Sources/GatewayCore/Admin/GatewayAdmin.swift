import AgentWire
import SodiumKit

/// Why an admin command failed: a code and a one-line message saying what to do next.
public struct AdminError: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: String
    public let message: String
    public var description: String { message }
    public static func == (lhs: AdminError, rhs: AdminError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

/// The owner-side operations of the reference gateway (its admin CLI calls these): demo data,
/// agents and grants, pairing codes, revocation, blocking owners, reading the audit log.
public struct GatewayAdmin: Sendable {
    public let store: any GatewayStore
    public let hashKey: [UInt8]
    public let clock: GatewayClock
    let random: RandomSource

    /// - Throws: ``SodiumKit/CryptoError`` when libsodium cannot initialise (no random source).
    public init(store: any GatewayStore, hashKey: [UInt8], clock: GatewayClock = .system) throws(CryptoError) {
        self.random = try RandomSource.system()
        self.store = store
        self.hashKey = hashKey
        self.clock = clock
    }

    /// The keyed-hash secret: from `hashKeyFile` (32 raw bytes or 64 hex digits; created, or
    /// moved out of the database, when the file does not exist yet), else the one stored in the
    /// database, generated on first use. See ``HashKey``.
    public static func loadHashKey(store: any GatewayStore, hashKeyFile: String?) async throws -> [UInt8] {
        try await HashKey.load(store: store, hashKeyFile: hashKeyFile)
    }

    /// Creates the demo workspace: owners `alice` and `bob` (with `carol` and `dave`, members),
    /// the admin `ada`, projects WEB and OPS. Running it again changes nothing (but adds `ada` to a
    /// workspace seeded before admins existed).
    public func seedDemo() async throws -> JSONValue {
        let now = clock.nowMilliseconds()
        return try await store.write { store -> JSONValue in
            if try store.user(id: "ada") == nil {
                try store.insertUser(UserRecord(id: "ada", name: "Ada", blockedAt: nil, createdAt: now, role: UserRole.admin.rawValue))
            }
            if try store.project(key: "WEB") != nil { return ["seeded": false, "projects": ["WEB", "OPS"]] }
            for (id, name) in [("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol"), ("dave", "Dave")] where try store.user(id: id) == nil {
                try store.insertUser(UserRecord(id: id, name: name, blockedAt: nil, createdAt: now))
            }
            // Over Plane the projects are Plane's: the demo adds only the people who own agents.
            if try TrackerBinding.servesPlane(store) { return ["seeded": true, "projects": [], "tracker": "plane"] }
            let demo:
                [(
                    key: String, name: String, description: String, members: [String], labels: [(String, String)],
                    issues: [(String, String, String, String, [String], [String])]
                )] = [
                    (
                        "WEB", "Website", "The public website and its build.", ["alice", "bob", "carol"],
                        [("bug", "#d73a4a"), ("feature", "#a2eeef"), ("frontend", "#7057ff"), ("docs", "#0075ca")],
                        [
                            (
                                "Fix the broken signup link", "The signup link in the footer returns 404.", "high", "Todo", ["bug", "frontend"],
                                ["bob"]
                            ),
                            ("Add dark mode", "Respect prefers-color-scheme.", "medium", "Backlog", ["feature", "frontend"], []),
                            ("Document the release process", "Write down how a release is cut.", "low", "In Progress", ["docs"], ["carol"]),
                            ("Speed up the landing page", "LCP is 4 s on mobile.", "medium", "Done", ["frontend"], ["alice"]),
                        ]
                    ),
                    (
                        "OPS", "Operations", "Servers, deploys and on-call.", ["alice", "carol"],
                        [("incident", "#b60205"), ("maintenance", "#fbca04"), ("automation", "#0e8a16")],
                        [
                            ("Rotate the TLS certificates", "Certificates expire next month.", "urgent", "Todo", ["maintenance"], ["carol"]),
                            ("Automate database backups", "Nightly backups with a restore test.", "high", "Backlog", ["automation"], []),
                            ("Postmortem for the March outage", "Collect the timeline.", "medium", "Done", ["incident"], ["alice"]),
                        ]
                    ),
                ]
            for project in demo {
                let projectID = "prj_\(ULID())"
                try store.insertProject(
                    ProjectRecord(
                        id: projectID, key: project.key, name: project.name, description: project.description, nextIssueNumber: 1, createdAt: now))
                var stateIDs: [String: String] = [:]
                for (position, state) in [("Backlog", "backlog"), ("Todo", "unstarted"), ("In Progress", "started"), ("Done", "completed")]
                    .enumerated()
                {
                    let id = "sta_\(ULID())"
                    stateIDs[state.0] = id
                    try store.insertState(StateRecord(id: id, projectID: projectID, name: state.0, category: state.1, position: position))
                }
                var labelIDs: [String: String] = [:]
                for label in project.labels {
                    let id = "lbl_\(ULID())"
                    labelIDs[label.0] = id
                    try store.insertLabel(LabelRecord(id: id, projectID: projectID, name: label.0, color: label.1))
                }
                for member in project.members {
                    try store.insertProjectMember(ProjectMemberRecord(projectID: projectID, userID: member, addedAt: now, addedByAgentID: nil))
                }
                for issue in project.issues {
                    let created = try store.insertIssue(
                        IssueRecord(
                            id: "iss_\(ULID())", projectID: projectID, number: 0, title: issue.0, description: issue.1, priority: issue.2,
                            stateID: stateIDs[issue.3]!, labelIDs: issue.4.compactMap { labelIDs[$0] }, assigneeIDs: issue.5,
                            blocks: [IssueBlock(name: "Acceptance criteria", text: "- [ ] " + issue.0)], createdByUserID: "alice",
                            createdByAgentID: nil, createdAt: now, updatedAt: now))
                    try store.insertIssueChange(
                        IssueChangeRecord(
                            id: "chg_\(ULID())", issueID: created.id, at: now, actorUserID: "alice", actorAgentID: nil, action: "create_issue",
                            summary: "created the issue"))
                }
            }
            return ["seeded": true, "projects": ["WEB", "OPS"]]
        }
    }

    /// Creates an agent for `ownerID` holding `scopes` on each of `projects`; returns its id.
    public func createAgent(
        ownerID: String, name: String, projects: [String], scopes: [String], by actor: ActionActor = .hostCLI
    ) async throws
        -> String
    {
        guard !projects.isEmpty else { throw AdminError(code: "validation_failed", message: "give at least one --project KEY") }
        guard !scopes.isEmpty else {
            throw AdminError(code: "validation_failed", message: "give at least one --scope SCOPE (\(Scope.all.joined(separator: ", ")))")
        }
        return try await createAgent(
            ownerID: ownerID, name: name, grants: Dictionary(projects.map { ($0.uppercased(), scopes) }, uniquingKeysWith: { $0 + $1 }), by: actor)
    }

    /// Creates an agent for `ownerID` holding, on each project key, its scopes; returns its id.
    public func createAgent(ownerID: String, name: String, grants: [String: [String]], by actor: ActionActor = .hostCLI) async throws -> String {
        guard !name.isEmpty, name.count <= 100, name.unicodeScalars.allSatisfy(TextRule.singleLine.allows) else {
            throw AdminError(code: "validation_failed", message: "the agent name must have 1 to 100 characters on one line")
        }
        guard !grants.isEmpty, grants.count <= 100 else {
            throw AdminError(code: "validation_failed", message: "grant at least one project (and at most 100)")
        }
        for (key, scopes) in grants {
            guard !scopes.isEmpty else {
                throw AdminError(
                    code: "validation_failed", message: "pick at least one scope for project \(key) (\(Scope.all.joined(separator: ", ")))")
            }
            for scope in scopes where !Scope.all.contains(scope) {
                throw AdminError(code: "unknown_scope", message: "unknown scope \(scope); valid scopes: \(Scope.all.joined(separator: ", "))")
            }
        }
        let id = "agt_\(ULID())"
        let now = clock.nowMilliseconds()
        let keys = grants.keys.map { $0.uppercased() }
        try await store.write { store in
            guard let owner = try store.user(id: ownerID) else {
                let known = try store.users().map(\.id).joined(separator: ", ")
                throw AdminError(
                    code: "unknown_owner", message: "unknown owner \(ownerID); known people: \(known.isEmpty ? "none (run seed-demo)" : known)")
            }
            if owner.blockedAt != nil { throw AdminError(code: "owner_blocked", message: "owner \(ownerID) is blocked; unblock the owner first") }
            if !owner.agentsEntitled {
                throw AdminError(code: "owner_not_entitled", message: "owner \(ownerID) has no agent entitlement; ask an admin to switch it on")
            }
            // Over Plane, projects live in Plane: a grant names a project key, which tools check
            // against Plane at call time (an unknown one answers "does not exist").
            let servesPlane = try TrackerBinding.servesPlane(store)
            for key in keys where servesPlane ? !TrackerBinding.isProjectKey(key.uppercased()) : try store.project(key: key) == nil {
                if servesPlane {
                    throw AdminError(
                        code: "unknown_project", message: "\(key) is not a project key (1 to 12 letters and digits, as Plane's identifiers)")
                }
                let known = try store.projects().map(\.key).joined(separator: ", ")
                throw AdminError(
                    code: "unknown_project", message: "unknown project \(key); projects: \(known.isEmpty ? "none (run seed-demo)" : known)")
            }
            try store.insertAgent(AgentRecord(id: id, ownerID: ownerID, name: name, createdAt: now, revokedAt: nil))
            for (key, scopes) in grants.sorted(by: { $0.key < $1.key }) {
                try store.insertGrant(GrantRecord(agentID: id, projectKey: key.uppercased(), scopes: Scope.all.filter { scopes.contains($0) }))
            }
            try OwnerActionLog.record(
                store, actor: actor, action: "create_agent", subjectID: id, subjectOwnerID: ownerID,
                detail: "grants " + grants.keys.map { $0.uppercased() }.sorted().joined(separator: ","), at: now)
        }
        return id
    }

    /// A fresh one-time pairing code for the agent (`XXXX-XXXX`); only its keyed hash is stored.
    public func createPairingCode(agentID: String, ttlSeconds: Int = 600, by actor: ActionActor = .hostCLI) async throws -> String {
        guard hashKey.count == 32 else {
            throw AdminError(
                code: "hash_key_file_required",
                message: "this database keeps its hash key in a file; pass --hash-key-file FILE (the one agent-gateway serve uses)")
        }
        let random = self.random.bytes(5)
        let value = random.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let raw = CrockfordBase32.encode(value, count: 8)
        let code = PairingCodeFormat.normalize(raw)!
        let hash = Hex.encode(Hash.keyed(Array("pairing-code\n\(code)".utf8), key: hashKey))
        let now = clock.nowMilliseconds()
        try await store.write { store in
            guard let agent = try store.agent(id: agentID) else {
                throw AdminError(code: "unknown_agent", message: "unknown agent \(agentID); create one with `agent-gateway agent create`")
            }
            if agent.revokedAt != nil { throw AdminError(code: "agent_revoked", message: "agent \(agentID) is revoked; create a new agent") }
            if let owner = try store.user(id: agent.ownerID), owner.blockedAt != nil || !owner.agentsEntitled {
                throw AdminError(
                    code: owner.blockedAt != nil ? "owner_blocked" : "owner_not_entitled",
                    message: "owner \(owner.id) is blocked or has no agent entitlement; ask an admin to restore it first")
            }
            try store.insertPairingCode(
                PairingCodeRecord(codeHash: hash, agentID: agentID, createdAt: now, expiresAt: now + Int64(ttlSeconds) * 1000, usedAt: nil))
            try OwnerActionLog.record(
                store, actor: actor, action: "create_pairing_code", subjectID: agentID, subjectOwnerID: agent.ownerID,
                detail: "valid \(ttlSeconds) s", at: now)
        }
        return code
    }

    /// Revokes the agent: its very next call fails with `agent_revoked`.
    public func revokeAgent(id: String, by actor: ActionActor = .hostCLI) async throws {
        let now = clock.nowMilliseconds()
        try await store.write { store in
            guard let agent = try store.agent(id: id) else {
                throw AdminError(code: "unknown_agent", message: "unknown agent \(id); check the id printed by `agent create`")
            }
            try store.setAgentRevoked(id: id, at: now)
            try OwnerActionLog.record(store, actor: actor, action: "revoke_agent", subjectID: id, subjectOwnerID: agent.ownerID, at: now)
        }
    }

    /// Blocks (or unblocks) an owner: every agent of a blocked owner fails with `owner_blocked`.
    /// Blocking also ends the owner's sessions and expires its unused pairing codes, so that
    /// unblocking revives neither: a token copied before the block stays dead, and the owner's
    /// devices mint new sessions with their keys.
    public func setOwnerBlocked(id: String, blocked: Bool, by actor: ActionActor = .hostCLI) async throws {
        let now = clock.nowMilliseconds()
        try await store.write { store in
            guard try store.user(id: id) != nil else { throw AdminError(code: "unknown_owner", message: "unknown owner \(id)") }
            try store.setUserBlocked(id: id, at: blocked ? now : nil)
            if blocked {
                try store.endSessions(ownerID: id, at: now)
                try store.endBrowserSessions(userID: id, at: now)
            }
            try OwnerActionLog.record(
                store, actor: actor, action: blocked ? "block_user" : "unblock_user", subjectID: id, subjectOwnerID: id, at: now)
        }
    }

    /// Audit events, oldest first.
    public func auditEvents(agentID: String?, limit: Int = 100_000) async throws -> [AuditEventRecord] {
        try await store.read { try $0.auditEvents(agentID: agentID, limit: limit) }
    }

    /// The JSON form of an audit event.
    public static func json(_ event: AuditEventRecord) -> JSONValue {
        func optional(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
        return [
            "id": .string(event.id), "at": .string(Timestamp.rfc3339(milliseconds: event.at, fractional: true)), "agent": optional(event.agentID),
            "owner": optional(event.ownerID), "device": optional(event.deviceID), "session": optional(event.sessionID), "tool": .string(event.tool),
            "project": optional(event.project), "targets": .array(event.targetIDs.map { .string($0) }),
            "argumentsSha256": .string(event.argumentsSHA256),
            "outcome": .string(event.outcome), "errorCode": optional(event.errorCode), "idempotencyKeyHash": optional(event.idempotencyKeyHash),
            "replayed": .bool(event.replayed), "latencyMicroseconds": .int(Int(event.latencyMicroseconds)),
            "tier": .string(event.tier ?? Tier.low.rawValue), "approval": optional(event.approvalID),
        ]
    }
}
