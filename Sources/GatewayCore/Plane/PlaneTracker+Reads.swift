import AgentWire
import SodiumKit

/// The read tools over Plane: the same answers as the embedded tracker's, from Plane's data.
extension PlaneTracker {
    func read(_ tools: TrackerTools) async throws -> ToolOutput {
        switch tools.tool.name {
        case "list_projects":
            let projects = try await directory.projects(client)
            return try tools.listProjects(projects)
        case "get_project_context":
            let project = try await grantedProject(tools, tools.string("project") ?? "")
            let vocabulary = try await directory.vocabulary(of: project, client)
            let view = ProjectView(project: project, states: vocabulary.states, labels: vocabulary.labels, users: vocabulary.members)
            return tools.projectContext(view, members: vocabulary.members)
        case "search_issues": return try await searchIssues(tools)
        case "get_issue": return try await getIssue(tools)
        default: throw GatewayError.internalError
        }
    }

    /// Work items Plane pages through for one search call at most (5 pages of 100).
    static let searchPagesPerCall = 5

    /// Plane has no filter for text, state, label and assignee together on its list, so the
    /// adapter reads the project's work items page by page (newest first) and keeps the matches.
    /// One call reads at most 500 work items; `nextCursor` continues where it stopped, so a page
    /// may hold fewer than `limit` matches and still have a next one.
    func searchIssues(_ tools: TrackerTools) async throws -> ToolOutput {
        let project = try await grantedProject(tools, tools.string("project") ?? "")
        let vocabulary = try await directory.vocabulary(of: project, client)
        let view = ProjectView(project: project, states: vocabulary.states, labels: vocabulary.labels, users: vocabulary.members)
        let stateID = try tools.string("state").map { try view.resolveState($0).id }
        let labelID = try tools.string("label").map { try view.resolveLabels([$0]).first }
        let assigneeID = try tools.string("assignee").map { try view.resolveMembers([$0], among: vocabulary.members).first?.id }
        let text = tools.string("query")?.lowercased()
        let limit = tools.arguments["limit"]?.intValue ?? 20
        var position = try tools.string("cursor").map { try PlaneCursor(decoding: $0, kind: .search) } ?? PlaneCursor(kind: .search)

        var matches: [IssueRecord] = []
        var next: PlaneCursor?
        var pages = 0
        scan: while true {
            let page = try await client.page(
                "projects/\(project.id)/issues/", perPage: 100, cursor: position.plane, what: "the work items of \(project.key)")
            pages += 1
            for (index, json) in page.results.enumerated() where index >= position.skip {
                if matches.count == limit {
                    next = PlaneCursor(kind: .search, plane: position.plane, skip: index)
                    break scan
                }
                guard let issue = try? PlaneIssue(json, project: project).record else { continue }
                if let stateID, issue.stateID != stateID { continue }
                if let labelID, let wanted = labelID, !issue.labelIDs.contains(wanted) { continue }
                if let assigneeID, let wanted = assigneeID, !issue.assigneeIDs.contains(wanted) { continue }
                if let text, !issue.title.lowercased().contains(text), !issue.description.lowercased().contains(text) { continue }
                matches.append(issue)
            }
            guard let cursor = page.nextCursor else { break }
            position = PlaneCursor(kind: .search, plane: cursor, skip: 0)
            if pages == Self.searchPagesPerCall || matches.count == limit {
                next = position
                break
            }
        }
        let nextCursor: JSONValue = next.map { .string($0.encoded) } ?? .null
        return tools.searchResult(matches, view: view, nextCursor: nextCursor, project: project)
    }

    /// One work item and a page of its comments, newest first: Plane pages comments newest first
    /// and ignores any other order.
    func getIssue(_ tools: TrackerTools) async throws -> ToolOutput {
        let (project, found, _) = try await grantedIssue(tools, tools.string("issue") ?? "")
        let limit = tools.arguments["limit"]?.intValue ?? TrackerTools.defaultCommentPage
        let position = try tools.string("cursor").map { try PlaneCursor(decoding: $0, kind: .comments) } ?? PlaneCursor(kind: .comments)
        let page = try await client.page(
            "projects/\(project.id)/issues/\(found.id)/comments/", perPage: limit, cursor: position.plane,
            what: "the comments of \(project.key)-\(found.number)")
        var comments: [CommentRecord] = []
        var bytes = 0
        var next: PlaneCursor? = page.nextCursor.map { PlaneCursor(kind: .comments, plane: $0, skip: 0) }
        for (index, json) in page.results.enumerated() where index >= position.skip {
            guard let comment = PlaneComments.record(json, issueID: found.id) else { continue }
            if !comments.isEmpty, bytes + comment.body.utf8.count > TrackerTools.commentPageBytes {
                next = PlaneCursor(kind: .comments, plane: position.plane, skip: index)
                break
            }
            comments.append(comment)
            bytes += comment.body.utf8.count
        }
        // Agent-made records name the agent's owner as their author, as on the embedded tracker.
        let (owners, ownerOf) = try await agentOwners(comments.compactMap(\.authorAgentID) + [found.createdByAgentID].compactMap { $0 })
        var issue = found
        if let agentID = issue.createdByAgentID, let owner = ownerOf[agentID] { issue.createdByUserID = owner }
        for index in comments.indices {
            if let agentID = comments[index].authorAgentID, let owner = ownerOf[agentID] { comments[index].authorUserID = owner }
        }
        let view = try await view(project, extra: owners)
        return tools.issueResult(
            issue, view: view, comments: comments, total: page.total ?? comments.count, nextCursor: next.map { .string($0.encoded) } ?? .null,
            project: project, order: "newest first")
    }
}

/// Where a paged read over Plane continues: Plane's own cursor, plus how many items of that page
/// were already returned (a page of ours may stop inside one of Plane's).
struct PlaneCursor: Sendable {
    enum Kind: String, Sendable {
        case search = "ps"
        case comments = "pc"
    }

    var kind: Kind
    var plane: String?
    var skip: Int = 0

    init(kind: Kind, plane: String? = nil, skip: Int = 0) {
        self.kind = kind
        self.plane = plane
        self.skip = skip
    }

    init(decoding text: String, kind: Kind) throws {
        let invalid = GatewayError.validationFailed("cursor is not one this gateway issued; start again without cursor")
        guard text.utf8.count <= 200, let bytes = try? Base64.decode(text, variant: .urlSafeNoPadding),
            let decoded = String(validating: bytes, as: UTF8.self)
        else { throw invalid }
        let parts = decoded.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == kind.rawValue, let skip = Int(parts[2]), (0...1000).contains(skip),
            parts[1].utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: ":") })
        else { throw invalid }
        self.kind = kind
        self.plane = parts[1].isEmpty ? nil : String(parts[1])
        self.skip = skip
    }

    var encoded: String {
        Base64.encode(Array("\(kind.rawValue)|\(plane ?? "")|\(skip)".utf8), variant: .urlSafeNoPadding)
    }
}
