import AgentWire

/// Who is calling: the authenticated session, its device, agent, owner and grants.
public struct Principal: Sendable {
    public let agent: AgentRecord
    public let owner: UserRecord
    public let device: DeviceRecord
    public let session: SessionRecord
    public let grants: [GrantRecord]
    /// The principal epoch this principal was authenticated at (``PrincipalEpoch``).
    public internal(set) var epoch = "0"

    /// The scopes held on `projectKey`, or `nil` when the project is not granted at all.
    public func scopes(on projectKey: String) -> Set<String>? {
        grants.first { $0.projectKey == projectKey }.map { Set($0.scopes) }
    }

    /// Whether any grant holds `scope` (decides which tools are listed).
    public func holdsAnywhere(_ scope: String) -> Bool { grants.contains { $0.scopes.contains(scope) } }
}

/// What a tool returns: the structured result, its text rendering (untrusted text already marked
/// there), the JSON pointers of untrusted text inside the structured result (marked when the result
/// is built, see `Gateway.successResult`), and the ids it touched (for the audit).
public struct ToolOutput: Sendable {
    public var structured: JSONValue
    public var text: String
    public var untrustedPointers: [String]
    public var targetIDs: [String]
    public var project: String?
}

/// The tools over the embedded tracker. Each runs inside one store transaction; writes read back
/// what they stored and return only what they changed (see "Writes" below).
struct TrackerTools {
    let tool: ToolDefinition
    let arguments: JSONObject
    let principal: Principal
    let now: Int64
    /// Issues a tracker outside the store looked up before the transaction (Plane's), by key and
    /// by id: work sessions live in the gateway's store but may name them.
    var knownIssues: [String: (ProjectRecord, IssueRecord)] = [:]

    init(tool: ToolDefinition, arguments: JSONObject, principal: Principal, now: Int64) {
        self.tool = tool
        self.arguments = arguments
        self.principal = principal
        self.now = now
    }

    /// `knownIssues` with `issue` added under its key and its id.
    mutating func know(_ issue: IssueRecord, in project: ProjectRecord) {
        knownIssues["\(project.key)-\(issue.number)"] = (project, issue)
        knownIssues[issue.id] = (project, issue)
    }

    // MARK: Argument access

    func string(_ name: String) -> String? { arguments[name]?.stringValue }
    func strings(_ name: String) -> [String]? { arguments[name]?.arrayValue?.compactMap(\.stringValue) }

    /// Throws unless the agent holds this tool's scope on `projectKey`.
    func authorize(_ projectKey: String) throws {
        guard let scopes = principal.scopes(on: projectKey) else { throw GatewayError.projectNotGranted(projectKey) }
        guard scopes.contains(tool.scope) else { throw GatewayError.scopeDenied(tool: tool.name, scope: tool.scope, project: projectKey) }
    }

    static func parseIssueKey(_ key: String) throws -> (project: String, number: Int) {
        let upper = key.uppercased()
        guard let dash = upper.lastIndex(of: "-"), let number = Int(upper[upper.index(after: dash)...]), number > 0,
            dash != upper.startIndex
        else { throw GatewayError.validationFailed("issue key \"\(key)\" must look like WEB-12") }
        return (String(upper[..<dash]), number)
    }

    func grantedProject(_ key: String, in store: any StoreReader) throws -> ProjectRecord {
        let upper = key.uppercased()
        try authorize(upper)
        guard let project = try store.project(key: upper) else {
            throw GatewayError.notFound("project \(upper) does not exist; use list_projects to see granted projects")
        }
        return project
    }

    func grantedIssue(_ key: String, in store: any StoreReader) throws -> (ProjectRecord, IssueRecord) {
        if let known = knownIssues[key.uppercased()] {
            try authorize(known.0.key)
            return known
        }
        let parsed = try Self.parseIssueKey(key)
        let project = try grantedProject(parsed.project, in: store)
        guard let issue = try store.issue(projectID: project.id, number: parsed.number) else {
            throw GatewayError.notFound("issue \(parsed.project)-\(parsed.number) does not exist; use search_issues to find issues")
        }
        return (project, issue)
    }

    // MARK: Dispatch

    func run(reader store: any StoreReader) throws -> ToolOutput {
        switch tool.name {
        case "list_projects": return try listProjects(store)
        case "get_project_context": return try projectContext(store)
        case "search_issues": return try searchIssues(store)
        case "get_issue": return try getIssue(store)
        default: throw GatewayError.internalError
        }
    }

    func run(writer store: any StoreWriter) throws -> ToolOutput {
        let output = try dispatchWrite(store)
        try IssueHistory.record(tool: tool.name, arguments: arguments, output: output, principal: principal, at: now, in: store)
        return output
    }

    func dispatchWrite(_ store: any StoreWriter) throws -> ToolOutput {
        switch tool.name {
        case "create_issue": return try createIssue(store)
        case "update_issue": return try updateIssue(store)
        case "update_issue_blocks": return try updateBlocks(store)
        case "move_issue": return try moveIssue(store)
        case "comment_issue": return try commentIssue(store)
        case "set_issue_labels": return try setLabels(store)
        case "assign_issue": return try assignIssue(store)
        case "add_project_member": return try addProjectMember(store)
        case "start_work_session": return try startWorkSession(store)
        case "update_work_session": return try updateWorkSession(store)
        case "finish_work_session": return try finishWorkSession(store)
        default: return try run(reader: store)
        }
    }
}
