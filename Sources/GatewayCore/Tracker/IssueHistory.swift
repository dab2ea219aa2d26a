import AgentWire

/// Each issue's history: every change an agent makes is kept with its actor ("agent NAME for
/// OWNER"), in the same transaction as the change. Summaries name fields and states, never the
/// text an agent wrote.
enum IssueHistory {
    static func record(
        tool: String, arguments: JSONObject, output: ToolOutput, principal: Principal, at: Int64, in store: any StoreWriter
    ) throws {
        guard let issueID = output.targetIDs.first(where: { $0.hasPrefix("iss_") }),
            let summary = try summary(tool: tool, arguments: arguments, issueID: issueID, store: store)
        else { return }
        try store.insertIssueChange(
            IssueChangeRecord(
                id: "chg_\(ULID())", issueID: issueID, at: at, actorUserID: principal.owner.id, actorAgentID: principal.agent.id, action: tool,
                summary: summary))
    }

    static func summary(tool: String, arguments: JSONObject, issueID: String, store: any StoreReader) throws -> String? {
        switch tool {
        case "create_issue": return "created the issue"
        case "update_issue":
            let fields = ["title", "description", "priority"].filter { arguments[$0] != nil }
            return "changed the " + (fields.isEmpty ? "issue" : fields.joined(separator: ", "))
        case "update_issue_blocks": return "edited the sections"
        case "move_issue":
            guard let issue = try store.issue(id: issueID) else { return "moved the issue" }
            let state = try store.states(projectID: issue.projectID).first { $0.id == issue.stateID }
            return "moved the issue to \(state?.name ?? "another state")"
        case "comment_issue": return "commented"
        case "set_issue_labels": return "set the labels"
        case "assign_issue": return "changed the assignees"
        default: return nil
        }
    }

    /// How the tracker names who made a change: a person, or "agent NAME for OWNER".
    static func actorName(userID: String, agentID: String?, in store: any StoreReader) throws -> String {
        let person = try store.user(id: userID)?.name ?? userID
        guard let agentID else { return person }
        let agent = try store.agent(id: agentID)?.name ?? agentID
        return "agent \(agent) for \(person)"
    }
}
