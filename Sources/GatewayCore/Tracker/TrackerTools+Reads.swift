import AgentWire
import SodiumKit

/// The read tools: projects, a project's context, issue search, one issue with a page of comments.
extension TrackerTools {
    func listProjects(_ store: any StoreReader) throws -> ToolOutput { try listProjects(try store.projects()) }

    /// The granted projects among `projects` (any tracker's).
    func listProjects(_ projects: [ProjectRecord]) throws -> ToolOutput {
        var items: [JSONValue] = []
        var untrusted: [String] = []
        var lines: [String] = []
        for project in projects {
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
        return projectContext(try ProjectView(project: project, store: store), members: try store.members(projectID: project.id))
    }

    /// A project's context from its view (any tracker's).
    func projectContext(_ context: ProjectView, members: [UserRecord]) -> ToolOutput {
        let project = context.project
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
        var view = try ProjectView(project: project, store: store)
        var query = IssueQuery(projectID: project.id, text: string("query"), afterNumber: 0, limit: arguments["limit"]?.intValue ?? 20)
        if let state = string("state") { query.stateID = try view.resolveState(state).id }
        if let label = string("label") { query.labelID = try view.resolveLabels([label]).first }
        if let assignee = string("assignee") { query.assigneeID = try view.resolveMembers([assignee], store: store).first?.id }
        if let cursor = string("cursor") {
            guard let bytes = (try? Base64.decode(cursor, variant: .urlSafeNoPadding)),
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
            nextCursor = .string(Base64.encode(Array("n:\(issues.last!.number)".utf8), variant: .urlSafeNoPadding))
        }
        try view.loadPeople(issues.flatMap(\.assigneeIDs), from: store)
        return searchResult(issues, view: view, nextCursor: nextCursor, project: project)
    }

    /// A page of search results (any tracker's).
    func searchResult(_ issues: [IssueRecord], view: ProjectView, nextCursor: JSONValue, project: ProjectRecord) -> ToolOutput {
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
        var view = try ProjectView(project: project, store: store)
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
        try view.loadPeople(issue.assigneeIDs + page.map(\.authorUserID), from: store)
        return issueResult(issue, view: view, comments: page, total: total, nextCursor: nextCursor, project: project)
    }

    /// One issue with a page of its comments (any tracker's).
    func issueResult(
        _ issue: IssueRecord, view: ProjectView, comments page: [CommentRecord], total: Int, nextCursor: JSONValue, project: ProjectRecord,
        order: String = "oldest first"
    ) -> ToolOutput {
        var untrusted: [String] = []
        let rendered = view.render(issue, pointer: "/issue", untrusted: &untrusted, includeBody: true)
        var commentItems: [JSONValue] = []
        var text = view.detailText(issue)
        if !page.isEmpty { text += "\nComments (\(page.count) of \(total), \(order)):" }
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
        Base64.encode(Array("c:\(comment.createdAt):\(comment.id)".utf8), variant: .urlSafeNoPadding)
    }

    static func commentPosition(cursor: String) throws -> CommentPosition {
        let invalid = GatewayError.validationFailed("cursor is not one this gateway issued for comments; start again without cursor")
        guard let bytes = (try? Base64.decode(cursor, variant: .urlSafeNoPadding)), let text = String(validating: bytes, as: UTF8.self)
        else { throw invalid }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "c", let createdAt = Int64(parts[1]), parts[2].hasPrefix("cmt_"), parts[2].utf8.count <= 40 else {
            throw invalid
        }
        return CommentPosition(createdAt: createdAt, id: String(parts[2]))
    }
}
