import AgentWire
import SystemSupport

/// Deciding approval requests and holding break-glass grants (issue 17): the admin CLI's
/// operations, which the owner API and the console call with the signed-in person as the actor.
/// Every decision and every grant is written to the owner action log in its own transaction.
extension GatewayAdmin {
    /// The longest reason accepted, in characters.
    public static let maximumReasonCharacters = 500
    /// The longest break-glass grant, in minutes.
    public static let maximumBreakGlassMinutes = 240

    static func checkedReason(_ reason: String?, required: Bool, what: String) throws -> String? {
        let trimmed = reason?.trimmingSpaces() ?? ""
        if trimmed.isEmpty {
            if required { throw AdminError(code: "reason_required", message: "\(what) needs a reason: say why in a few words (--reason)") }
            return nil
        }
        guard trimmed.count <= maximumReasonCharacters, trimmed.unicodeScalars.allSatisfy(TextRule.singleLine.allows) else {
            throw AdminError(
                code: "invalid_reason",
                message: "the reason must be one line of at most \(maximumReasonCharacters) characters, without control characters")
        }
        return trimmed
    }

    /// Requests, newest first: every request, or one owner's; with `pendingOnly`, only those still open.
    public func approvalRequests(ownerID: String? = nil, pendingOnly: Bool = false, limit: Int = 200) async throws -> [ApprovalRequestRecord] {
        let query = ApprovalQuery(ownerID: ownerID, openAt: pendingOnly ? clock.nowMilliseconds() : nil, limit: min(max(1, limit), 1000))
        return try await store.read { try $0.approvalRequests(query) }
    }

    /// Approves or denies a pending request as `actor`. The host CLI (no user) may decide any high
    /// request; a person only as the request's approvers allow. A critical request needs an admin
    /// (`actor`) who holds a break-glass grant in force, and a reason.
    ///
    /// - Returns: The decided request.
    public func decideApproval(id: String, approve: Bool, reason: String?, by actor: ActionActor) async throws -> ApprovalRequestRecord {
        let moment = clock.nowMilliseconds()
        let found = try await store.read { store -> (ApprovalRequestRecord?, UserRecord?, BreakGlassGrantRecord?) in
            let request = try store.approvalRequest(id: id)
            let user = try actor.userID.flatMap { try store.user(id: $0) }
            let grant = try actor.userID.flatMap { try store.breakGlassGrants(adminID: $0, activeAt: moment, limit: 1).first }
            return (request, user, grant)
        }
        guard let request = found.0 else {
            throw AdminError(code: "not_found", message: "there is no approval request \(id); list them with `agent-gateway approvals list`")
        }
        let critical = request.tier == Tier.critical.rawValue
        let why = try Self.checkedReason(reason, required: !approve || critical, what: approve ? "approving a critical request" : "a denial")
        if let userID = actor.userID {
            guard let user = found.1, user.blockedAt == nil else {
                throw AdminError(code: "not_found", message: "there is no approval request \(id)")
            }
            let approvers = Approvers(rawValue: request.approvers) ?? .owner
            guard approvers.allows(user, ownerID: request.ownerID) || (critical && user.isAdmin) else {
                // An owner who may not decide it does not learn it exists.
                if user.id != request.ownerID && !user.isAdmin {
                    throw AdminError(code: "not_found", message: "there is no approval request \(id)")
                }
                throw AdminError(code: "not_an_approver", message: "request \(id) needs \(approvers.rawValue) to decide it; \(userID) may not")
            }
        }
        var grantID: String?
        if critical && approve {
            guard let user = found.1, user.isAdmin, let grant = found.2 else {
                throw AdminError(
                    code: "break_glass_required",
                    message:
                        "request \(id) is critical: only an admin holding a break-glass grant in force may approve it; open one with `agent-gateway breakglass open --admin ID --reason … --minutes N` and decide as that admin (--as ID)"
                )
            }
            grantID = grant.id
        }
        let breakGlassID = grantID
        let status = approve ? ApprovalStatus.approved : ApprovalStatus.denied
        let decider = actor.userID ?? "admin CLI"
        let decided = try await store.write { store -> Bool in
            guard try store.decideApprovalRequest(id: id, status: status, decidedBy: decider, at: moment, reason: why, breakGlassID: breakGlassID)
            else { return false }
            try OwnerActionLog.record(
                store, actor: actor, action: approve ? (critical ? "approve_critical_request" : "approve_request") : "deny_request",
                subjectID: id, subjectOwnerID: request.ownerID,
                detail: "\(request.tool)\(request.project.map { " on \($0)" } ?? ""), \(request.scope)-wide"
                    + (breakGlassID.map { ", break-glass \($0)" } ?? "") + (why.map { ": \($0)" } ?? ""),
                at: moment)
            return true
        }
        guard decided else {
            let status = request.effectiveStatus(at: moment)
            throw AdminError(code: "already_decided", message: "request \(id) is \(status), not pending; nothing was changed")
        }
        if critical && approve {
            Gateway.loud("\(decider) approved critical request \(id) (\(request.tool)) under break-glass \(breakGlassID ?? "?"): \(why ?? "")")
        }
        return try await store.read { try $0.approvalRequest(id: id) } ?? request
    }

    /// Opens a break-glass grant for an admin: for `minutes` (at most 240), with a reason.
    public func openBreakGlass(adminID: String, reason: String, minutes: Int, by actor: ActionActor) async throws -> BreakGlassGrantRecord {
        guard (1...Self.maximumBreakGlassMinutes).contains(minutes) else {
            throw AdminError(code: "invalid_minutes", message: "a break-glass grant lasts 1 to \(Self.maximumBreakGlassMinutes) minutes")
        }
        let why = try Self.checkedReason(reason, required: true, what: "a break-glass grant") ?? ""
        let moment = clock.nowMilliseconds()
        let grant = BreakGlassGrantRecord(
            id: "bkg_\(ULID())", adminID: adminID, reason: why, createdAt: moment, expiresAt: moment + Int64(minutes) * 60_000, endedAt: nil,
            openedBy: actor.userID)
        try await store.write { store in
            guard let admin = try store.user(id: adminID), admin.isAdmin, admin.blockedAt == nil else {
                throw AdminError(
                    code: "not_an_admin", message: "\(adminID) is not an admin of this gateway; name an admin (see `agent-gateway user list`)")
            }
            if let opener = actor.userID, opener != adminID {
                throw AdminError(code: "not_allowed", message: "an admin opens break-glass only for themselves")
            }
            try store.insertBreakGlassGrant(grant)
            try OwnerActionLog.record(
                store, actor: actor, action: "open_break_glass", subjectID: grant.id, subjectOwnerID: adminID,
                detail: "\(minutes) min: \(why)", at: moment)
        }
        Gateway.loud("break-glass \(grant.id) opened for \(adminID) for \(minutes) min by \(actor.label): \(why)")
        return grant
    }

    /// Ends a break-glass grant before its expiry.
    public func endBreakGlass(id: String, by actor: ActionActor) async throws {
        let moment = clock.nowMilliseconds()
        try await store.write { store in
            guard try store.endBreakGlassGrant(id: id, at: moment) else {
                throw AdminError(code: "not_found", message: "there is no break-glass grant \(id) in force")
            }
            try OwnerActionLog.record(store, actor: actor, action: "end_break_glass", subjectID: id, subjectOwnerID: nil, at: moment)
        }
        Gateway.loud("break-glass \(id) ended by \(actor.label)")
    }

    /// Break-glass grants, newest first; with `activeOnly`, those in force.
    public func breakGlassGrants(activeOnly: Bool = false, limit: Int = 100) async throws -> [BreakGlassGrantRecord] {
        let moment = clock.nowMilliseconds()
        return try await store.read { try $0.breakGlassGrants(adminID: nil, activeAt: activeOnly ? moment : nil, limit: limit) }
    }

    /// The JSON form of a request (for `approvals list --json` and the owner API).
    public static func json(_ request: ApprovalRequestRecord, at moment: Int64) -> JSONValue {
        func optional(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
        func time(_ value: Int64?) -> JSONValue { value.map { .string(Timestamp.rfc3339(milliseconds: $0, fractional: true)) } ?? .null }
        return [
            "id": .string(request.id), "agent": .string(request.agentID), "owner": .string(request.ownerID), "device": .string(request.deviceID),
            "session": .string(request.sessionID), "tool": .string(request.tool), "project": optional(request.project),
            "fingerprint": .string(request.fingerprint), "summary": .string(request.summary), "tier": .string(request.tier),
            "scope": .string(request.scope), "approvers": .string(request.approvers), "status": .string(request.effectiveStatus(at: moment)),
            "decidedBy": optional(request.decidedBy), "decidedAt": time(request.decidedAt), "reason": optional(request.reason),
            "breakGlass": optional(request.breakGlassID), "createdAt": time(request.createdAt), "expiresAt": time(request.expiresAt),
            "usedByAudit": optional(request.usedByAuditID),
        ]
    }
}
