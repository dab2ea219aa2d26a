import AgentWire
import Logging

/// The write tools over Plane, exactly once across the gateway and Plane.
///
/// A write first asks the gateway whether its idempotency key already has an answer (a replay).
/// Then it changes Plane, and last it stores the gateway's record of the change (idempotency
/// record and audit event) in one transaction. Everything it creates in Plane (work items and
/// comments) carries `external_source = agent-gateway` and an `external_id` derived from the
/// agent-scoped idempotency key, and Plane answers a second create with the same pair with 409 and
/// the existing id: a retry after a lost answer, or after the gateway died between Plane's write and
/// its own record, finds what was made instead of making it twice. Updates send absolute values
/// (this state, these labels), so that repeating one leaves the same work item.
///
/// Every change is visible in Plane as the agent's: comments end with a line naming the agent and
/// its owner, and every other change to a work item adds a short note comment saying what the agent
/// did, with its own external id so that a retry does not post it twice.
extension PlaneTracker {
    static let logger = Logger(label: "agent-gateway.plane")

    func write(_ tools: TrackerTools, _ write: TrackerWrite) async throws -> JSONValue {
        if let replayed = try await write.transaction({ try write.replay($0) }) { return replayed }
        let output: ToolOutput
        switch tools.tool.name {
        case "start_work_session", "update_work_session", "finish_work_session":
            return try await workSession(tools, write)
        case "create_issue": output = try await createIssue(tools, externalID: write.externalID)
        case "comment_issue": output = try await commentIssue(tools, externalID: write.externalID)
        case "add_project_member": output = try await addProjectMember(tools)
        default: output = try await updateIssue(tools, externalID: write.externalID)
        }
        guard let result = try await write.transaction({ try write.commit(output, $0) }) else { throw GatewayError.internalError }
        return result
    }

    func externalFields(_ externalID: String) -> JSONObject {
        ["external_source": .string(Self.externalSource), "external_id": .string(externalID)]
    }

    /// The project's view with the calling agent's owner among the people (the author of what the agent makes).
    func writerView(_ tools: TrackerTools, _ project: ProjectRecord) async throws -> (ProjectView, PlaneDirectory.Vocabulary) {
        let vocabulary = try await directory.vocabulary(of: project, client)
        let view = ProjectView(
            project: project, states: vocabulary.states, labels: vocabulary.labels, users: vocabulary.members + [tools.principal.owner])
        return (view, vocabulary)
    }

    /// The created record, or the one an earlier try with the same external id created (409).
    func createdObject(_ answer: PlaneClient.Answer, path: String, what: String) async throws -> JSONValue {
        guard answer.status == 409 else { return answer.json }
        guard let id = answer.json["id"]?.stringValue, id.utf8.count <= 64 else {
            throw GatewayError.trackerRejected("Plane refused \(what) as a duplicate without naming it: \(PlaneClient.reason(answer.json))")
        }
        return try await client.object(path + "\(id)/", what: what)
    }

    /// Posts the note that shows a change in Plane as the agent's. A note that cannot be posted
    /// does not fail the call: the change is made, and the gateway's audit names the agent.
    func note(_ text: String, on issue: IssueRecord, in project: ProjectRecord, _ tools: TrackerTools, externalID: String) async {
        let trailer = PlaneComments.trailer(
            agentName: tools.principal.agent.name, agentID: tools.principal.agent.id, ownerName: tools.principal.owner.name)
        var body = externalFields(externalID + ":note")
        body["comment_html"] = .string(PlaneComments.html(body: text, trailer: trailer))
        do {
            _ = try await client.create(
                "projects/\(project.id)/issues/\(issue.id)/comments/", .object(body), what: "a note on \(project.key)-\(issue.number)")
        } catch {
            Self.logger.warning(
                "could not post the change note on a Plane work item",
                metadata: ["tool": "\(tools.tool.name)", "error": "\((error as? GatewayError)?.code.rawValue ?? "internal_error")"])
        }
    }

    // MARK: Work items

    func createIssue(_ tools: TrackerTools, externalID: String) async throws -> ToolOutput {
        let project = try await grantedProject(tools, tools.string("project") ?? "")
        let (view, vocabulary) = try await writerView(tools, project)
        let listValid = tools.canRead(project)
        let state = try tools.string("state").map { try view.resolveState($0, listValid: listValid) } ?? view.defaultState()
        let labels = try view.resolveLabels(tools.strings("labels") ?? [], listValid: listValid)
        let assignees = try view.resolveMembers(tools.strings("assignees") ?? [], among: vocabulary.members, listValid: listValid)
        let blocks = IssueBlocks.merge([], with: tools.blockArguments())
        var body = externalFields(externalID)
        body["name"] = .string(tools.string("title") ?? "")
        body["description_html"] = .string(PlaneHTML.descriptionHTML(leadingHTML: PlaneHTML.html(tools.string("description") ?? ""), blocks: blocks))
        body["priority"] = .string(tools.string("priority") ?? "none")
        body["state"] = .string(state.id)
        body["labels"] = .array(labels.map { .string($0) })
        body["assignees"] = .array(assignees.map { .string($0.id) })
        let path = "projects/\(project.id)/issues/"
        let answer = try await client.create(path, .object(body), what: "a work item in \(project.key)")
        var issue = try PlaneIssue(try await createdObject(answer, path: path, what: "a work item in \(project.key)"), project: project).record
        issue.createdByUserID = tools.principal.owner.id
        issue.createdByAgentID = tools.principal.agent.id
        await note("Created this work item.", on: issue, in: project, tools, externalID: externalID)
        return tools.createdAnswer(issue, view: view)
    }

    /// update_issue, update_issue_blocks, move_issue, set_issue_labels and assign_issue: one PATCH
    /// of absolute values, then the note.
    func updateIssue(_ tools: TrackerTools, externalID: String) async throws -> ToolOutput {
        let (project, _, current) = try await grantedIssue(tools, tools.string("issue") ?? "")
        let (view, vocabulary) = try await writerView(tools, project)
        let listValid = tools.canRead(project)
        var body: JSONObject = [:]
        let noteText: String
        var members: [UserRecord] = []
        switch tools.tool.name {
        case "update_issue":
            guard tools.string("title") != nil || tools.string("description") != nil || tools.string("priority") != nil else {
                throw GatewayError.validationFailed("nothing to update: pass title, description or priority")
            }
            if let title = tools.string("title") { body["name"] = .string(title) }
            if let description = tools.string("description") {
                body["description_html"] = .string(
                    PlaneHTML.descriptionHTML(leadingHTML: PlaneHTML.html(description), blocks: []) + current.description.blocksHTML)
            }
            if let priority = tools.string("priority") { body["priority"] = .string(priority) }
            noteText = "Changed the " + ["title", "description", "priority"].filter { tools.string($0) != nil }.joined(separator: ", ") + "."
        case "update_issue_blocks":
            let blocks = IssueBlocks.merge(current.description.blocks, with: tools.blockArguments())
            body["description_html"] = .string(PlaneHTML.descriptionHTML(leadingHTML: current.description.leadingHTML, blocks: blocks))
            noteText = "Edited the sections: " + tools.blockArguments().map(\.name).joined(separator: ", ") + "."
        case "move_issue":
            let state = try view.resolveState(tools.string("state") ?? "", listValid: listValid)
            body["state"] = .string(state.id)
            noteText = "Moved to \(state.name)."
        case "set_issue_labels":
            let labels = try view.resolveLabels(tools.strings("labels") ?? [], listValid: listValid)
            body["labels"] = .array(labels.map { .string($0) })
            noteText = "Set the labels: " + (labels.isEmpty ? "none" : labels.compactMap { view.labels[$0]?.name }.joined(separator: ", ")) + "."
        case "assign_issue":
            members = try view.resolveMembers(tools.strings("assignees") ?? [], among: vocabulary.members, listValid: listValid)
            body["assignees"] = .array(members.map { .string($0.id) })
            noteText = "Assigned to " + (members.isEmpty ? "nobody" : members.map(\.name).joined(separator: ", ")) + "."
        default:
            throw GatewayError.internalError
        }
        let key = "\(project.key)-\(current.record.number)"
        let json = try await client.update("projects/\(project.id)/issues/\(current.record.id)/", .object(body), what: "work item \(key)")
        let stored = try PlaneIssue(json, project: project).record
        await note(noteText, on: stored, in: project, tools, externalID: externalID)
        switch tools.tool.name {
        case "update_issue": return tools.updatedAnswer(stored, project: project)
        case "update_issue_blocks": return tools.blocksAnswer(stored, project: project, changes: tools.blockArguments())
        case "move_issue": return tools.movedAnswer(stored, project: project, view: view)
        case "set_issue_labels": return tools.labelsAnswer(stored, project: project, view: view)
        default: return tools.assignedAnswer(stored, project: project, view: view, members: vocabulary.members)
        }
    }

    func commentIssue(_ tools: TrackerTools, externalID: String) async throws -> ToolOutput {
        let (project, issue, _) = try await grantedIssue(tools, tools.string("issue") ?? "")
        let key = "\(project.key)-\(issue.number)"
        let trailer = PlaneComments.trailer(
            agentName: tools.principal.agent.name, agentID: tools.principal.agent.id, ownerName: tools.principal.owner.name)
        var body = externalFields(externalID)
        body["comment_html"] = .string(PlaneComments.html(body: tools.string("body") ?? "", trailer: trailer))
        let path = "projects/\(project.id)/issues/\(issue.id)/comments/"
        let answer = try await client.create(path, .object(body), what: "a comment on \(key)")
        guard var comment = PlaneComments.record(try await createdObject(answer, path: path, what: "a comment on \(key)"), issueID: issue.id) else {
            throw GatewayError.trackerRejected("Plane answered the comment on \(key) without an id; check that the Plane API is version 1")
        }
        comment.authorUserID = tools.principal.owner.id
        comment.authorAgentID = tools.principal.agent.id
        return tools.commentedAnswer(comment, key: key, project: project)
    }

    /// Adds an existing workspace member to the project as a member (Plane role 15). Needs the bot
    /// to be an admin of the project in Plane.
    func addProjectMember(_ tools: TrackerTools) async throws -> ToolOutput {
        let project = try await grantedProject(tools, tools.string("project") ?? "")
        let user = try tools.workspaceMember(tools.string("member") ?? "", among: try await directory.workspaceMembers(client))
        let already = try await directory.vocabulary(of: project, client).members.contains { $0.id == user.id }
        if !already {
            let answer = try await client.send(.post, "projects/\(project.id)/members/", body: ["member": .string(user.id), "role": 15])
            // Plane answers a member that is already there with 400 or 409; either way they are a member now.
            if !(200..<300).contains(answer.status), answer.status != 409 {
                _ = try client.expectSuccess(answer, what: "adding a member to \(project.key)")
            }
            directory.forget(projectID: project.id)
        }
        return tools.memberAnswer(user, project: project, already: already)
    }

    // MARK: Work sessions: in the gateway, naming Plane's projects and work items

    func workSession(_ tools: TrackerTools, _ write: TrackerWrite) async throws -> JSONValue {
        var tools = tools
        var project: ProjectRecord?
        if let key = tools.string("project") { project = try await grantedProject(tools, key) }
        if let key = tools.string("issue") {
            let (issueProject, issue, _) = try await grantedIssue(tools, key)
            tools.know(issue, in: issueProject)
        }
        if let id = tools.string("workSession"), let session = try await store.read({ try $0.workSession(id: id) }),
            session.agentID == tools.principal.agent.id, let issueID = session.issueID,
            let sessionProject = try await directory.projects(client).first(where: { $0.id == session.projectID }),
            let issue = try? await issue(id: issueID, in: sessionProject)
        {
            tools.know(issue.record, in: sessionProject)
        }
        let known = tools
        let shadow = project
        let result = try await write.transaction { store in
            if let replayed = try write.replay(store) { return replayed }
            if let shadow { try Self.recordProject(shadow, in: store) }
            return try write.commit(try known.run(writer: store), store)
        }
        guard let result else { throw GatewayError.internalError }
        return result
    }

    /// Work sessions name their project by id in the gateway's store: the first session in a Plane
    /// project records the project's id and key there.
    static func recordProject(_ project: ProjectRecord, in store: any StoreWriter) throws {
        if try store.project(id: project.id) != nil { return }
        if try store.project(key: project.key) != nil {
            throw GatewayError.trackerRejected(
                "the gateway's database already holds another project \(project.key); give the gateway in front of Plane a database of its own")
        }
        var record = project
        record.description = ""
        try store.insertProject(record)
    }
}
