import Foundation
import GRDB
import Testing

@testable import GatewayCore

/// Texts where SQL dialects and encodings part ways: bytewise order ("B" < "a" < "é"), combining
/// marks, astral planes, right-to-left, LIKE's wildcards and its escape character.
private let unicodeTexts = [
    "plain", "Ünïcödé ✓", "e\u{301} (combining)", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🧪👩🏽‍💻", "עברית مرحبا", "中文テキスト", "100% _literal_ \\ back'slash\"",
]

/// The rows every test starts from: two owners, an agent with a device, a project with states.
private struct Fixture {
    static let t0: Int64 = 1_700_000_000_000

    static func seed(_ store: any GatewayStore) async throws {
        try await store.write { w in
            try w.insertUser(UserRecord(id: "alice", name: "Alice", blockedAt: nil, createdAt: t0))
            try w.insertUser(UserRecord(id: "Bob", name: "Bob ✓", blockedAt: nil, createdAt: t0, role: "admin", agentsEntitled: false))
            try w.insertAgent(AgentRecord(id: "agt_1", ownerID: "alice", name: "one", createdAt: t0, revokedAt: nil))
            try w.insertDevice(DeviceRecord(id: "dev_1", agentID: "agt_1", name: "laptop", publicKey: "pk", createdAt: t0, revokedAt: nil))
            try w.insertProject(ProjectRecord(id: "prj_web", key: "WEB", name: "Web", description: "the site", nextIssueNumber: 1, createdAt: t0))
            try w.insertState(StateRecord(id: "st_todo", projectID: "prj_web", name: "Todo", category: "unstarted", position: 1))
            try w.insertState(StateRecord(id: "st_backlog", projectID: "prj_web", name: "Backlog", category: "backlog", position: 0))
            try w.insertState(StateRecord(id: "st_done", projectID: "prj_web", name: "Done", category: "completed", position: 2))
        }
    }

    static func issue(
        _ id: String, title: String = "An issue", description: String = "", state: String = "st_todo", labels: [String] = [], assignees: [String] = []
    )
        -> IssueRecord
    {
        IssueRecord(
            id: id, projectID: "prj_web", number: 0, title: title, description: description, priority: "none", stateID: state, labelIDs: labels,
            assigneeIDs: assignees, blocks: [], createdByUserID: "alice", createdByAgentID: "agt_1", createdAt: t0, updatedAt: t0)
    }

    static func audit(
        _ id: String, at: Int64, agent: String? = "agt_1", owner: String? = "alice", tool: String = "get_issue", outcome: String = "allowed"
    )
        -> AuditEventRecord
    {
        AuditEventRecord(
            id: id, at: at, agentID: agent, ownerID: owner, deviceID: agent == nil ? nil : "dev_1", sessionID: nil, tool: tool, project: "WEB",
            targetIDs: ["iss_1", "iss_2"], argumentsSHA256: String(repeating: "a", count: 64), outcome: outcome,
            errorCode: outcome == "allowed" ? nil : "scope_denied",
            idempotencyKeyHash: nil, replayed: false, latencyMicroseconds: 42)
    }
}

/// Every store operation, once per backend (SQLite and PostgreSQL): one parameterized suite, so
/// both stores must give the same answers, in the same order, with the same NULLs.
@Suite("Store conformance on both backends")
struct StoreConformanceTests {
    @Test(arguments: StoreBackend.allCases)
    func settingsUsersAndRoles(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        try await store.write { w in
            try w.setSetting("tracker", value: "embedded")
            try w.setSetting("tracker", value: "plane ✓")
            try w.insertUser(UserRecord(id: "é", name: "E acute", blockedAt: nil, createdAt: Fixture.t0))
            try w.insertUser(UserRecord(id: "a2", name: "A two", blockedAt: nil, createdAt: Fixture.t0))
        }
        let (setting, missing, users, bob) = try await store.read { r in
            (try r.setting("tracker"), try r.setting("nothing"), try r.users(), try r.user(id: "Bob"))
        }
        #expect(setting == "plane ✓")
        #expect(missing == nil)
        // Bytewise order on both: upper case before lower case, ASCII before the rest.
        #expect(users.map(\.id) == ["Bob", "a2", "alice", "é"])
        #expect(bob?.role == "admin" && bob?.agentsEntitled == false && bob?.isAdmin == true)
        #expect(users.first { $0.id == "alice" }?.role == "owner" && users.first { $0.id == "alice" }?.agentsEntitled == true)

        try await store.write { w in
            try w.setUserBlocked(id: "alice", at: 5)
            try w.setUserRole(id: "alice", role: .admin)
            try w.setUserEntitled(id: "Bob", entitled: true)
        }
        var alice = try #require(try await store.read { try $0.user(id: "alice") })
        #expect(alice.blockedAt == 5 && alice.role == "admin")
        #expect(try await store.read { try $0.user(id: "Bob")?.agentsEntitled } == true)
        try await store.write { try $0.setUserBlocked(id: "alice", at: nil) }
        alice = try #require(try await store.read { try $0.user(id: "alice") })
        #expect(alice.blockedAt == nil)
        #expect(try await store.read { try $0.user(id: "nobody") } == nil)
    }

    @Test("users(ids:) loads only the people asked for, in chunks past 500, none for none", arguments: StoreBackend.allCases)
    func usersByID(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        try await store.write { w in
            for index in 0..<1_200 {
                try w.insertUser(UserRecord(id: "u\(index)", name: "User \(index)", blockedAt: nil, createdAt: Fixture.t0))
            }
        }
        let wanted = (0..<1_100).map { "u\($0)" } + ["alice", "nobody", "u7"]
        let (found, none, two) = try await store.read { r in
            (try r.users(ids: wanted), try r.users(ids: []), try r.users(ids: ["Bob", "u1199"]))
        }
        #expect(Set(found.map(\.id)) == Set((0..<1_100).map { "u\($0)" } + ["alice"]))
        #expect(found.count == 1_101, "u7, asked for twice, is loaded once")
        #expect(none.isEmpty)
        #expect(Set(two.map(\.name)) == ["Bob ✓", "User 1199"])
    }

    @Test(arguments: StoreBackend.allCases)
    func agentsGrantsPairingCodesAndDevices(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        try await store.write { w in
            try w.insertAgent(AgentRecord(id: "agt_0", ownerID: "alice", name: "older", createdAt: Fixture.t0 - 1, revokedAt: nil))
            try w.insertAgent(AgentRecord(id: "agt_2", ownerID: "Bob", name: "bob's", createdAt: Fixture.t0, revokedAt: nil))
            try w.insertGrant(GrantRecord(agentID: "agt_1", projectKey: "WEB", scopes: ["project:read", "issue:create"]))
            try w.insertGrant(GrantRecord(agentID: "agt_1", projectKey: "OPS", scopes: []))
            try w.insertPairingCode(PairingCodeRecord(codeHash: "h1", agentID: "agt_1", createdAt: 1, expiresAt: 100, usedAt: nil))
            try w.insertDevice(
                DeviceRecord(id: "dev_0", agentID: "agt_1", name: "older", publicKey: "pk0", createdAt: Fixture.t0 - 5, revokedAt: nil))
        }
        let (all, alices, grants, code, devices) = try await store.read { r in
            (
                try r.agents(ownerID: nil), try r.agents(ownerID: "alice"), try r.grants(agentID: "agt_1"), try r.pairingCode(hash: "h1"),
                try r.devices(agentID: "agt_1")
            )
        }
        #expect(all.map(\.id) == ["agt_0", "agt_1", "agt_2"])
        #expect(alices.map(\.id) == ["agt_0", "agt_1"])
        #expect(
            grants == [
                GrantRecord(agentID: "agt_1", projectKey: "OPS", scopes: []),
                GrantRecord(agentID: "agt_1", projectKey: "WEB", scopes: ["project:read", "issue:create"]),
            ])
        #expect(code?.usedAt == nil && code?.expiresAt == 100)
        #expect(devices.map(\.id) == ["dev_0", "dev_1"])

        try await store.write { w in
            try w.markPairingCodeUsed(hash: "h1", at: 50)
            try w.setAgentRevoked(id: "agt_1", at: 10)
            try w.setAgentRevoked(id: "agt_1", at: 20)  // the first revocation time stays
            try w.setDeviceRevoked(id: "dev_1", at: 11)
            try w.setDeviceRevoked(id: "dev_1", at: 21)
        }
        let (agent, device, used) = try await store.read { r in (try r.agent(id: "agt_1"), try r.device(id: "dev_1"), try r.pairingCode(hash: "h1")) }
        #expect(agent?.revokedAt == 10 && device?.revokedAt == 11 && used?.usedAt == 50)
        #expect(try await store.read { try $0.agent(id: "agt_missing") } == nil)
        // A duplicate key is refused on both, and the transaction leaves nothing behind.
        await #expect(throws: (any Error).self) {
            try await store.write { w in
                try w.insertGrant(GrantRecord(agentID: "agt_2", projectKey: "WEB", scopes: []))
                try w.insertGrant(GrantRecord(agentID: "agt_1", projectKey: "WEB", scopes: []))
            }
        }
        #expect(try await store.read { try $0.grants(agentID: "agt_2") }.isEmpty)
    }

    @Test(arguments: StoreBackend.allCases)
    func sessionsNoncesAndBlockingAnOwner(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        try await store.write { w in
            for (index, id) in ["ses_b", "ses_a", "ses_c", "ses_d"].enumerated() {
                // ses_a and ses_b share a creation time: the id breaks the tie (descending).
                let created = index < 2 ? Int64(100) : Int64(100 + index)
                try w.insertSession(
                    SessionRecord(id: id, deviceID: "dev_1", tokenHash: "tok_\(id)", createdAt: created, expiresAt: 1_000, endedAt: nil))
            }
            try w.endSession(id: "ses_c", at: 150)
            try w.endSession(id: "ses_c", at: 160)
            try w.insertNonce(deviceID: "dev_1", nonce: "n1", at: 1)
            try w.insertPairingCode(PairingCodeRecord(codeHash: "open", agentID: "agt_1", createdAt: 1, expiresAt: 10_000, usedAt: nil))
            try w.insertPairingCode(PairingCodeRecord(codeHash: "used", agentID: "agt_1", createdAt: 1, expiresAt: 10_000, usedAt: 5))
        }
        let (newest, open, byToken, seen, unseen) = try await store.read { r in
            (
                try r.sessions(agentID: "agt_1", openAt: nil, limit: 3), try r.sessions(agentID: "agt_1", openAt: 500, limit: 10),
                try r.session(tokenHash: "tok_ses_a"), try r.nonceSeen(deviceID: "dev_1", nonce: "n1"),
                try r.nonceSeen(deviceID: "dev_1", nonce: "n2")
            )
        }
        #expect(newest.map(\.id) == ["ses_d", "ses_c", "ses_b"])
        #expect(open.map(\.id) == ["ses_d", "ses_b", "ses_a"])
        #expect(byToken?.id == "ses_a" && byToken?.endedAt == nil)
        #expect(seen && !unseen)
        #expect(try await store.read { try $0.session(id: "ses_c")?.endedAt } == 150)
        #expect(try await store.read { try $0.sessions(agentID: "agt_1", openAt: 2_000, limit: 10) }.isEmpty)
        await #expect(throws: (any Error).self) { try await store.write { try $0.insertNonce(deviceID: "dev_1", nonce: "n1", at: 2) } }

        try await store.write { try $0.endSessions(deviceID: "dev_1", at: 300) }
        let ended = try await store.read { try $0.sessions(agentID: "agt_1", openAt: nil, limit: 10) }
        #expect(ended.map(\.endedAt) == [300, 150, 300, 300])

        try await store.write { w in
            try w.insertSession(SessionRecord(id: "ses_e", deviceID: "dev_1", tokenHash: "tok_e", createdAt: 400, expiresAt: 1_000, endedAt: nil))
            try w.endSessions(ownerID: "alice", at: 500)
        }
        let (session, openCode, usedCode) = try await store.read { r in
            (try r.session(id: "ses_e"), try r.pairingCode(hash: "open"), try r.pairingCode(hash: "used"))
        }
        #expect(session?.endedAt == 500)
        #expect(openCode?.expiresAt == 500 && usedCode?.expiresAt == 10_000)
    }

    @Test(arguments: StoreBackend.allCases)
    func projectsStatesLabelsAndMembers(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        try await store.write { w in
            try w.insertProject(ProjectRecord(id: "prj_ops", key: "OPS", name: "Ops", description: "", nextIssueNumber: 1, createdAt: Fixture.t0))
            try w.insertLabel(LabelRecord(id: "lbl_2", projectID: "prj_web", name: "docs", color: "#00f"))
            try w.insertLabel(LabelRecord(id: "lbl_1", projectID: "prj_web", name: "Bug", color: "#f00"))
            try w.insertLabel(LabelRecord(id: "lbl_3", projectID: "prj_web", name: "ärger", color: "#0f0"))
            try w.insertProjectMember(ProjectMemberRecord(projectID: "prj_web", userID: "alice", addedAt: 1, addedByAgentID: nil))
            try w.insertProjectMember(ProjectMemberRecord(projectID: "prj_web", userID: "Bob", addedAt: 2, addedByAgentID: "agt_1"))
            // Adding someone twice keeps the first membership (SQLite's INSERT OR IGNORE).
            try w.insertProjectMember(ProjectMemberRecord(projectID: "prj_web", userID: "alice", addedAt: 3, addedByAgentID: "agt_1"))
        }
        let (projects, byKey, byID, states, labels, members) = try await store.read { r in
            (
                try r.projects(), try r.project(key: "OPS"), try r.project(id: "prj_web"), try r.states(projectID: "prj_web"),
                try r.labels(projectID: "prj_web"),
                try r.members(projectID: "prj_web")
            )
        }
        #expect(projects.map(\.key) == ["OPS", "WEB"])
        #expect(byKey?.id == "prj_ops" && byID?.description == "the site" && byID?.nextIssueNumber == 1)
        #expect(states.map(\.name) == ["Backlog", "Todo", "Done"])
        #expect(labels.map(\.name) == ["Bug", "docs", "ärger"])
        #expect(members.map(\.id) == ["Bob", "alice"])
        #expect(try await store.read { try $0.project(key: "web") } == nil)
        #expect(try await store.read { try $0.members(projectID: "prj_ops") }.isEmpty)
    }

    @Test(arguments: StoreBackend.allCases)
    func issuesAreNumberedUpdatedAndSearched(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        let titles = ["Fix the Signup link", "signup page 100% broken", "under_score", "Ünïcödé title", "ünïcödé lower", "Other"]
        let numbered = try await store.write { w in
            try titles.enumerated().map { index, title in
                try w.insertIssue(
                    Fixture.issue(
                        "iss_\(index)", title: title, state: index % 2 == 0 ? "st_todo" : "st_done", labels: index < 2 ? ["lbl_bug"] : ["lbl_docs"],
                        assignees: index == 1 ? ["Bob", "alice"] : []))
            }
        }
        #expect(numbered.map(\.number) == [1, 2, 3, 4, 5, 6])
        await #expect(throws: (any Error).self) {
            try await store.write {
                _ = try $0.insertIssue(
                    IssueRecord(
                        id: "x", projectID: "prj_none", number: 0, title: "", description: "", priority: "none", stateID: "st_todo", labelIDs: [],
                        assigneeIDs: [], blocks: [], createdByUserID: "alice", createdByAgentID: nil, createdAt: 0, updatedAt: 0))
            }
        }
        func search(_ query: IssueQuery) async throws -> [Int] { try await store.read { try $0.searchIssues(query) }.map(\.number) }
        // LIKE ignores the case of ASCII letters only, on both backends.
        #expect(try await search(IssueQuery(projectID: "prj_web", text: "SIGNUP")) == [1, 2])
        #expect(try await search(IssueQuery(projectID: "prj_web", text: "ünïcödé")) == [5])
        #expect(try await search(IssueQuery(projectID: "prj_web", text: "ÜNÏCÖDÉ")) == [])
        // The wildcards are literal.
        #expect(try await search(IssueQuery(projectID: "prj_web", text: "100%")) == [2])
        #expect(try await search(IssueQuery(projectID: "prj_web", text: "_")) == [3])
        #expect(try await search(IssueQuery(projectID: "prj_web", text: "%")) == [2])
        #expect(try await search(IssueQuery(projectID: "prj_web", stateID: "st_done")) == [2, 4, 6])
        #expect(try await search(IssueQuery(projectID: "prj_web", labelID: "lbl_bug")) == [1, 2])
        #expect(try await search(IssueQuery(projectID: "prj_web", assigneeID: "alice")) == [2])
        #expect(try await search(IssueQuery(projectID: "prj_web", labelID: "lbl_docs", afterNumber: 3, limit: 2)) == [4, 5])
        #expect(try await search(IssueQuery(projectID: "prj_web", afterNumber: 5, limit: 10)) == [6])
        #expect(try await search(IssueQuery(projectID: "prj_web", limit: 0)) == [])

        var issue = try #require(try await store.read { try $0.issue(projectID: "prj_web", number: 2) })
        #expect(issue.id == "iss_1" && issue.assigneeIDs == ["Bob", "alice"] && issue.createdByAgentID == "agt_1")
        issue.title = "Renamed ✓"
        issue.blocks = [IssueBlock(name: "Plan", text: "1. fix\n2. ship 🚀"), IssueBlock(name: "Result", text: "")]
        issue.createdByAgentID = nil
        issue.updatedAt = Fixture.t0 + 1
        let updated = issue
        try await store.write { try $0.updateIssue(updated) }
        #expect(try await store.read { try $0.issue(id: "iss_1") } == updated)
        #expect(try await store.read { try $0.issue(projectID: "prj_web", number: 99) } == nil)
        // Updating an issue that does not exist fails on both (GRDB's recordNotFound).
        var missing = updated
        missing.id = "iss_ghost"
        let ghost = missing
        await #expect(throws: (any Error).self) { try await store.write { try $0.updateIssue(ghost) } }
        #expect(try await store.read { try $0.project(id: "prj_web")?.nextIssueNumber } == 7)
    }

    @Test(arguments: StoreBackend.allCases)
    func commentsPageByTimeAndID(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        try await store.write { w in
            _ = try w.insertIssue(Fixture.issue("iss_1"))
            // Three comments at one time: the id orders them (bytewise: "C" < "a" < "b").
            for (id, at) in [("b", 10), ("a", 10), ("C", 10), ("d", 5), ("e", 20)] {
                try w.insertComment(
                    CommentRecord(
                        id: id, issueID: "iss_1", authorUserID: "alice", authorAgentID: id == "d" ? "agt_1" : nil, body: "body \(id) ✓",
                        createdAt: Int64(at)))
            }
        }
        var pages: [[String]] = []
        var after: CommentPosition?
        while true {
            let position = after
            let page = try await store.read { try $0.comments(issueID: "iss_1", after: position, limit: 2) }
            if page.isEmpty { break }
            pages.append(page.map(\.id))
            after = CommentPosition(createdAt: page.last!.createdAt, id: page.last!.id)
        }
        #expect(pages == [["d", "C"], ["a", "b"], ["e"]])
        let (count, comment) = try await store.read { r in (try r.commentCount(issueID: "iss_1"), try r.comment(id: "d")) }
        #expect(count == 5 && comment?.authorAgentID == "agt_1" && comment?.body == "body d ✓")
    }

    @Test(arguments: StoreBackend.allCases)
    func workSessionsAndTheirNotes(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        let session = WorkSessionRecord(
            id: "wks_1", agentID: "agt_1", projectID: "prj_web", issueID: nil, summary: "doing ✓", status: "active", result: nil, startedAt: 1,
            updatedAt: 1,
            finishedAt: nil)
        try await store.write { w in
            try w.insertWorkSession(session)
            try w.insertWorkSession(
                WorkSessionRecord(
                    id: "wks_2", agentID: "agt_1", projectID: "prj_web", issueID: nil, summary: "", status: "completed", result: "r", startedAt: 1,
                    updatedAt: 1, finishedAt: 2))
            for position in [1, 0, 2] {
                try w.insertWorkSessionNote(
                    WorkSessionNote(
                        workSessionID: "wks_1", position: position, at: Int64(position), text: "note \(position)",
                        issueID: position == 1 ? "iss_x" : nil))
            }
        }
        let (notes, count, empty, open) = try await store.read { r in
            (
                try r.workSessionNotes(workSessionID: "wks_1"), try r.workSessionNoteCount(workSessionID: "wks_1"),
                try r.workSessionNoteCount(workSessionID: "wks_2"), try r.openWorkSessionCount(agentID: "agt_1")
            )
        }
        #expect(notes.map(\.position) == [0, 1, 2] && notes[1].issueID == "iss_x" && notes[0].issueID == nil)
        #expect(count == 3 && empty == 0 && open == 1)
        await #expect(throws: (any Error).self) {
            try await store.write {
                try $0.insertWorkSessionNote(WorkSessionNote(workSessionID: "wks_1", position: 1, at: 9, text: "again", issueID: nil))
            }
        }
        var finished = session
        finished.status = "completed"
        finished.result = "merged"
        finished.finishedAt = 9
        finished.issueID = "iss_1"
        let done = finished
        try await store.write { try $0.updateWorkSession(done) }
        #expect(try await store.read { try $0.workSession(id: "wks_1") } == done)
        #expect(try await store.read { try $0.openWorkSessionCount(agentID: "agt_1") } == 0)
    }

    @Test(arguments: StoreBackend.allCases)
    func idempotencyRecordsAreReplaced(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        let first = IdempotencyRecord(agentID: "agt_1", keyHash: "k", tool: "create_issue", fingerprint: "f1", result: "{\"a\":1}", createdAt: 1)
        try await store.write { w in
            try w.saveIdempotencyRecord(first)
            try w.saveIdempotencyRecord(IdempotencyRecord(agentID: "agt_2", keyHash: "k", tool: "t", fingerprint: "f", result: "", createdAt: 1))
        }
        #expect(try await store.read { try $0.idempotencyRecord(agentID: "agt_1", keyHash: "k") } == first)
        // The gateway replaces a record once it is past its replay window: same key, new row.
        let second = IdempotencyRecord(
            agentID: "agt_1", keyHash: "k", tool: "comment_issue", fingerprint: "f2", result: "{\"b\":\"✓\"}", createdAt: 90_000_000)
        try await store.write { try $0.saveIdempotencyRecord(second) }
        #expect(try await store.read { try $0.idempotencyRecord(agentID: "agt_1", keyHash: "k") } == second)
        #expect(try await store.read { try $0.idempotencyRecord(agentID: "agt_2", keyHash: "k")?.tool } == "t")
        #expect(try await store.read { try $0.idempotencyRecord(agentID: "agt_3", keyHash: "k") } == nil)
    }

    @Test(arguments: StoreBackend.allCases)
    func auditFeedFiltersAndCursors(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        // Ids are ULIDs in the gateway; here any bytewise-ordered ids do.
        let events: [AuditEventRecord] = (0..<9).map { (index: Int) -> AuditEventRecord in
            let agent: String? = index == 4 ? "agt_2" : (index == 8 ? nil : "agt_1")
            let owner: String? = index == 4 ? "Bob" : (index == 8 ? nil : "alice")
            let tool = index % 3 == 0 ? "create_issue" : "get_issue"
            let outcome = index == 5 ? "denied" : "allowed"
            return Fixture.audit("01J\(index)", at: Int64(100 + index), agent: agent, owner: owner, tool: tool, outcome: outcome)
        }
        try await store.write { w in for event in events.reversed() { try w.insertAuditEvent(event) } }
        let (oldest, agentOnes, count, lastTime, last, none) = try await store.read { r in
            (
                try r.auditEvents(agentID: nil, limit: 3), try r.auditEvents(agentID: "agt_1", limit: 100), try r.auditEventCount(),
                try r.lastAuditTime(agentID: "agt_1"), try r.lastAuditEvent(agentID: "agt_1"), try r.lastAuditTime(agentID: "agt_none")
            )
        }
        #expect(oldest == Array(events.prefix(3)))
        #expect(agentOnes.map(\.id) == ["01J0", "01J1", "01J2", "01J3", "01J5", "01J6", "01J7"])
        #expect(count == 9 && lastTime == 107 && last?.id == "01J7" && none == nil)
        #expect(events[8].agentID == nil)
        #expect(try await store.read { try $0.auditEvents(matching: AuditQuery(limit: 1)) } == [events[8]])

        func feed(_ query: AuditQuery) async throws -> [String] { try await store.read { try $0.auditEvents(matching: query) }.map(\.id) }
        #expect(try await feed(AuditQuery(ownerID: "alice")) == ["01J7", "01J6", "01J5", "01J3", "01J2", "01J1", "01J0"])
        #expect(try await feed(AuditQuery(agentID: "agt_2")) == ["01J4"])
        #expect(try await feed(AuditQuery(tool: "create_issue")) == ["01J6", "01J3", "01J0"])
        #expect(try await feed(AuditQuery(outcome: "denied")) == ["01J5"])
        #expect(try await feed(AuditQuery(since: 102, until: 104)) == ["01J4", "01J3", "01J2"])
        // Paging newest first with the id cursor.
        var pages: [[String]] = []
        var before: String?
        repeat {
            let page = try await feed(AuditQuery(ownerID: "alice", beforeID: before, limit: 3))
            if page.isEmpty { break }
            pages.append(page)
            before = page.last
        } while true
        #expect(pages == [["01J7", "01J6", "01J5"], ["01J3", "01J2", "01J1"], ["01J0"]])
    }

    @Test(arguments: StoreBackend.allCases)
    func ownerSignInHistoryAndActions(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        try await store.write { w in
            _ = try w.insertIssue(Fixture.issue("iss_1"))
            try w.insertLoginLink(LoginLinkRecord(tokenHash: "link", userID: "alice", createdAt: 1, expiresAt: 100, usedAt: nil))
            try w.markLoginLinkUsed(tokenHash: "link", at: 5)
            try w.markLoginLinkUsed(tokenHash: "link", at: 6)  // used once: the first use stays
            for (id, user) in [("bs_1", "alice"), ("bs_2", "alice"), ("bs_3", "Bob")] {
                try w.insertBrowserSession(
                    BrowserSessionRecord(
                        id: id, tokenHash: "t_\(id)", userID: user, signedInVia: "link", createdAt: 1, lastSeenAt: 1, expiresAt: 1_000, endedAt: nil))
            }
            try w.touchBrowserSession(id: "bs_1", at: 7)
            try w.endBrowserSession(id: "bs_2", at: 8)
            try w.endBrowserSession(id: "bs_2", at: 9)
            for index in [2, 0, 1] {
                try w.insertIssueChange(
                    IssueChangeRecord(
                        id: "chg_\(index)", issueID: "iss_1", at: Int64(index), actorUserID: "alice", actorAgentID: index == 1 ? "agt_1" : nil,
                        action: "update_issue", summary: "changed \(index) ✓"))
            }
            try w.insertOwnerAction(
                OwnerActionRecord(id: "oa_1", at: 1, actorUserID: "alice", action: "sign_in", subjectID: nil, subjectOwnerID: nil, detail: ""))
            try w.insertOwnerAction(
                OwnerActionRecord(
                    id: "oa_2", at: 2, actorUserID: nil, action: "revoke_agent", subjectID: "agt_1", subjectOwnerID: "alice", detail: "by the CLI"))
            try w.insertOwnerAction(
                OwnerActionRecord(id: "oa_3", at: 3, actorUserID: "Bob", action: "block", subjectID: "alice", subjectOwnerID: nil, detail: ""))
            try w.insertOwnerAction(
                OwnerActionRecord(id: "oa_4", at: 4, actorUserID: "Bob", action: "sign_in", subjectID: nil, subjectOwnerID: nil, detail: ""))
        }
        let (link, touched, ended, changes, firstTwo) = try await store.read { r in
            (
                try r.loginLink(tokenHash: "link"), try r.browserSession(tokenHash: "t_bs_1"), try r.browserSession(tokenHash: "t_bs_2"),
                try r.issueChanges(issueID: "iss_1", limit: 10), try r.issueChanges(issueID: "iss_1", limit: 2)
            )
        }
        #expect(link?.usedAt == 5)
        #expect(touched?.lastSeenAt == 7 && touched?.endedAt == nil && ended?.endedAt == 8)
        #expect(changes.map(\.id) == ["chg_0", "chg_1", "chg_2"] && changes[1].actorAgentID == "agt_1" && firstTwo.count == 2)
        #expect(try await store.read { try $0.ownerActions(userID: nil, limit: 10) }.map(\.id) == ["oa_4", "oa_3", "oa_2", "oa_1"])
        #expect(try await store.read { try $0.ownerActions(userID: "alice", limit: 10) }.map(\.id) == ["oa_3", "oa_2", "oa_1"])
        #expect(try await store.read { try $0.ownerActions(userID: "alice", limit: 1) }.map(\.id) == ["oa_3"])
        try await store.write { try $0.endBrowserSessions(userID: "alice", at: 50) }
        let after = try await store.read { r in try ["t_bs_1", "t_bs_2", "t_bs_3"].map { try r.browserSession(tokenHash: $0)?.endedAt } }
        #expect(after == [50, 8, nil])
    }

    /// Concurrent writers each get their own number; none is lost or given twice.
    @Test(arguments: StoreBackend.allCases)
    func issueNumbersUnderConcurrentWrites(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        let numbers = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<24 {
                group.addTask { try await store.write { try $0.insertIssue(Fixture.issue("iss_c\(index)")) }.number }
            }
            // writeNow from plain threads (the gateway's write queue) at the same time.
            for index in 0..<8 {
                group.addTask {
                    try await withCheckedThrowingContinuation { continuation in
                        Thread.detachNewThread {
                            continuation.resume(with: Result { try store.writeNow { try $0.insertIssue(Fixture.issue("iss_t\(index)")) }.number })
                        }
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(numbers.sorted() == Array(1...32))
        #expect(try await store.read { try $0.searchIssues(IssueQuery(projectID: "prj_web", limit: 100)) }.map(\.number) == Array(1...32))
    }

    /// A write whose closure throws leaves nothing; a read sees one snapshot.
    @Test(arguments: StoreBackend.allCases)
    func failedWritesRollBackWhole(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await store.write { w in
                _ = try w.insertIssue(Fixture.issue("iss_gone"))
                try w.setSetting("half", value: "done")
                throw Abort()
            }
        }
        let (issue, setting, next) = try await store.read { r in
            (try r.issue(id: "iss_gone"), try r.setting("half"), try r.project(id: "prj_web")?.nextIssueNumber)
        }
        #expect(issue == nil && setting == nil && next == 1)
        // The store keeps working after a failed transaction (the connection went back clean).
        #expect(try await store.write { try $0.insertIssue(Fixture.issue("iss_ok")) }.number == 1)
    }

    /// Unicode and large text come back byte for byte; text with NUL is where the backends differ.
    @Test(arguments: StoreBackend.allCases)
    func unicodeLargeAndNULText(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        let large = String(repeating: "ünïcödé 🧪 line\n", count: 40_000)  // 880 KB
        let written = try await store.write { w in
            try unicodeTexts.enumerated().map { index, text in
                try w.insertIssue(Fixture.issue("iss_u\(index)", title: text, description: text + large))
            }
        }
        for issue in written {
            let stored = try #require(try await store.read { try $0.issue(id: issue.id) })
            #expect(stored.title == issue.title && stored.description == issue.description)
            #expect(Array(stored.description.utf8) == Array(issue.description.utf8))
        }
        let withNUL = Fixture.issue("iss_nul", title: "before\u{0}after")
        switch backend {
        case .sqlite:
            // SQLite stores it, but GRDB reads text up to the NUL: the rest is lost without an error.
            // No tool stores such text: the input schemas refuse control characters (docs/gateway.md).
            _ = try await store.write { try $0.insertIssue(withNUL) }
            #expect(try await store.read { try $0.issue(id: "iss_nul")?.title } == "before")
        case .postgres:
            // PostgreSQL's text cannot hold U+0000: the write fails whole, with a one-line error.
            let error = await #expect(throws: (any Error).self) { try await store.write { _ = try $0.insertIssue(withNUL) } }
            #expect("\(error.map { "\($0)" } ?? "")".contains("NUL"))
            #expect(try await store.read { try $0.issue(id: "iss_nul") } == nil)
        }
    }

    /// Approval requests: found again by session and fingerprint, decided once, used once; session
    /// approvals by session, tool and project; listings newest first; break-glass grants in force.
    @Test(arguments: StoreBackend.allCases)
    func approvalRequestsAndBreakGlass(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        try await Fixture.seed(store)
        let t0 = Fixture.t0
        @Sendable func request(
            _ id: String, session: String = "ses_1", fingerprint: String = "fp1", scope: String = "call", project: String? = "WEB"
        )
            -> ApprovalRequestRecord
        {
            ApprovalRequestRecord(
                id: id, agentID: "agt_1", ownerID: "alice", deviceID: "dev_1", sessionID: session, tool: "move_issue", project: project,
                fingerprint: fingerprint, summary: "move WEB-1 to “Done” ✓", tier: "high", scope: scope, approvers: "owner",
                status: ApprovalStatus.pending, decidedBy: nil, decidedAt: nil, reason: nil, breakGlassID: nil, createdAt: t0,
                expiresAt: t0 + 60_000, usedByAuditID: nil)
        }
        try await store.write { w in
            try w.insertApprovalRequest(request("apr_1"))
            try w.insertApprovalRequest(request("apr_2", fingerprint: "fp2", scope: "session"))
            try w.insertApprovalRequest(request("apr_3", session: "ses_2", project: nil))
        }
        #expect(try await store.read { try $0.approvalRequest(id: "apr_1") } == request("apr_1"))
        #expect(try await store.read { try $0.openApprovalRequestCount(agentID: "agt_1", at: t0) } == 3)
        #expect(try await store.read { try $0.openApprovalRequestCount(agentID: "agt_1", at: t0 + 60_000) } == 0)
        #expect(try await store.read { try $0.openApprovalRequestCount(agentID: "agt_9", at: t0) } == 0)
        // The session's own request first, then the device's newest (a renewed session), none for another device.
        #expect(try await store.read { try $0.resumableApprovalRequest(sessionID: "ses_1", deviceID: "dev_1", fingerprint: "fp1")?.id } == "apr_1")
        #expect(try await store.read { try $0.resumableApprovalRequest(sessionID: "ses_2", deviceID: "dev_1", fingerprint: "fp1")?.id } == "apr_3")
        #expect(try await store.read { try $0.resumableApprovalRequest(sessionID: "ses_9", deviceID: "dev_1", fingerprint: "fp1")?.id } == "apr_3")
        #expect(try await store.read { try $0.resumableApprovalRequest(sessionID: "ses_9", deviceID: "dev_9", fingerprint: "fp1") } == nil)
        #expect(try await store.read { try $0.approvalRequests(ApprovalQuery()).map(\.id) } == ["apr_3", "apr_2", "apr_1"])
        #expect(try await store.read { try $0.approvalRequests(ApprovalQuery(ownerID: "Bob")) }.isEmpty)
        #expect(try await store.read { try $0.approvalRequests(ApprovalQuery(openAt: t0 + 60_000)) }.isEmpty)

        // Decided once, and not after its expiry.
        #expect(
            try await store.write {
                try $0.decideApprovalRequest(id: "apr_1", status: "approved", decidedBy: "alice", at: t0 + 1, reason: "ok ✓", breakGlassID: nil)
            })
        #expect(
            !(try await store.write {
                try $0.decideApprovalRequest(id: "apr_1", status: "denied", decidedBy: "alice", at: t0 + 2, reason: nil, breakGlassID: nil)
            }))
        #expect(
            !(try await store.write {
                try $0.decideApprovalRequest(id: "apr_3", status: "approved", decidedBy: nil, at: t0 + 60_000, reason: nil, breakGlassID: nil)
            }))
        let decided = try #require(try await store.read { try $0.approvalRequest(id: "apr_1") })
        #expect(decided.status == "approved" && decided.decidedBy == "alice" && decided.decidedAt == t0 + 1 && decided.reason == "ok ✓")
        #expect(try await store.read { try $0.approvalRequests(ApprovalQuery(openAt: t0 + 2)).map(\.id) } == ["apr_3", "apr_2"])

        // Used once; then no longer resumable.
        #expect(try await store.write { try $0.markApprovalUsed(id: "apr_1", auditID: "evt_1") })
        #expect(!(try await store.write { try $0.markApprovalUsed(id: "apr_1", auditID: "evt_2") }))
        #expect(try await store.read { try $0.approvalRequest(id: "apr_1")?.usedByAuditID } == "evt_1")
        #expect(try await store.read { try $0.resumableApprovalRequest(sessionID: "ses_1", deviceID: "dev_9", fingerprint: "fp1") } == nil)

        // Session approvals: approved, session-wide, same session, tool and project.
        #expect(try await store.read { try $0.sessionApproval(sessionID: "ses_1", tool: "move_issue", project: "WEB") } == nil)
        _ = try await store.write {
            try $0.decideApprovalRequest(id: "apr_2", status: "approved", decidedBy: nil, at: t0 + 3, reason: nil, breakGlassID: nil)
        }
        #expect(try await store.read { try $0.sessionApproval(sessionID: "ses_1", tool: "move_issue", project: "WEB")?.id } == "apr_2")
        #expect(try await store.read { try $0.sessionApproval(sessionID: "ses_2", tool: "move_issue", project: "WEB") } == nil)
        #expect(try await store.read { try $0.sessionApproval(sessionID: "ses_1", tool: "assign_issue", project: "WEB") } == nil)
        #expect(try await store.read { try $0.sessionApproval(sessionID: "ses_1", tool: "move_issue", project: nil) } == nil)

        // Break-glass grants: in force until they expire or end.
        let grant = BreakGlassGrantRecord(
            id: "bkg_1", adminID: "Bob", reason: "incident ✓", createdAt: t0, expiresAt: t0 + 1000, endedAt: nil, openedBy: nil)
        try await store.write { try $0.insertBreakGlassGrant(grant) }
        #expect(try await store.read { try $0.breakGlassGrants(adminID: "Bob", activeAt: t0 + 10, limit: 5) } == [grant])
        #expect(try await store.read { try $0.breakGlassGrants(adminID: nil, activeAt: t0 + 1000, limit: 5) }.isEmpty)
        #expect(try await store.read { try $0.breakGlassGrants(adminID: "alice", activeAt: nil, limit: 5) }.isEmpty)
        #expect(try await store.write { try $0.endBreakGlassGrant(id: "bkg_1", at: t0 + 20) })
        #expect(!(try await store.write { try $0.endBreakGlassGrant(id: "bkg_1", at: t0 + 30) }))
        #expect(try await store.read { try $0.breakGlassGrants(adminID: nil, activeAt: t0 + 21, limit: 5) }.isEmpty)
        #expect(try await store.read { try $0.breakGlassGrants(adminID: nil, activeAt: nil, limit: 5).first?.endedAt } == t0 + 20)

        // The audit carries the tier and the request.
        var event = Fixture.audit("evt_1", at: t0)
        event.tier = "high"
        event.approvalID = "apr_1"
        let linked = event
        try await store.write { try $0.insertAuditEvent(linked) }
        #expect(try await store.read { try $0.auditEvents(agentID: "agt_1", limit: 5) } == [linked])
    }

    /// Opening a database again applies nothing twice.
    @Test(arguments: StoreBackend.allCases)
    func migrationsAreRecordedAndIdempotent(backend: StoreBackend) async throws {
        let location = try await backend.makeLocation()
        switch backend {
        case .sqlite:
            _ = try SQLiteGatewayStore(path: location)
            let again = try SQLiteGatewayStore(path: location)
            let names = try await again.pool.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") }
            #expect(names == PostgresGatewayStore.migrations.map(\.name))
        case .postgres:
            let url = try PostgresURL(parsing: location)
            let first = try await PostgresGatewayStore.open(url: url)
            try await first.write { try $0.setSetting("kept", value: "yes") }
            let again = try await PostgresGatewayStore.open(url: url, creating: false)
            #expect(
                try await again.appliedMigrations() == ["v1", "v2-work-session-notes", "v3-owners-and-console", "v4-shared-state", "v5-approvals"])
            #expect(try await again.read { try $0.setting("kept") } == "yes")
        }
    }
}
