import AgentWire
import NIOConcurrencyHelpers

/// The tools over a Plane workspace (see docs/plane.md for the mapping).
///
/// The gateway keeps everything that is its own: agents, grants, sessions, idempotency records,
/// the audit and work sessions. Plane keeps projects, states, labels, members, work items and
/// comments. Tools resolve names against Plane's data, check grants before any call to Plane,
/// and render Plane's records with the same `ProjectView` as the embedded tracker, so that an
/// agent sees the same shapes on both.
struct PlaneTracker: Tracker {
    /// `external_source` of everything the gateway creates in Plane.
    static let externalSource = "agent-gateway"

    let client: PlaneClient
    let directory: PlaneDirectory
    let store: any GatewayStore

    init(settings: PlaneSettings, store: any GatewayStore) {
        self.client = PlaneClient(settings: settings)
        self.directory = PlaneDirectory(cacheSeconds: settings.metadataCacheSeconds)
        self.store = store
    }

    var kind: TrackerKind { .plane }

    func projects() async throws -> [ProjectRecord] { try await directory.projects(client) }

    func issueLink(projectKey: String, number: Int) -> String? {
        "\(client.settings.webURL ?? client.settings.apiURL)/\(client.settings.workspace)/browse/\(projectKey)-\(number)/"
    }

    // MARK: Projects and their vocabulary

    /// The granted project named `key`, refused before any call to Plane when it is not granted.
    func grantedProject(_ tools: TrackerTools, _ key: String) async throws -> ProjectRecord {
        let upper = key.uppercased()
        try tools.authorize(upper)
        guard let project = try await directory.projects(client).first(where: { $0.key == upper }) else {
            throw GatewayError.notFound("project \(upper) does not exist in the Plane workspace; use list_projects to see granted projects")
        }
        return project
    }

    /// The project's states, labels and members as a view, with the people `extra` adds (agents'
    /// owners, for rendering "agent NAME for OWNER").
    func view(_ project: ProjectRecord, extra: [UserRecord] = []) async throws -> ProjectView {
        let vocabulary = try await directory.vocabulary(of: project, client)
        return ProjectView(project: project, states: vocabulary.states, labels: vocabulary.labels, users: vocabulary.members + extra)
    }

    /// The granted work item `key` (`WEB-12`).
    func grantedIssue(_ tools: TrackerTools, _ key: String) async throws -> (ProjectRecord, IssueRecord, PlaneIssue) {
        let parsed = try TrackerTools.parseIssueKey(key)
        let project = try await grantedProject(tools, parsed.project)
        guard
            let json = try await client.optionalObject(
                "issues/\(project.key)-\(parsed.number)/", what: "work item \(project.key)-\(parsed.number)")
        else {
            throw GatewayError.notFound("issue \(project.key)-\(parsed.number) does not exist; use search_issues to find issues")
        }
        let issue = try PlaneIssue(json, project: project)
        return (project, issue.record, issue)
    }

    /// A work item by its Plane id.
    func issue(id: String, in project: ProjectRecord) async throws -> PlaneIssue {
        let json = try await client.object("projects/\(project.id)/issues/\(id)/", what: "a work item of \(project.key)")
        return try PlaneIssue(json, project: project)
    }

    /// Gateway people behind agent-made records: each agent's owner, for "agent NAME for OWNER".
    func agentOwners(_ agentIDs: [String]) async throws -> (owners: [UserRecord], ownerOf: [String: String]) {
        let wanted = Array(Set(agentIDs))
        guard !wanted.isEmpty else { return ([], [:]) }
        return try await store.read { reader in
            var owners: [UserRecord] = []
            var ownerOf: [String: String] = [:]
            for agentID in wanted {
                guard let agent = try reader.agent(id: agentID), let owner = try reader.user(id: agent.ownerID) else { continue }
                ownerOf[agentID] = owner.id
                if !owners.contains(where: { $0.id == owner.id }) { owners.append(owner) }
            }
            return (owners, ownerOf)
        }
    }
}

/// Plane's projects, and each project's states, labels and members, kept for a short time: every
/// tool needs them to resolve names, and Plane's API key has a rate limit of its own (60 requests
/// a minute by default).
final class PlaneDirectory: Sendable {
    struct Vocabulary: Sendable {
        var states: [StateRecord]
        var labels: [LabelRecord]
        var members: [UserRecord]
    }

    private struct Cached<Value: Sendable>: Sendable {
        var value: Value
        var fetchedAt: UInt64
    }

    private struct State: Sendable {
        var projects: Cached<[ProjectRecord]>?
        var vocabularies: [String: Cached<Vocabulary>] = [:]
        var workspaceMembers: Cached<[UserRecord]>?
    }

    let cacheNanoseconds: UInt64
    private let state = NIOLockedValueBox(State())

    init(cacheSeconds: Int) {
        cacheNanoseconds = UInt64(max(0, cacheSeconds)) * 1_000_000_000
    }

    private func fresh<Value>(_ cached: Cached<Value>?) -> Value? {
        guard let cached, GatewayClock.monotonicNanoseconds() &- cached.fetchedAt < cacheNanoseconds else { return nil }
        return cached.value
    }

    func projects(_ client: PlaneClient) async throws -> [ProjectRecord] {
        if let cached = state.withLockedValue({ fresh($0.projects) }) { return cached }
        let projects = try await client.all("projects/", limit: 1000, what: "the workspace's projects").compactMap(PlaneRecords.project)
        state.withLockedValue { $0.projects = Cached(value: projects, fetchedAt: GatewayClock.monotonicNanoseconds()) }
        return projects
    }

    func vocabulary(of project: ProjectRecord, _ client: PlaneClient) async throws -> Vocabulary {
        if let cached = state.withLockedValue({ fresh($0.vocabularies[project.id]) }) { return cached }
        let base = "projects/\(project.id)/"
        let states = try await client.all(base + "states/", limit: 500, what: "the states of \(project.key)")
            .compactMap { PlaneRecords.state($0, projectID: project.id) }.sorted(by: PlaneRecords.stateOrder)
        let labels = try await client.all(base + "labels/", limit: 1000, what: "the labels of \(project.key)")
            .compactMap { PlaneRecords.label($0, projectID: project.id) }
        let members = try await client.all(base + "members/", limit: 2000, what: "the members of \(project.key)").compactMap(PlaneRecords.user)
        let vocabulary = Vocabulary(states: states, labels: labels, members: members)
        state.withLockedValue { $0.vocabularies[project.id] = Cached(value: vocabulary, fetchedAt: GatewayClock.monotonicNanoseconds()) }
        return vocabulary
    }

    func workspaceMembers(_ client: PlaneClient) async throws -> [UserRecord] {
        if let cached = state.withLockedValue({ fresh($0.workspaceMembers) }) { return cached }
        let members = try await client.all("members/", limit: 5000, what: "the workspace's members").compactMap(PlaneRecords.user)
        state.withLockedValue { $0.workspaceMembers = Cached(value: members, fetchedAt: GatewayClock.monotonicNanoseconds()) }
        return members
    }

    /// Forgets a project's vocabulary (after the adapter changed its members).
    func forget(projectID: String) {
        state.withLockedValue { _ = $0.vocabularies.removeValue(forKey: projectID) }
    }
}
