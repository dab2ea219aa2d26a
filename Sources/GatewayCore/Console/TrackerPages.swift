import AgentWire

/// The console's read-only tracker: projects, their issues, and each issue with its history and
/// comments. Every change names its actor: a person, or "agent NAME for OWNER".
///
/// Over Plane the console lists Plane's projects and each project's newest work items, and every
/// work item links to Plane, where its history and comments live (`issueLink`).
struct TrackerPages {
    /// A page context built inside a read transaction: plain values only, never changed after.
    struct Built: @unchecked Sendable { let context: [String: Any] }

    let store: any GatewayStore
    let tracker: any Tracker

    static let issuePageSize = 50

    /// Where the console sends a person for an issue: its page here, or the tracker's own.
    func issueHref(_ projectKey: String, _ number: Int) -> String {
        tracker.issueLink(projectKey: projectKey, number: number) ?? "/console/tracker/\(projectKey)/\(number)"
    }

    func projects() async throws -> [String: Any] {
        let projects = try await tracker.projects()
        return [
            "projects": projects.map { ["key": $0.key, "name": $0.name, "description": $0.description] },
            "trackerName": tracker.kind == .plane ? "Plane" : "the embedded tracker",
        ]
    }

    func issues(projectKey: String, after: Int) async throws -> [String: Any] {
        if let plane = tracker as? PlaneTracker { return try await planeIssues(plane, projectKey: projectKey) }
        return try await store.read { store -> Built in
            guard let project = try store.project(key: projectKey.uppercased()) else { throw OwnerService.notFound("project \(projectKey)") }
            let states = Dictionary(uniqueKeysWithValues: try store.states(projectID: project.id).map { ($0.id, $0.name) })
            let issues = try store.searchIssues(IssueQuery(projectID: project.id, afterNumber: after, limit: Self.issuePageSize))
            return Built(context: [
                "key": project.key, "name": project.name,
                "issues": issues.map { issue -> [String: Any] in
                    [
                        "projectKey": project.key, "number": issue.number, "title": issue.title, "state": states[issue.stateID] ?? "",
                        "priority": issue.priority, "href": issueHref(project.key, issue.number), "external": false,
                    ]
                },
                "nextAfter": issues.count == Self.issuePageSize ? "\(issues.last?.number ?? 0)" : "",
            ])
        }.context
    }

    /// A Plane project's newest work items, each linking to Plane.
    func planeIssues(_ plane: PlaneTracker, projectKey: String) async throws -> [String: Any] {
        let key = projectKey.uppercased()
        guard let project = try await plane.directory.projects(plane.client).first(where: { $0.key == key }) else {
            throw OwnerService.notFound("project \(projectKey)")
        }
        let vocabulary = try await plane.directory.vocabulary(of: project, plane.client)
        let states = Dictionary(vocabulary.states.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        let page = try await plane.client.page(
            "projects/\(project.id)/issues/", perPage: Self.issuePageSize, cursor: nil, what: "the work items of \(project.key)")
        let issues = page.results.compactMap { try? PlaneIssue($0, project: project).record }
        return [
            "key": project.key, "name": project.name, "nextAfter": "",
            "issues": issues.map { issue -> [String: Any] in
                [
                    "projectKey": project.key, "number": issue.number, "title": issue.title, "state": states[issue.stateID] ?? "",
                    "priority": issue.priority, "href": issueHref(project.key, issue.number), "external": true,
                ]
            },
        ]
    }

    func issue(projectKey: String, number: Int) async throws -> [String: Any] {
        try await store.read { store -> Built in
            guard let project = try store.project(key: projectKey.uppercased()), let issue = try store.issue(projectID: project.id, number: number)
            else { throw OwnerService.notFound("issue \(projectKey)-\(number)") }
            let state = try store.states(projectID: project.id).first { $0.id == issue.stateID }
            let history = try store.issueChanges(issueID: issue.id, limit: 500)
            let comments = try store.comments(issueID: issue.id, after: nil, limit: 200)
            return Built(context: [
                "key": "\(project.key)-\(issue.number)", "title": issue.title, "state": state?.name ?? "", "priority": issue.priority,
                "createdBy": try IssueHistory.actorName(userID: issue.createdByUserID, agentID: issue.createdByAgentID, in: store),
                "description": issue.description, "blocks": issue.blocks.map { ["name": $0.name, "text": $0.text] },
                "history": try history.map { change -> [String: Any] in
                    [
                        "time": ConsoleRenderer.time(change.at),
                        "actor": try IssueHistory.actorName(userID: change.actorUserID, agentID: change.actorAgentID, in: store),
                        "summary": change.summary,
                    ]
                },
                "comments": try comments.map { comment -> [String: Any] in
                    [
                        "author": try IssueHistory.actorName(userID: comment.authorUserID, agentID: comment.authorAgentID, in: store),
                        "time": ConsoleRenderer.time(comment.createdAt), "body": comment.body,
                    ]
                },
            ])
        }.context
    }
}
