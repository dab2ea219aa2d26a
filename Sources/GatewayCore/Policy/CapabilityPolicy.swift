import AgentWire

/// How much care a tool call needs (issue 17). Low runs; medium runs and is flagged in the audit;
/// high waits for a person's approval; critical waits for an admin who holds a break-glass grant.
public enum Tier: String, Sendable, CaseIterable, Comparable {
    case low, medium, high, critical

    public static func < (lhs: Tier, rhs: Tier) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// Whether a call of this tier waits for a decision.
    public var needsApproval: Bool { self >= .high }
}

/// What one approval covers: the one call, or the rest of the session for that tool on that project.
public enum ApprovalScope: String, Sendable, CaseIterable {
    case call, session
}

/// Who may decide a request: the agent's owner, an admin, or either.
public enum Approvers: String, Sendable, CaseIterable {
    case owner
    case admin
    case ownerOrAdmin = "owner-or-admin"

    public func allows(_ user: UserRecord, ownerID: String) -> Bool {
        switch self {
        case .owner: return user.id == ownerID
        case .admin: return user.isAdmin
        case .ownerOrAdmin: return user.id == ownerID || user.isAdmin
        }
    }
}

/// One rule of the policy file: a tool's settings, or a project's override of them. Unset fields
/// come from the level above (project → tool → defaults).
public struct PolicyRule: Sendable, Equatable {
    public var tier: Tier?
    public var approval: ApprovalScope?
    public var waitSeconds: Int?
    public var approvers: Approvers?
    /// Conditions on the arguments, first match wins: `state` in [Done] → high.
    public var when: [PolicyCondition] = []

    public init() {}
}

/// `{argument: state, in: [Done, Cancelled], tier: high}`: compared without regard to case.
public struct PolicyCondition: Sendable, Equatable {
    public var argument: String
    public var values: [String]
    public var tier: Tier

    func matches(_ arguments: JSONObject) -> Bool {
        guard let value = arguments[argument]?.stringValue?.lowercased() else { return false }
        return values.contains { $0.lowercased() == value }
    }
}

/// A tool's rule and its projects' overrides.
public struct ToolPolicy: Sendable, Equatable {
    public var rule = PolicyRule()
    public var projects: [String: PolicyRule] = [:]
}

/// What the policy says about one call.
public struct TierDecision: Sendable, Equatable {
    public var tier: Tier
    public var approval: ApprovalScope
    public var waitSeconds: Int
    public var approvers: Approvers
    /// How long a pending request stays open (a retry with the same arguments resumes the wait).
    public var requestOpenMinutes: Int
    /// Why this tier, in words ("state is Done"), or nil for the tool's plain tier.
    public var because: String?
}

/// The capability catalog: each tool's tier, per-project overrides, approval scope, wait and
/// approvers. Loaded from a YAML file (``PolicyFile``) or the built-in defaults (reads low, writes medium).
public struct CapabilityPolicy: Sendable, Equatable {
    public var approval: ApprovalScope = .session
    public var waitSeconds = 50
    public var approvers: Approvers = .owner
    public var requestOpenMinutes = 60
    public var tools: [String: ToolPolicy] = [:]
    /// Where it came from: a file path, or "built-in defaults".
    public var source = "built-in defaults"

    public init() {}

    /// Reads low, writes medium, nothing waits.
    public static let builtIn = CapabilityPolicy()

    /// The limits a policy's numbers must keep.
    public static let waitSecondsRange = 1...300
    public static let requestOpenMinutesRange = 1...10_080

    /// The tier a tool has when the policy does not name it.
    public static func defaultTier(_ tool: ToolDefinition) -> Tier { tool.readOnly ? .low : .medium }

    /// The decision for a call of `tool` on `project` with `arguments` (already schema-checked).
    public func decision(for tool: ToolDefinition, project: String?, arguments: JSONObject) -> TierDecision {
        let toolPolicy = tools[tool.name]
        let base = toolPolicy?.rule ?? PolicyRule()
        let override = project.flatMap { toolPolicy?.projects[$0] }
        var tier = override?.tier ?? base.tier ?? Self.defaultTier(tool)
        var because: String?
        for condition in (override?.when ?? []) + base.when where condition.matches(arguments) {
            tier = condition.tier
            because = "\(condition.argument) is \(arguments[condition.argument]?.stringValue ?? "")"
            break
        }
        var decision = TierDecision(
            tier: tier, approval: override?.approval ?? base.approval ?? approval,
            waitSeconds: override?.waitSeconds ?? base.waitSeconds ?? waitSeconds,
            approvers: override?.approvers ?? base.approvers ?? approvers, requestOpenMinutes: requestOpenMinutes, because: because)
        if tier == .critical {
            // Critical is admin-only and never covers more than the one call.
            decision.approvers = .admin
            decision.approval = .call
        }
        return decision
    }

    /// The tier a tool shows in tools/list: its own, before projects and conditions.
    public func listedTier(_ tool: ToolDefinition) -> (tier: Tier, varies: Bool) {
        let toolPolicy = tools[tool.name]
        let tier = toolPolicy?.rule.tier ?? Self.defaultTier(tool)
        let varies = !(toolPolicy?.projects.isEmpty ?? true) || !(toolPolicy?.rule.when.isEmpty ?? true)
        return (tier, varies)
    }

    /// The effective table, one row per tool and per project override.
    public func table() -> [[String]] {
        var rows: [[String]] = []
        for tool in ToolCatalog.all {
            let toolPolicy = tools[tool.name] ?? ToolPolicy()
            func row(_ project: String, _ rule: PolicyRule?) -> [String] {
                let base = toolPolicy.rule
                let tier = rule?.tier ?? base.tier ?? Self.defaultTier(tool)
                let conditions = (rule?.when ?? []) + base.when
                let when = conditions.map { "\($0.argument) in [\($0.values.joined(separator: ", "))] → \($0.tier.rawValue)" }
                let needs = tier.needsApproval || conditions.contains { $0.tier.needsApproval }
                let critical = tier == .critical
                return [
                    tool.name, project, tier.rawValue, when.isEmpty ? "-" : when.joined(separator: "; "),
                    needs ? (critical ? "call" : (rule?.approval ?? base.approval ?? approval).rawValue) : "-",
                    needs ? "\(rule?.waitSeconds ?? base.waitSeconds ?? waitSeconds)s" : "-",
                    needs ? (critical ? "admin+break-glass" : (rule?.approvers ?? base.approvers ?? approvers).rawValue) : "-",
                ]
            }
            rows.append(row("*", nil))
            for project in toolPolicy.projects.keys.sorted() { rows.append(row(project, toolPolicy.projects[project])) }
        }
        return rows
    }

    /// The tier in words for tools/list, so that an agent knows in advance what waits for a person.
    public func tierNote(for tool: ToolDefinition, ownerName: String) -> String {
        let toolPolicy = tools[tool.name] ?? ToolPolicy()
        let base = toolPolicy.rule.tier ?? Self.defaultTier(tool)
        func words(_ tier: Tier) -> String {
            switch tier {
            case .low: return "low (runs at once)"
            case .medium: return "medium (runs at once, flagged in the owner's audit)"
            case .high:
                let who = toolPolicy.rule.approvers ?? approvers
                let person = who == .owner ? ownerName : (who == .admin ? "an admin" : "\(ownerName) or an admin")
                return "high (waits up to \(toolPolicy.rule.waitSeconds ?? waitSeconds) s for \(person) to approve)"
            case .critical: return "critical (waits for an admin holding a break-glass grant)"
            }
        }
        var note = "Tier: \(words(base))"
        var exceptions: [String] = []
        for condition in toolPolicy.rule.when where condition.tier != base {
            exceptions.append("\(condition.tier.rawValue) when \(condition.argument) is \(condition.values.prefix(5).joined(separator: " or "))")
        }
        for project in toolPolicy.projects.keys.sorted() {
            if let tier = toolPolicy.projects[project]?.tier, tier != base { exceptions.append("\(tier.rawValue) on project \(project)") }
        }
        if !exceptions.isEmpty { note += "; " + exceptions.prefix(6).joined(separator: "; ") }
        if base.needsApproval || exceptions.contains(where: { $0.hasPrefix("high") || $0.hasPrefix("critical") }) {
            note += ". A call that waits sends progress; on approval_pending, call again with the same arguments to resume the wait"
        }
        return note + "."
    }

    public static let tableHeader = ["TOOL", "PROJECT", "TIER", "WHEN", "APPROVAL", "WAIT", "APPROVERS"]

    /// The table as JSON (`policy check --json`).
    public func tableJSON() -> JSONValue {
        let header = Self.tableHeader.map { $0.lowercased() }
        return [
            "source": .string(source), "requestOpenMinutes": .int(requestOpenMinutes),
            "tools": .array(
                table().map { row in .object(JSONObject(members: zip(header, row).map { .init(key: $0.0, value: .string($0.1)) })) }),
        ]
    }
}
