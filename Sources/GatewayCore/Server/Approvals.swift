import AgentWire
import Logging
import SodiumKit
import SystemSupport

/// The capability tiers in the tools/call pipeline (issue 17), after the scope, grant and schema
/// checks: low runs; medium runs, flagged in the audit; high waits for an approval; critical waits
/// for an admin who holds a break-glass grant. See docs/security.md, "Capability tiers".
extension Gateway {
    /// The policy in force (the file given to `serve --policy`, reloaded on SIGHUP, or the built-in defaults).
    public var policy: CapabilityPolicy { policyBox.withLockedValue { $0 } }

    /// Puts `policy` in force for the calls that start from now on.
    public func replacePolicy(_ policy: CapabilityPolicy) { policyBox.withLockedValue { $0 = policy } }

    /// Loads the policy file and puts it in force; an invalid file throws and the policy in force stays.
    @discardableResult
    public func reloadPolicy(path: String) throws(PolicyError) -> CapabilityPolicy {
        let loaded = try PolicyFile.load(path: path)
        replacePolicy(loaded)
        return loaded
    }

    /// How often a waiting call tells the client it still waits (and reads its request again at
    /// the latest, should a wake-up be missed).
    static let approvalProgressMilliseconds: Int64 = 10_000
    /// How long a wait lasts between two reads of the request when no wake-up comes.
    static let approvalPollMilliseconds: Int64 = 1_000
    /// The most requests one agent may have waiting for a decision: an agent that floods distinct
    /// high-tier calls fills no one's console.
    public static let maximumOpenApprovalsPerAgent = 20

    /// What the tier check lets a call do.
    enum TierGate {
        case proceed(approvalID: String?)
        case refuse(GatewayError, approvalID: String?)
    }

    /// The project the policy sees for a call: its `project` argument, its issue's project, or its work session's.
    func policyProject(tool: ToolDefinition, arguments: JSONObject) async throws -> String? {
        if let key = arguments["project"]?.stringValue { return key.uppercased() }
        if let issue = arguments["issue"]?.stringValue, let parsed = try? TrackerTools.parseIssueKey(issue) { return parsed.project }
        guard let id = arguments["workSession"]?.stringValue, policy.tools[tool.name]?.projects.isEmpty == false else { return nil }
        return try await store.read { store in
            guard let session = try store.workSession(id: id) else { return nil }
            return try store.project(id: session.projectID)?.key
        }
    }

    /// Applies the tier of the call: returns at once for low and medium, and for high and critical
    /// waits for a decision (up to the policy's wait), sending `progress` while it waits.
    func checkTier(
        _ decision: TierDecision, tool: ToolDefinition, project: String?, arguments: JSONObject, fingerprint: String,
        principal: Principal, progress: (@Sendable (String) async -> Void)?
    ) async throws -> TierGate {
        guard decision.tier.needsApproval else { return .proceed(approvalID: nil) }
        let session = principal.session.id
        let moment = now
        // A session-wide approval of this tool on this project covers the rest of the session.
        if decision.approval == .session, decision.tier == .high,
            let approved = try await store.read({ try $0.sessionApproval(sessionID: session, tool: tool.name, project: project) })
        {
            return .proceed(approvalID: approved.id)
        }
        if decision.tier == .critical {
            let held = try await store.read { try $0.breakGlassGrants(adminID: nil, activeAt: moment, limit: 1) }
            if held.isEmpty { return .refuse(.breakGlassRequired(tool: tool.name, project: project), approvalID: nil) }
        }
        // Find the request a retry resumes, or make one.
        let summary = ApprovalSummary.words(tool: tool, project: project, arguments: arguments)
        let draft = ApprovalRequestRecord(
            id: "apr_\(ULID())", agentID: principal.agent.id, ownerID: principal.owner.id, deviceID: principal.device.id, sessionID: session,
            tool: tool.name, project: project, fingerprint: fingerprint, summary: summary, tier: decision.tier.rawValue,
            scope: decision.approval.rawValue, approvers: decision.approvers.rawValue, status: ApprovalStatus.pending, decidedBy: nil,
            decidedAt: nil, reason: nil, breakGlassID: nil, createdAt: moment,
            expiresAt: moment + Int64(decision.requestOpenMinutes) * 60_000, usedByAuditID: nil)
        let agentID = principal.agent.id
        let deviceID = principal.device.id
        let limit = Self.maximumOpenApprovalsPerAgent
        let made = try await fairWriter.write(agentID: agentID, store: store) {
            store -> (ApprovalRequestRecord, Bool)? in
            if let found = try store.resumableApprovalRequest(sessionID: session, deviceID: deviceID, fingerprint: fingerprint),
                found.effectiveStatus(at: moment) != ApprovalStatus.expired
            {
                return (found, false)
            }
            guard try store.openApprovalRequestCount(agentID: agentID, at: moment) < limit else { return nil }
            try store.insertApprovalRequest(draft)
            return (draft, true)
        }
        guard let (request, created) = made else {
            return .refuse(
                GatewayError(
                    code: .rateLimited, status: 429,
                    message:
                        "this agent already has \(limit) approval requests waiting for a decision; wait for them to be decided or to expire, and tell the user",
                    retryable: true, retryAfterSeconds: 60), approvalID: nil)
        }
        if created {
            webhook?.announce(request, agentName: principal.agent.name, at: moment, console: acceptedOrigins.first.map { $0 + "/console/approvals" })
        }
        if created, decision.tier == .critical {
            // Ids, the tool and the project only: the summary quotes arguments, and no argument text goes to a log.
            Self.loud(
                "critical request \(request.id): agent \(principal.agent.id) (owner \(principal.owner.id)) asks to run \(tool.name) on \(project ?? "no project")"
            )
        }
        let approver = Self.approverWords(decision.approvers, owner: principal.owner, critical: decision.tier == .critical)
        // The connection of a call in progress is closed `--idle-timeout` after its request ended:
        // the wait ends 5 s before that, so the call answers (approval_pending) instead of vanishing.
        let waitSeconds = min(decision.waitSeconds, max(1, Int(configuration.idleTimeoutSeconds) - 5))
        let deadline = GatewayClock.monotonicNanoseconds() + UInt64(waitSeconds) * 1_000_000_000
        var nextProgress: UInt64 = 0
        var current = request
        metrics.approvalsWaiting.increment()
        defer { metrics.approvalsWaiting.decrement() }
        while true {
            switch current.effectiveStatus(at: now) {
            case ApprovalStatus.approved: return .proceed(approvalID: current.id)
            case ApprovalStatus.denied:
                return .refuse(
                    .approvalDenied(by: current.decidedBy ?? "the approver", reason: current.reason ?? "no reason given", requestID: current.id),
                    approvalID: current.id)
            case ApprovalStatus.expired: return .refuse(.approvalExpired(requestID: current.id), approvalID: current.id)
            default: break
            }
            let clock = GatewayClock.monotonicNanoseconds()
            guard clock < deadline else {
                let minutes = max(1, Int((current.expiresAt - now + 59_999) / 60_000))
                return .refuse(.approvalPending(approver: approver, requestID: current.id, openMinutes: minutes), approvalID: current.id)
            }
            if clock >= nextProgress {
                await progress?(
                    "waiting for \(approver) to approve: \(current.summary) (request \(current.id), tier \(current.tier), up to \(Int((deadline - clock) / 1_000_000_000)) s more)"
                )
                nextProgress = clock + UInt64(Self.approvalProgressMilliseconds) * 1_000_000
            }
            let remaining = Int64((deadline - clock) / 1_000_000) + 1
            await shared.waitForDecision(of: current.id, milliseconds: min(Self.approvalPollMilliseconds, remaining))
            let id = current.id
            guard let reread = try await store.read({ try $0.approvalRequest(id: id) }) else {
                return .refuse(.approvalExpired(requestID: id), approvalID: id)
            }
            current = reread
        }
    }

    /// A line on stderr for what must not pass unnoticed: critical requests, break-glass grants and
    /// their use. Ids, tools, projects and the admin's own reason; never a secret, never an argument.
    static func loud(_ line: String) {
        operatorLog.warning("BREAK-GLASS: \(line.flattenedToOneLine(limit: 500))")
    }

    /// "alice", "an admin", "alice or an admin", "an admin holding break-glass".
    static func approverWords(_ approvers: Approvers, owner: UserRecord, critical: Bool) -> String {
        if critical { return "an admin holding a break-glass grant" }
        switch approvers {
        case .owner: return owner.name
        case .admin: return "an admin"
        case .ownerOrAdmin: return "\(owner.name) or an admin"
        }
    }
}

/// What a waiting call would do, in words, for the person deciding. It quotes only short,
/// schema-checked one-line arguments (names, keys, states), each cut to 80 characters, never a
/// description or a comment body; at most 300 characters in all.
enum ApprovalSummary {
    static func words(tool: ToolDefinition, project: String?, arguments: JSONObject) -> String {
        func text(_ name: String) -> String {
            guard let value = arguments[name]?.stringValue else { return "?" }
            return "“" + String(value.prefix(80)) + (value.count > 80 ? "…" : "") + "”"
        }
        func list(_ name: String) -> String {
            let values = (arguments[name]?.arrayValue ?? []).compactMap(\.stringValue).prefix(5).map { String($0.prefix(40)) }
            return values.isEmpty ? "none" : values.joined(separator: ", ")
        }
        let issue = arguments["issue"]?.stringValue?.uppercased() ?? "?"
        let place = project ?? "?"
        let sentence: String
        switch tool.name {
        case "move_issue": sentence = "move \(issue) to \(text("state"))"
        case "add_project_member": sentence = "add \(text("member")) to project \(place)"
        case "create_issue": sentence = "create an issue in \(place) titled \(text("title"))"
        case "update_issue":
            let fields = ["title", "description", "priority"].filter { arguments[$0] != nil }
            sentence = "change the \(fields.isEmpty ? "nothing" : fields.joined(separator: ", ")) of \(issue)"
        case "update_issue_blocks":
            let names = (arguments["blocks"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
            sentence = "set the blocks \(names.joined(separator: ", ")) of \(issue)"
        case "comment_issue": sentence = "comment on \(issue) (\(arguments["body"]?.stringValue?.count ?? 0) characters)"
        case "set_issue_labels": sentence = "set the labels of \(issue) to \(list("labels"))"
        case "assign_issue": sentence = "assign \(issue) to \(list("assignees"))"
        case "start_work_session": sentence = "start a work session in \(place)"
        case "update_work_session": sentence = "add a note to work session \(text("workSession"))"
        case "finish_work_session": sentence = "finish work session \(text("workSession"))"
        default: sentence = "\(tool.title.lowercased())" + (project.map { " in \($0)" } ?? "")
        }
        return String(sentence.prefix(300))
    }
}

extension Gateway {
    /// The tier step of `runAdmittedCall`: sets the audit's tier and approval, and returns why the
    /// call may not run, or nil when it may. A write whose idempotency key already holds a stored
    /// result goes on without asking: it replays, it does not write again.
    func applyTier(
        _ tool: ToolDefinition, arguments: JSONObject, canonical: [UInt8], headerKey: String?, principal: Principal,
        audit: inout AuditEventRecord, progress: (@Sendable (String) async -> Void)?
    ) async throws -> GatewayError? {
        let project = try await policyProject(tool: tool, arguments: arguments)
        let decision = policy.decision(for: tool, project: project, arguments: arguments)
        if decision.tier != .low { audit.tier = decision.tier.rawValue }
        guard decision.tier.needsApproval else { return nil }
        // Only a call the grants allow asks a person: the tool refuses the others as it always did.
        if let project, principal.scopes(on: project)?.contains(tool.scope) != true { return nil }
        let agentID = principal.agent.id
        if !tool.readOnly, let key = arguments["idempotencyKey"]?.stringValue ?? headerKey {
            if try await hasReplayableRecord(agentID: agentID, keyHash: idempotencyKeyHash(agentID: agentID, key: key)) { return nil }
        }
        let fingerprint = Hex.encode(Hash.sha256(Array("\(tool.name)\n".utf8) + canonical))
        let gate = try await checkTier(
            decision, tool: tool, project: project, arguments: arguments, fingerprint: fingerprint, principal: principal, progress: progress)
        switch gate {
        case .refuse(let error, let approvalID):
            audit.approvalID = approvalID
            return error
        case .proceed(let approvalID):
            audit.approvalID = approvalID
            guard let approvalID else { return nil }
            let auditID = audit.id
            let first = try await fairWriter.write(agentID: agentID, store: store) { try $0.markApprovalUsed(id: approvalID, auditID: auditID) }
            if decision.tier == .critical {
                Self.loud("critical call \(auditID) of agent \(agentID) runs \(tool.name) under request \(approvalID)")
            }
            // A call-wide approval runs one call; a session-wide one covers the session's later calls.
            if !first, decision.approval == .call || decision.tier == .critical {
                return GatewayError(
                    code: .approvalExpired, status: 409,
                    message:
                        "request \(approvalID) was already used by another call with the same arguments; call again to ask for a new approval")
            }
            return nil
        }
    }
}
