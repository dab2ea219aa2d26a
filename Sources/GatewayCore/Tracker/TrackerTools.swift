import AgentWire

/// Who is calling: the authenticated session, its device, agent, owner and grants.
public struct Principal: Sendable {
    public let agent: AgentRecord
    public let owner: UserRecord
    public let device: DeviceRecord
    public let session: SessionRecord
    public let grants: [GrantRecord]

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

    // MARK: Reads

    func listProjects(_ store: any StoreReader) throws -> ToolOutput {
        var items: [JSONValue] = []
        var untrusted: [String] = []
        var lines: [String] = []
        for project in try store.projects() {
            guard let scopes = principal.scopes(on: project.key), scopes.contains(Scope.projectRead) else { continue }
            let ordered = Scope.all.filter { scopes.contains($0) }
            untrusted += ["/projects/\(items.count)/name", "/projects/\(items.count)/description"]
            items.append([
                "key": .string(project.key), "name": .string(project.name), "description": .string(UntrustedText.sanitize(project.description)),
                "scopes": .array(ordered.map { .string($0) }),
            ])
            lines.append(
                "\(project.key) — \(UntrustedText.marked(project.name)): \(UntrustedText.marked(project.description))\n  scopes: \(ordered.joined(separator: ", "))"
            )
        }
        let text = lines.isEmpty ? "No projects are granted to this agent." : "Granted projects:\n" + lines.joined(separator: "\n")
        return ToolOutput(structured: ["projects": .array(items)], text: text, untrustedPointers: untrusted, targetIDs: [], project: nil)
    }

    func projectContext(_ store: any StoreReader) throws -> ToolOutput {
        let project = try grantedProject(string("project") ?? "", in: store)
        let context = try ProjectView(project: project, store: store)
        let members = try store.members(projectID: project.id)
        let structured: JSONValue = [
            "project": [
                "key": .string(project.key), "name": .string(project.name), "description": .string(UntrustedText.sanitize(project.description)),
            ],
            "states": .array(context.orderedStates.map { ["id": .string($0.id), "name": .string($0.name), "category": .string($0.category)] }),
            "labels": .array(context.orderedLabels.map { ["id": .string($0.id), "name": .string($0.name), "color": .string($0.color)] }),
            "members": .array(members.map { ["id": .string($0.id), "name": .string($0.name)] }),
            "priorities": .array(IssueVocabulary.priorities.map { .string($0) }),
            "blockNames": .array(IssueVocabulary.blockNames.map { .string($0) }),
        ]
        let text = """
            Project \(project.key) — \(UntrustedText.marked(project.name))
            Description: \(UntrustedText.marked(project.description))
            States: \(context.orderedStates.map { UntrustedText.marked($0.name) }.joined(separator: ", "))
            Labels: \(context.orderedLabels.map { UntrustedText.marked($0.name) }.joined(separator: ", "))
            Members: \(members.map { "\($0.id) (\(UntrustedText.marked($0.name)))" }.joined(separator: ", "))
            Priorities: \(IssueVocabulary.priorities.joined(separator: ", "))
            Block names: \(IssueVocabulary.blockNames.joined(separator: ", "))
            """
        let names =
            context.orderedStates.indices.map { "/states/\($0)/name" } + context.orderedLabels.indices.map { "/labels/\($0)/name" }
            + members.indices.map { "/members/\($0)/name" }
        return ToolOutput(
            structured: structured, text: text, untrustedPointers: ["/project/name", "/project/description"] + names, targetIDs: [project.id],
            project: project.key)
    }

    func searchIssues(_ store: any StoreReader) throws -> ToolOutput {
        let project = try grantedProject(string("project") ?? "", in: store)
        let view = try ProjectView(project: project, store: store)
        var query = IssueQuery(projectID: project.id, text: string("query"), afterNumber: 0, limit: arguments["limit"]?.intValue ?? 20)
        if let state = string("state") { query.stateID = try view.resolveState(state).id }
        if let label = string("label") { query.labelID = try view.resolveLabels([label]).first }
        if let assignee = string("assignee") { query.assigneeID = try view.resolveMembers([assignee], store: store).first?.id }
        if let cursor = string("cursor") {
            guard let bytes = Sodium.base64Decode(cursor, variant: .urlSafeNoPadding),
                let text = String(validating: bytes, as: UTF8.self), text.hasPrefix("n:"), let number = Int(text.dropFirst(2))
            else { throw GatewayError.validationFailed("cursor is not one this gateway issued; start again without cursor") }
            query.afterNumber = number
        }
        let fetchLimit = query.limit
        query.limit = fetchLimit + 1
        var issues = try store.searchIssues(query)
        var nextCursor: JSONValue = .null
        if issues.count > fetchLimit {
            issues.removeLast()
            nextCursor = .string(Sodium.base64Encode(Array("n:\(issues.last!.number)".utf8), variant: .urlSafeNoPadding))
        }
        var untrusted: [String] = []
        var items: [JSONValue] = []
        for (index, issue) in issues.enumerated() {
            items.append(view.render(issue, pointer: "/issues/\(index)", untrusted: &untrusted, includeBody: false))
        }
        var text = issues.isEmpty ? "No issues match." : issues.map { view.summaryLine($0) }.joined(separator: "\n")
        if case .string(let cursor) = nextCursor { text += "\nMore results: call again with cursor \"\(cursor)\"." }
        return ToolOutput(
            structured: ["issues": .array(items), "nextCursor": nextCursor], text: text, untrustedPointers: untrusted,
            targetIDs: issues.map(\.id), project: project.key)
    }

    /// Comments per page of get_issue, by default; at most 100 (the input schema's bound).
    static let defaultCommentPage = 20
    /// A page of comments stops early once their text passes this many bytes (at least one comment
    /// is always returned), so that a page is at most 256 KiB plus one comment of 20,000 characters.
    static let commentPageBytes = 256 * 1024

    func getIssue(_ store: any StoreReader) throws -> ToolOutput {
        let (project, issue) = try grantedIssue(string("issue") ?? "", in: store)
        let view = try ProjectView(project: project, store: store)
        let after = try string("cursor").map { try Self.commentPosition(cursor: $0) }
        let limit = arguments["limit"]?.intValue ?? Self.defaultCommentPage
        let fetched = try store.comments(issueID: issue.id, after: after, limit: limit + 1)
        var page: [CommentRecord] = []
        var bytes = 0
        for comment in fetched.prefix(limit) {
            if !page.isEmpty, bytes + comment.body.utf8.count > Self.commentPageBytes { break }
            page.append(comment)
            bytes += comment.body.utf8.count
        }
        let nextCursor: JSONValue = fetched.count > page.count ? page.last.map { .string(Self.cursor(for: $0)) } ?? .null : .null
        let total = try store.commentCount(issueID: issue.id)

        var untrusted: [String] = []
        let rendered = view.render(issue, pointer: "/issue", untrusted: &untrusted, includeBody: true)
        var commentItems: [JSONValue] = []
        var text = view.detailText(issue)
        if !page.isEmpty { text += "\nComments (\(page.count) of \(total), oldest first):" }
        for (index, comment) in page.enumerated() {
            commentItems.append(view.render(comment, issueKey: view.key(issue), pointer: "/comments/\(index)", untrusted: &untrusted))
            text += "\n- \(view.authorName(comment)) at \(Timestamp.rfc3339(milliseconds: comment.createdAt)): \(UntrustedText.marked(comment.body))"
        }
        if page.isEmpty, total > 0 { text += "\nNo more comments (\(total) in all)." }
        if case .string(let cursor) = nextCursor { text += "\nMore comments: call get_issue again with cursor \"\(cursor)\"." }
        return ToolOutput(
            structured: ["issue": rendered, "comments": .array(commentItems), "commentCount": .int(total), "nextCursor": nextCursor], text: text,
            untrustedPointers: untrusted, targetIDs: [issue.id], project: project.key)
    }

    static func cursor(for comment: CommentRecord) -> String {
        Sodium.base64Encode(Array("c:\(comment.createdAt):\(comment.id)".utf8), variant: .urlSafeNoPadding)
    }

    static func commentPosition(cursor: String) throws -> CommentPosition {
        let invalid = GatewayError.validationFailed("cursor is not one this gateway issued for comments; start again without cursor")
        guard let bytes = Sodium.base64Decode(cursor, variant: .urlSafeNoPadding), let text = String(validating: bytes, as: UTF8.self)
        else { throw invalid }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "c", let createdAt = Int64(parts[1]), parts[2].hasPrefix("cmt_"), parts[2].utf8.count <= 40 else {
            throw invalid
        }
        return CommentPosition(createdAt: createdAt, id: String(parts[2]))
    }

    // MARK: Writes
    //
    // A write answers with what it changed, never with what a read scope would show: create_issue
    // and start_work_session return the record they made (every field of it came from the call),
    // the other writes return the record's identity, its new `updatedAt` and only the fields the
    // call set, as stored (read back inside the transaction). An agent with only `issue:update`
    // learns nothing about an issue's state, labels, assignees or other blocks from a write.

    /// Whether the agent may read the project, which decides whether errors list valid names.
    func canRead(_ project: ProjectRecord) -> Bool { principal.scopes(on: project.key)?.contains(Scope.projectRead) == true }

    /// The answer of an issue write other than create_issue.
    func issueChange(
        _ issue: IssueRecord, project: ProjectRecord, fields: [(String, JSONValue)], untrusted: [String] = [], text: String
    ) -> ToolOutput {
        var object: JSONObject = ["id": .string(issue.id), "key": .string("\(project.key)-\(issue.number)"), "project": .string(project.key)]
        for (name, value) in fields { object[name] = value }
        object["updatedAt"] = .string(Timestamp.rfc3339(milliseconds: issue.updatedAt))
        return ToolOutput(
            structured: ["issue": .object(object)], text: text, untrustedPointers: untrusted, targetIDs: [issue.id], project: project.key)
    }

    /// The issue as stored after the change.
    func storedIssue(_ issue: IssueRecord, in store: any StoreReader) throws -> IssueRecord {
        guard let stored = try store.issue(id: issue.id) else { throw GatewayError.internalError }
        return stored
    }

    func createIssue(_ store: any StoreWriter) throws -> ToolOutput {
        let project = try grantedProject(string("project") ?? "", in: store)
        let view = try ProjectView(project: project, store: store)
        let listValid = canRead(project)
        let state = try string("state").map { try view.resolveState($0, listValid: listValid) } ?? view.defaultState()
        let issue = IssueRecord(
            id: "iss_\(ULID())", projectID: project.id, number: 0, title: string("title") ?? "", description: string("description") ?? "",
            priority: string("priority") ?? "none", stateID: state.id,
            labelIDs: try view.resolveLabels(strings("labels") ?? [], listValid: listValid),
            assigneeIDs: try view.resolveMembers(strings("assignees") ?? [], store: store, listValid: listValid).map(\.id),
            blocks: IssueBlocks.merge([], with: blockArguments()), createdByUserID: principal.owner.id, createdByAgentID: principal.agent.id,
            createdAt: now, updatedAt: now)
        let stored = try storedIssue(try store.insertIssue(issue), in: store)
        var untrusted: [String] = []
        let rendered = view.render(stored, pointer: "/issue", untrusted: &untrusted, includeBody: true)
        return ToolOutput(
            structured: ["issue": rendered], text: "Created \(view.key(stored)).\n" + view.detailText(stored), untrustedPointers: untrusted,
            targetIDs: [stored.id], project: project.key)
    }

    func blockArguments() -> [IssueBlock] {
        (arguments["blocks"]?.arrayValue ?? []).compactMap { item in
            guard let name = item["name"]?.stringValue, let text = item["text"]?.stringValue else { return nil }
            return IssueBlock(name: name, text: text)
        }
    }

    func updateIssue(_ store: any StoreWriter) throws -> ToolOutput {
        var (project, issue) = try grantedIssue(string("issue") ?? "", in: store)
        guard string("title") != nil || string("description") != nil || string("priority") != nil else {
            throw GatewayError.validationFailed("nothing to update: pass title, description or priority")
        }
        if let title = string("title") { issue.title = title }
        if let description = string("description") { issue.description = description }
        if let priority = string("priority") { issue.priority = priority }
        issue.updatedAt = now
        try store.updateIssue(issue)
        project = try store.project(id: project.id) ?? project
        let stored = try storedIssue(issue, in: store)
        var fields: [(String, JSONValue)] = []
        var untrusted: [String] = []
        var lines = ["Updated \(project.key)-\(stored.number)."]
        if string("title") != nil {
            fields.append(("title", .string(UntrustedText.sanitize(stored.title))))
            untrusted.append("/issue/title")
            lines.append("Title: \(UntrustedText.marked(stored.title))")
        }
        if string("description") != nil {
            fields.append(("description", .string(UntrustedText.sanitize(stored.description))))
            untrusted.append("/issue/description")
            lines.append("Description: \(UntrustedText.marked(stored.description))")
        }
        if string("priority") != nil {
            fields.append(("priority", .string(stored.priority)))
            lines.append("Priority: \(stored.priority)")
        }
        return issueChange(stored, project: project, fields: fields, untrusted: untrusted, text: lines.joined(separator: "\n"))
    }

    func updateBlocks(_ store: any StoreWriter) throws -> ToolOutput {
        var (project, issue) = try grantedIssue(string("issue") ?? "", in: store)
        let changes = blockArguments()
        issue.blocks = IssueBlocks.merge(issue.blocks, with: changes)
        issue.updatedAt = now
        try store.updateIssue(issue)
        project = try store.project(id: project.id) ?? project
        let stored = try storedIssue(issue, in: store)
        let named = Set(changes.map(\.name))
        var blocks: [JSONValue] = []
        var untrusted: [String] = []
        var lines: [String] = []
        for name in IssueVocabulary.blockNames where named.contains(name) {
            let text = stored.blocks.first { $0.name == name }?.text ?? ""
            untrusted.append("/issue/blocks/\(blocks.count)/text")
            blocks.append(["name": .string(name), "text": .string(UntrustedText.sanitize(text))])
            lines.append(text.isEmpty ? "\(name): cleared" : "\(name): \(UntrustedText.marked(text))")
        }
        let header = "Updated blocks of \(project.key)-\(stored.number)" + (lines.isEmpty ? " (no block named)." : ".")
        return issueChange(
            stored, project: project, fields: [("blocks", .array(blocks))], untrusted: untrusted, text: ([header] + lines).joined(separator: "\n"))
    }

    func moveIssue(_ store: any StoreWriter) throws -> ToolOutput {
        var (project, issue) = try grantedIssue(string("issue") ?? "", in: store)
        let view = try ProjectView(project: project, store: store, withUsers: false)
        let state = try view.resolveState(string("state") ?? "", listValid: canRead(project))
        issue.stateID = state.id
        issue.updatedAt = now
        try store.updateIssue(issue)
        project = try store.project(id: project.id) ?? project
        let stored = try storedIssue(issue, in: store)
        let name = view.states[stored.stateID]?.name
        return issueChange(
            stored, project: project, fields: [("state", view.reference(id: stored.stateID, name: name))], untrusted: ["/issue/state/name"],
            text: "Moved \(project.key)-\(stored.number) to \(name.map(UntrustedText.marked) ?? stored.stateID).")
    }

    func setLabels(_ store: any StoreWriter) throws -> ToolOutput {
        var (project, issue) = try grantedIssue(string("issue") ?? "", in: store)
        let view = try ProjectView(project: project, store: store, withUsers: false)
        issue.labelIDs = try view.resolveLabels(strings("labels") ?? [], listValid: canRead(project))
        issue.updatedAt = now
        try store.updateIssue(issue)
        project = try store.project(id: project.id) ?? project
        let stored = try storedIssue(issue, in: store)
        let names = stored.labelIDs.map { view.labels[$0].map { UntrustedText.marked($0.name) } ?? $0 }
        return issueChange(
            stored, project: project, fields: [("labels", .array(stored.labelIDs.map { view.reference(id: $0, name: view.labels[$0]?.name) }))],
            untrusted: stored.labelIDs.indices.map { "/issue/labels/\($0)/name" },
            text: "Set labels of \(project.key)-\(stored.number): \(names.isEmpty ? "none" : names.joined(separator: ", ")).")
    }

    func assignIssue(_ store: any StoreWriter) throws -> ToolOutput {
        var (project, issue) = try grantedIssue(string("issue") ?? "", in: store)
        let view = try ProjectView(project: project, store: store, withUsers: false)
        let members = try view.resolveMembers(strings("assignees") ?? [], store: store, listValid: canRead(project))
        issue.assigneeIDs = members.map(\.id)
        issue.updatedAt = now
        try store.updateIssue(issue)
        project = try store.project(id: project.id) ?? project
        let stored = try storedIssue(issue, in: store)
        let names = Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0.name) })
        let assignees = stored.assigneeIDs.map { "\($0) (\(names[$0].map(UntrustedText.marked) ?? $0))" }
        return issueChange(
            stored, project: project, fields: [("assignees", .array(stored.assigneeIDs.map { view.reference(id: $0, name: names[$0]) }))],
            untrusted: stored.assigneeIDs.indices.map { "/issue/assignees/\($0)/name" },
            text: "Assigned \(project.key)-\(stored.number) to \(assignees.isEmpty ? "nobody" : assignees.joined(separator: ", ")).")
    }

    func commentIssue(_ store: any StoreWriter) throws -> ToolOutput {
        let (project, issue) = try grantedIssue(string("issue") ?? "", in: store)
        let comment = CommentRecord(
            id: "cmt_\(ULID())", issueID: issue.id, authorUserID: principal.owner.id, authorAgentID: principal.agent.id,
            body: string("body") ?? "", createdAt: now)
        try store.insertComment(comment)
        guard let stored = try store.comment(id: comment.id) else { throw GatewayError.internalError }
        let key = "\(project.key)-\(issue.number)"
        let rendered: JSONValue = [
            "id": .string(stored.id), "issue": .string(key),
            "author": ["userId": .string(stored.authorUserID), "agentId": stored.authorAgentID.map { .string($0) } ?? .null],
            "body": .string(UntrustedText.sanitize(stored.body)), "createdAt": .string(Timestamp.rfc3339(milliseconds: stored.createdAt)),
        ]
        return ToolOutput(
            structured: ["comment": rendered],
            text:
                "Commented on \(key) as agent \(principal.agent.id) for \(UntrustedText.marked(principal.owner.name)): \(UntrustedText.marked(stored.body))",
            untrustedPointers: ["/comment/body"], targetIDs: [issue.id, stored.id], project: project.key)
    }

    func addProjectMember(_ store: any StoreWriter) throws -> ToolOutput {
        let project = try grantedProject(string("project") ?? "", in: store)
        let wanted = UntrustedText.unwrapped(string("member") ?? "")
        let users = try store.users()
        // The one list a write error gives without project:read: the workspace's people are what
        // project:member:add_existing chooses from.
        guard let user = users.first(where: { $0.id == wanted }) ?? users.first(where: { $0.name.lowercased() == wanted.lowercased() }) else {
            throw GatewayError.validationFailed(
                "\"\(wanted)\" is not a member of the workspace (this tool cannot invite anyone); valid members: \(users.map(\.id).joined(separator: ", "))"
            )
        }
        let already = try store.members(projectID: project.id).contains { $0.id == user.id }
        if !already {
            try store.insertProjectMember(
                ProjectMemberRecord(projectID: project.id, userID: user.id, addedAt: now, addedByAgentID: principal.agent.id))
        }
        guard try store.members(projectID: project.id).contains(where: { $0.id == user.id }) else { throw GatewayError.internalError }
        return ToolOutput(
            structured: [
                "project": .string(project.key), "member": ["id": .string(user.id), "name": .string(user.name)], "alreadyMember": .bool(already),
            ],
            text: already
                ? "\(user.id) (\(UntrustedText.marked(user.name))) was already a member of \(project.key)."
                : "Added \(user.id) (\(UntrustedText.marked(user.name))) to \(project.key).",
            untrustedPointers: ["/member/name"], targetIDs: [project.id, user.id], project: project.key)
    }

    /// Notes a work session can hold; update_work_session refuses more.
    static let maximumNotesPerWorkSession = 500

    /// The answer of a work-session write: identity, status and times, plus the fields in `fields`.
    func workSessionChange(
        _ stored: WorkSessionRecord, project: ProjectRecord, fields: [(String, JSONValue)], untrusted: [String], text: String
    ) -> ToolOutput {
        var object: JSONObject = ["id": .string(stored.id), "project": .string(project.key), "status": .string(stored.status)]
        for (name, value) in fields { object[name] = value }
        object["updatedAt"] = .string(Timestamp.rfc3339(milliseconds: stored.updatedAt))
        return ToolOutput(
            structured: ["workSession": .object(object)], text: text, untrustedPointers: untrusted, targetIDs: [stored.id], project: project.key)
    }

    func storedWorkSession(_ id: String, in store: any StoreReader) throws -> WorkSessionRecord {
        guard let stored = try store.workSession(id: id) else { throw GatewayError.internalError }
        return stored
    }

    func issueInProject(_ key: String?, project: ProjectRecord, store: any StoreReader) throws -> IssueRecord? {
        guard let key else { return nil }
        let (issueProject, issue) = try grantedIssue(key, in: store)
        guard issueProject.id == project.id else {
            throw GatewayError.validationFailed("issue \(key) belongs to project \(issueProject.key), not \(project.key)")
        }
        return issue
    }

    func startWorkSession(_ store: any StoreWriter) throws -> ToolOutput {
        let project = try grantedProject(string("project") ?? "", in: store)
        let issue = try issueInProject(string("issue"), project: project, store: store)
        let session = WorkSessionRecord(
            id: "wks_\(ULID())", agentID: principal.agent.id, projectID: project.id, issueID: issue?.id, summary: string("summary") ?? "",
            status: "active", result: nil, startedAt: now, updatedAt: now, finishedAt: nil)
        try store.insertWorkSession(session)
        let stored = try storedWorkSession(session.id, in: store)
        let issueKey = issue.map { "\(project.key)-\($0.number)" }
        var text = "Started work session \(stored.id) in \(project.key) (\(stored.status))."
        if let issueKey { text += " Issue: \(issueKey)." }
        text += "\nSummary: \(UntrustedText.marked(stored.summary))"
        return workSessionChange(
            stored, project: project,
            fields: [
                ("issue", issueKey.map { .string($0) } ?? .null), ("summary", .string(UntrustedText.sanitize(stored.summary))), ("noteCount", 0),
                ("result", .null), ("startedAt", .string(Timestamp.rfc3339(milliseconds: stored.startedAt))), ("finishedAt", .null),
            ], untrusted: ["/workSession/summary"], text: text)
    }

    func activeWorkSession(_ store: any StoreReader) throws -> (WorkSessionRecord, ProjectRecord) {
        let id = string("workSession") ?? ""
        guard let session = try store.workSession(id: id), session.agentID == principal.agent.id,
            let project = try store.project(id: session.projectID)
        else { throw GatewayError.notFound("work session \(id) does not exist for this agent; start one with start_work_session") }
        try authorize(project.key)
        guard session.status == "active" else {
            throw GatewayError.validationFailed("work session \(id) is already \(session.status); start a new one with start_work_session")
        }
        return (session, project)
    }

    func updateWorkSession(_ store: any StoreWriter) throws -> ToolOutput {
        var (session, project) = try activeWorkSession(store)
        let position = try store.workSessionNoteCount(workSessionID: session.id)
        guard position < Self.maximumNotesPerWorkSession else {
            throw GatewayError.validationFailed(
                "work session \(session.id) already has \(Self.maximumNotesPerWorkSession) notes; finish it and start a new one")
        }
        let issue = try issueInProject(string("issue"), project: project, store: store)
        if let issue { session.issueID = issue.id }
        session.updatedAt = now
        try store.updateWorkSession(session)
        let note = WorkSessionNote(workSessionID: session.id, position: position, at: now, text: string("note") ?? "", issueID: session.issueID)
        try store.insertWorkSessionNote(note)
        let stored = try storedWorkSession(session.id, in: store)
        guard let storedNote = try store.workSessionNotes(workSessionID: session.id).last, storedNote.position == position else {
            throw GatewayError.internalError
        }
        let noteIssue: JSONValue
        if let issueID = storedNote.issueID, let noted = try store.issue(id: issueID) {
            noteIssue = .string("\(project.key)-\(noted.number)")
        } else {
            noteIssue = .null
        }
        var fields: [(String, JSONValue)] = [
            (
                "note",
                [
                    "at": .string(Timestamp.rfc3339(milliseconds: storedNote.at)), "text": .string(UntrustedText.sanitize(storedNote.text)),
                    "issue": noteIssue,
                ]
            ),
            ("noteCount", .int(position + 1)),
        ]
        if let issue { fields.insert(("issue", .string("\(project.key)-\(issue.number)")), at: 0) }
        var text = "Added note \(position + 1) to work session \(stored.id) in \(project.key)"
        if let issue = noteIssue.stringValue { text += " (issue \(issue))" }
        text += ": \(UntrustedText.marked(storedNote.text))"
        return workSessionChange(stored, project: project, fields: fields, untrusted: ["/workSession/note/text"], text: text)
    }

    func finishWorkSession(_ store: any StoreWriter) throws -> ToolOutput {
        var (session, project) = try activeWorkSession(store)
        session.status = string("status") ?? "completed"
        session.result = string("result")
        session.finishedAt = now
        session.updatedAt = now
        try store.updateWorkSession(session)
        let stored = try storedWorkSession(session.id, in: store)
        let result = stored.result ?? ""
        return workSessionChange(
            stored, project: project,
            fields: [
                ("result", .string(UntrustedText.sanitize(result))),
                ("finishedAt", stored.finishedAt.map { .string(Timestamp.rfc3339(milliseconds: $0)) } ?? .null),
            ], untrusted: ["/workSession/result"],
            text: "Finished work session \(stored.id) in \(project.key) (\(stored.status)).\nResult: \(UntrustedText.marked(result))")
    }
}

/// Structured block edits: set by name, empty text clears, order follows the vocabulary.
enum IssueBlocks {
    static func merge(_ existing: [IssueBlock], with changes: [IssueBlock]) -> [IssueBlock] {
        var byName: [String: String] = [:]
        for block in existing { byName[block.name] = block.text }
        for change in changes { byName[change.name] = change.text }
        return IssueVocabulary.blockNames.compactMap { name in
            guard let text = byName[name], !text.isEmpty else { return nil }
            return IssueBlock(name: name, text: text)
        }
    }
}

/// One project's states, labels and people, for resolving names and rendering issues.
struct ProjectView {
    let project: ProjectRecord
    let orderedStates: [StateRecord]
    let orderedLabels: [LabelRecord]
    let states: [String: StateRecord]
    let labels: [String: LabelRecord]
    let users: [String: UserRecord]

    /// `withUsers: false` skips loading the workspace's people (for writes that render no one),
    /// which keeps those write transactions short.
    init(project: ProjectRecord, store: any StoreReader, withUsers: Bool = true) throws {
        self.project = project
        orderedStates = try store.states(projectID: project.id)
        orderedLabels = try store.labels(projectID: project.id)
        states = Dictionary(uniqueKeysWithValues: orderedStates.map { ($0.id, $0) })
        labels = Dictionary(uniqueKeysWithValues: orderedLabels.map { ($0.id, $0) })
        users = withUsers ? Dictionary(uniqueKeysWithValues: try store.users().map { ($0.id, $0) }) : [:]
    }

    func key(_ issue: IssueRecord) -> String { "\(project.key)-\(issue.number)" }

    func defaultState() throws -> StateRecord {
        guard let state = orderedStates.first(where: { $0.category == "backlog" }) ?? orderedStates.first else {
            throw GatewayError.validationFailed("project \(project.key) has no states; ask the owner to configure the project")
        }
        return state
    }

    /// The tail of an unknown-name error: the valid names when the agent may read the project
    /// (`listValid`), otherwise where to find them, so that a write scope does not read.
    func validNames(_ kind: String, _ names: [String], listValid: Bool) -> String {
        listValid
            ? "valid \(kind): \(names.joined(separator: ", "))"
            : "get_project_context lists the valid \(kind) (it needs project:read on \(project.key))"
    }

    func resolveState(_ marked: String, listValid: Bool = true) throws -> StateRecord {
        let name = UntrustedText.unwrapped(marked)
        if let state = orderedStates.first(where: { $0.id == name || $0.name.lowercased() == name.lowercased() }) { return state }
        throw GatewayError.validationFailed(
            "unknown state \"\(name)\" in \(project.key); \(validNames("states", orderedStates.map { UntrustedText.marked($0.name) }, listValid: listValid))"
        )
    }

    func resolveLabels(_ names: [String], listValid: Bool = true) throws -> [String] {
        var ids: [String] = []
        for name in names.map(UntrustedText.unwrapped) {
            guard let label = orderedLabels.first(where: { $0.id == name || $0.name.lowercased() == name.lowercased() }) else {
                throw GatewayError.validationFailed(
                    "unknown label \"\(name)\" in \(project.key); \(validNames("labels", orderedLabels.map { UntrustedText.marked($0.name) }, listValid: listValid))"
                )
            }
            if !ids.contains(label.id) { ids.append(label.id) }
        }
        return ids
    }

    func resolveMembers(_ names: [String], store: any StoreReader, listValid: Bool = true) throws -> [UserRecord] {
        let members = try store.members(projectID: project.id)
        var resolved: [UserRecord] = []
        for name in names.map(UntrustedText.unwrapped) {
            guard let member = members.first(where: { $0.id == name }) ?? members.first(where: { $0.name.lowercased() == name.lowercased() }) else {
                throw GatewayError.validationFailed(
                    "unknown member \"\(name)\" in \(project.key); \(validNames("members", members.map(\.id), listValid: listValid))")
            }
            if !resolved.contains(where: { $0.id == member.id }) { resolved.append(member) }
        }
        return resolved
    }

    func reference(id: String, name: String?) -> JSONValue { ["id": .string(id), "name": .string(name ?? id)] }

    func render(_ issue: IssueRecord, pointer: String, untrusted: inout [String], includeBody: Bool) -> JSONValue {
        var object: JSONObject = [
            "id": .string(issue.id), "key": .string(key(issue)), "project": .string(project.key),
            "title": .string(UntrustedText.sanitize(issue.title)),
        ]
        untrusted.append("\(pointer)/title")
        if includeBody {
            object["description"] = .string(UntrustedText.sanitize(issue.description))
            untrusted.append("\(pointer)/description")
        }
        object["priority"] = .string(issue.priority)
        object["state"] = reference(id: issue.stateID, name: states[issue.stateID]?.name)
        object["labels"] = .array(issue.labelIDs.map { reference(id: $0, name: labels[$0]?.name) })
        object["assignees"] = .array(issue.assigneeIDs.map { reference(id: $0, name: users[$0]?.name) })
        untrusted.append("\(pointer)/state/name")
        untrusted += issue.labelIDs.indices.map { "\(pointer)/labels/\($0)/name" }
        untrusted += issue.assigneeIDs.indices.map { "\(pointer)/assignees/\($0)/name" }
        if includeBody {
            object["blocks"] = .array(
                issue.blocks.enumerated().map { index, block in
                    untrusted.append("\(pointer)/blocks/\(index)/text")
                    return ["name": .string(block.name), "text": .string(UntrustedText.sanitize(block.text))]
                })
        }
        object["createdBy"] = ["userId": .string(issue.createdByUserID), "agentId": issue.createdByAgentID.map { .string($0) } ?? .null]
        object["createdAt"] = .string(Timestamp.rfc3339(milliseconds: issue.createdAt))
        object["updatedAt"] = .string(Timestamp.rfc3339(milliseconds: issue.updatedAt))
        return .object(object)
    }

    func render(_ comment: CommentRecord, issueKey: String, pointer: String, untrusted: inout [String]) -> JSONValue {
        untrusted.append("\(pointer)/body")
        return [
            "id": .string(comment.id), "issue": .string(issueKey),
            "author": ["userId": .string(comment.authorUserID), "agentId": comment.authorAgentID.map { .string($0) } ?? .null],
            "body": .string(UntrustedText.sanitize(comment.body)), "createdAt": .string(Timestamp.rfc3339(milliseconds: comment.createdAt)),
        ]
    }

    func authorName(_ comment: CommentRecord) -> String {
        let owner = users[comment.authorUserID].map { UntrustedText.marked($0.name) } ?? comment.authorUserID
        return comment.authorAgentID.map { "agent \($0) for \(owner)" } ?? owner
    }

    func summaryLine(_ issue: IssueRecord) -> String {
        let state = states[issue.stateID].map { UntrustedText.marked($0.name) } ?? issue.stateID
        return "\(key(issue)) [\(state)] \(issue.priority): \(UntrustedText.marked(issue.title))"
    }

    func detailText(_ issue: IssueRecord) -> String {
        var lines = [summaryLine(issue)]
        let labelNames = issue.labelIDs.map { labels[$0].map { UntrustedText.marked($0.name) } ?? $0 }
        let assignees = issue.assigneeIDs.map { users[$0].map { "\($0.id) (\(UntrustedText.marked($0.name)))" } ?? $0 }
        lines.append(
            "Labels: \(labelNames.isEmpty ? "none" : labelNames.joined(separator: ", ")) · Assignees: \(assignees.isEmpty ? "none" : assignees.joined(separator: ", "))"
        )
        if !issue.description.isEmpty { lines.append("Description: \(UntrustedText.marked(issue.description))") }
        for block in issue.blocks { lines.append("\(block.name): \(UntrustedText.marked(block.text))") }
        return lines.joined(separator: "\n")
    }
}
