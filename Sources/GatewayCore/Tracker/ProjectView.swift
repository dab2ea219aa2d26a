import AgentWire

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
    /// The people this view names (assignees, comment authors), by id: only those are loaded
    /// (``loadPeople(_:from:)``), never the whole workspace. Someone not loaded is shown by id.
    private(set) var users: [String: UserRecord]

    init(project: ProjectRecord, store: any StoreReader) throws {
        self.project = project
        orderedStates = try store.states(projectID: project.id)
        orderedLabels = try store.labels(projectID: project.id)
        states = Dictionary(uniqueKeysWithValues: orderedStates.map { ($0.id, $0) })
        labels = Dictionary(uniqueKeysWithValues: orderedLabels.map { ($0.id, $0) })
        users = [:]
    }

    /// Loads the people of `ids` not loaded yet, for rendering (one query per 500).
    mutating func loadPeople(_ ids: some Sequence<String>, from store: any StoreReader) throws {
        let missing = Array(Set(ids).subtracting(users.keys))
        for user in try store.users(ids: missing) { users[user.id] = user }
    }

    /// A view of a tracker that is not the gateway's store (Plane).
    init(project: ProjectRecord, states: [StateRecord], labels: [LabelRecord], users: [UserRecord]) {
        self.project = project
        orderedStates = states
        orderedLabels = labels
        self.states = Dictionary(states.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.labels = Dictionary(labels.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.users = Dictionary(users.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
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
        try resolveMembers(names, among: try store.members(projectID: project.id), listValid: listValid)
    }

    func resolveMembers(_ names: [String], among members: [UserRecord], listValid: Bool = true) throws -> [UserRecord] {
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
