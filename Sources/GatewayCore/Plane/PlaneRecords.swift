import AgentWire

/// Plane's JSON as the gateway's records: projects by identifier, states by name and group,
/// labels, members by display name, work items by `KEY-sequence_id`, comments as text.
enum PlaneRecords {
    /// The longest description or comment text the tools return from Plane; the rest is cut with a
    /// note (people can write far more in Plane than an agent may write through the gateway).
    static let maximumTextCharacters = 65_536

    static func project(_ json: JSONValue) -> ProjectRecord? {
        guard let id = json["id"]?.stringValue, let key = json["identifier"]?.stringValue else { return nil }
        return ProjectRecord(
            id: id, key: key.uppercased(), name: json["name"]?.stringValue ?? key, description: capped(json["description"]?.stringValue ?? ""),
            nextIssueNumber: 0, createdAt: time(json["created_at"]))
    }

    static let groupOrder = ["backlog", "unstarted", "started", "completed", "cancelled", "triage"]

    static func state(_ json: JSONValue, projectID: String) -> StateRecord? {
        guard let id = json["id"]?.stringValue, let name = json["name"]?.stringValue else { return nil }
        return StateRecord(
            id: id, projectID: projectID, name: name, category: json["group"]?.stringValue ?? "unstarted",
            position: Int(json["sequence"]?.doubleValue ?? 0))
    }

    static func stateOrder(_ lhs: StateRecord, _ rhs: StateRecord) -> Bool {
        let left = groupOrder.firstIndex(of: lhs.category) ?? groupOrder.count
        let right = groupOrder.firstIndex(of: rhs.category) ?? groupOrder.count
        return left != right ? left < right : lhs.position < rhs.position
    }

    static func label(_ json: JSONValue, projectID: String) -> LabelRecord? {
        guard let id = json["id"]?.stringValue, let name = json["name"]?.stringValue else { return nil }
        return LabelRecord(id: id, projectID: projectID, name: name, color: json["color"]?.stringValue ?? "")
    }

    /// A member: Plane's display name, else first and last name; never the e-mail address.
    static func user(_ json: JSONValue) -> UserRecord? {
        let person = json["member"]?.objectValue.map(JSONValue.object) ?? json
        guard let id = person["id"]?.stringValue else { return nil }
        let full = [person["first_name"]?.stringValue, person["last_name"]?.stringValue].compactMap { $0 }.filter { !$0.isEmpty }.joined(
            separator: " ")
        let name = person["display_name"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? (full.isEmpty ? id : full)
        return UserRecord(id: id, name: name, blockedAt: nil, createdAt: 0)
    }

    /// Ids of a relation that Plane gives as ids, or as objects when expanded.
    static func ids(_ json: JSONValue?) -> [String] {
        (json?.arrayValue ?? []).compactMap { $0.stringValue ?? $0["id"]?.stringValue }
    }

    /// The agent that made a record, from the `external_id` the gateway gave it (`agt_…:…`).
    static func agentID(_ json: JSONValue) -> String? {
        guard json["external_source"]?.stringValue == PlaneTracker.externalSource, let external = json["external_id"]?.stringValue,
            let colon = external.firstIndex(of: ":"), external.hasPrefix("agt_")
        else { return nil }
        return String(external[..<colon])
    }

    static func capped(_ text: String) -> String {
        guard text.count > maximumTextCharacters else { return text }
        return String(text.prefix(maximumTextCharacters)) + "\n[cut: \(text.count - maximumTextCharacters) more characters in Plane]"
    }

    /// Milliseconds since the epoch of Plane's times; 0 when absent or unreadable.
    static func time(_ json: JSONValue?) -> Int64 {
        json?.stringValue.flatMap(Timestamp.milliseconds(rfc3339:)) ?? 0
    }
}

/// A Plane work item as the tools see it.
struct PlaneIssue: Sendable {
    var record: IssueRecord
    /// The description as Plane holds it, split into the text before the blocks and the blocks.
    var description: PlaneHTML.Description

    init(_ json: JSONValue, project: ProjectRecord) throws {
        guard let id = json["id"]?.stringValue, let number = json["sequence_id"]?.intValue else {
            throw GatewayError.trackerRejected("Plane answered a work item without id or sequence_id; check that the Plane API is version 1")
        }
        description = PlaneHTML.description(json["description_html"]?.stringValue ?? "")
        record = IssueRecord(
            id: id, projectID: project.id, number: number, title: json["name"]?.stringValue ?? "",
            description: PlaneRecords.capped(description.text), priority: json["priority"]?.stringValue ?? "none",
            stateID: json["state"]?.stringValue ?? json["state"]?["id"]?.stringValue ?? "", labelIDs: PlaneRecords.ids(json["labels"]),
            assigneeIDs: PlaneRecords.ids(json["assignees"]),
            blocks: description.blocks.map { IssueBlock(name: $0.name, text: PlaneRecords.capped($0.text)) },
            createdByUserID: json["created_by"]?.stringValue ?? "", createdByAgentID: PlaneRecords.agentID(json),
            createdAt: PlaneRecords.time(json["created_at"]), updatedAt: PlaneRecords.time(json["updated_at"]))
    }
}

/// Comments the gateway writes end with a line naming the agent and its owner, which people see in
/// Plane; reading them back drops that line (the author is in `author.agentId`).
enum PlaneComments {
    static func trailer(agentName: String, agentID: String, ownerName: String) -> String {
        "— agent \(agentName) (\(agentID)) for \(ownerName), via agent-gateway"
    }

    static func html(body: String, trailer: String) -> String {
        PlaneHTML.html(body) + "<p><em>\(PlaneHTML.escape(trailer))</em></p>"
    }

    static func record(_ json: JSONValue, issueID: String) -> CommentRecord? {
        guard let id = json["id"]?.stringValue else { return nil }
        let agentID = PlaneRecords.agentID(json)
        var text = PlaneHTML.text(json["comment_html"]?.stringValue ?? "")
        if agentID != nil, let lastLine = text.split(separator: "\n").last, lastLine.hasPrefix("— agent "), lastLine.hasSuffix("via agent-gateway") {
            text.removeLast(lastLine.count)
            while text.last?.isWhitespace == true { text.removeLast() }
        }
        return CommentRecord(
            id: id, issueID: issueID, authorUserID: json["actor"]?.stringValue ?? json["created_by"]?.stringValue ?? "", authorAgentID: agentID,
            body: PlaneRecords.capped(text), createdAt: PlaneRecords.time(json["created_at"]))
    }
}
