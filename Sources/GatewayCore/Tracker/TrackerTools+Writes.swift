import AgentWire

/// The write tools on issues and projects. Each answers with what it changed, not with what a
/// read scope would show.
extension TrackerTools {
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
        var view = try ProjectView(project: project, store: store)
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
        try view.loadPeople(stored.assigneeIDs, from: store)
        return createdAnswer(stored, view: view)
    }

    /// The answer of create_issue: the issue as stored (any tracker's).
    func createdAnswer(_ stored: IssueRecord, view: ProjectView) -> ToolOutput {
        let project = view.project
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
        return updatedAnswer(try storedIssue(issue, in: store), project: project)
    }

    /// The answer of update_issue: the fields the call set, as stored (any tracker's).
    func updatedAnswer(_ stored: IssueRecord, project: ProjectRecord) -> ToolOutput {
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
        return blocksAnswer(try storedIssue(issue, in: store), project: project, changes: changes)
    }

    /// The answer of update_issue_blocks: the blocks the call named, as stored (any tracker's).
    func blocksAnswer(_ stored: IssueRecord, project: ProjectRecord, changes: [IssueBlock]) -> ToolOutput {
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
        let view = try ProjectView(project: project, store: store)
        let state = try view.resolveState(string("state") ?? "", listValid: canRead(project))
        issue.stateID = state.id
        issue.updatedAt = now
        try store.updateIssue(issue)
        project = try store.project(id: project.id) ?? project
        return movedAnswer(try storedIssue(issue, in: store), project: project, view: view)
    }

    /// The answer of move_issue: the new state (any tracker's).
    func movedAnswer(_ stored: IssueRecord, project: ProjectRecord, view: ProjectView) -> ToolOutput {
        let name = view.states[stored.stateID]?.name
        return issueChange(
            stored, project: project, fields: [("state", view.reference(id: stored.stateID, name: name))], untrusted: ["/issue/state/name"],
            text: "Moved \(project.key)-\(stored.number) to \(name.map(UntrustedText.marked) ?? stored.stateID).")
    }

    func setLabels(_ store: any StoreWriter) throws -> ToolOutput {
        var (project, issue) = try grantedIssue(string("issue") ?? "", in: store)
        let view = try ProjectView(project: project, store: store)
        issue.labelIDs = try view.resolveLabels(strings("labels") ?? [], listValid: canRead(project))
        issue.updatedAt = now
        try store.updateIssue(issue)
        project = try store.project(id: project.id) ?? project
        return labelsAnswer(try storedIssue(issue, in: store), project: project, view: view)
    }

    /// The answer of set_issue_labels: the labels as stored (any tracker's).
    func labelsAnswer(_ stored: IssueRecord, project: ProjectRecord, view: ProjectView) -> ToolOutput {
        let names = stored.labelIDs.map { view.labels[$0].map { UntrustedText.marked($0.name) } ?? $0 }
        return issueChange(
            stored, project: project, fields: [("labels", .array(stored.labelIDs.map { view.reference(id: $0, name: view.labels[$0]?.name) }))],
            untrusted: stored.labelIDs.indices.map { "/issue/labels/\($0)/name" },
            text: "Set labels of \(project.key)-\(stored.number): \(names.isEmpty ? "none" : names.joined(separator: ", ")).")
    }

    func assignIssue(_ store: any StoreWriter) throws -> ToolOutput {
        var (project, issue) = try grantedIssue(string("issue") ?? "", in: store)
        let view = try ProjectView(project: project, store: store)
        let members = try view.resolveMembers(strings("assignees") ?? [], store: store, listValid: canRead(project))
        issue.assigneeIDs = members.map(\.id)
        issue.updatedAt = now
        try store.updateIssue(issue)
        project = try store.project(id: project.id) ?? project
        return assignedAnswer(try storedIssue(issue, in: store), project: project, view: view, members: members)
    }

    /// The answer of assign_issue: the assignees as stored (any tracker's).
    func assignedAnswer(_ stored: IssueRecord, project: ProjectRecord, view: ProjectView, members: [UserRecord]) -> ToolOutput {
        let names = Dictionary(members.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
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
        return commentedAnswer(stored, key: "\(project.key)-\(issue.number)", project: project)
    }

    /// The answer of comment_issue: the comment as stored (any tracker's).
    func commentedAnswer(_ stored: CommentRecord, key: String, project: ProjectRecord) -> ToolOutput {
        let rendered: JSONValue = [
            "id": .string(stored.id), "issue": .string(key),
            "author": ["userId": .string(stored.authorUserID), "agentId": stored.authorAgentID.map { .string($0) } ?? .null],
            "body": .string(UntrustedText.sanitize(stored.body)), "createdAt": .string(Timestamp.rfc3339(milliseconds: stored.createdAt)),
        ]
        return ToolOutput(
            structured: ["comment": rendered],
            text:
                "Commented on \(key) as agent \(principal.agent.id) for \(UntrustedText.marked(principal.owner.name)): \(UntrustedText.marked(stored.body))",
            untrustedPointers: ["/comment/body"], targetIDs: [stored.issueID, stored.id], project: project.key)
    }

    func addProjectMember(_ store: any StoreWriter) throws -> ToolOutput {
        let project = try grantedProject(string("project") ?? "", in: store)
        let user = try workspaceMember(string("member") ?? "", among: try store.users())
        let already = try store.members(projectID: project.id).contains { $0.id == user.id }
        if !already {
            try store.insertProjectMember(
                ProjectMemberRecord(projectID: project.id, userID: user.id, addedAt: now, addedByAgentID: principal.agent.id))
        }
        guard try store.members(projectID: project.id).contains(where: { $0.id == user.id }) else { throw GatewayError.internalError }
        return memberAnswer(user, project: project, already: already)
    }

    /// The answer of add_project_member (any tracker's).
    func memberAnswer(_ user: UserRecord, project: ProjectRecord, already: Bool) -> ToolOutput {
        ToolOutput(
            structured: [
                "project": .string(project.key), "member": ["id": .string(user.id), "name": .string(user.name)], "alreadyMember": .bool(already),
            ],
            text: already
                ? "\(user.id) (\(UntrustedText.marked(user.name))) was already a member of \(project.key)."
                : "Added \(user.id) (\(UntrustedText.marked(user.name))) to \(project.key).",
            untrustedPointers: ["/member/name"], targetIDs: [project.id, user.id], project: project.key)
    }

    /// The workspace member `named` (an id or a name).
    func workspaceMember(_ named: String, among users: [UserRecord]) throws -> UserRecord {
        let wanted = UntrustedText.unwrapped(named)
        // The one list a write error gives without project:read: the workspace's people are what
        // project:member:add_existing chooses from.
        guard let user = users.first(where: { $0.id == wanted }) ?? users.first(where: { $0.name.lowercased() == wanted.lowercased() }) else {
            throw GatewayError.validationFailed(
                "\"\(wanted)\" is not a member of the workspace (this tool cannot invite anyone); valid members: \(users.map(\.id).joined(separator: ", "))"
            )
        }
        return user
    }

    /// Notes a work session can hold; update_work_session refuses more.
    static let maximumNotesPerWorkSession = 500
}
