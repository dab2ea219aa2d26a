import AgentWire
import Foundation
import SodiumKit
import TestSupport
import Testing

@testable import GatewayCore

/// Capability tiers in the tools/call pipeline (issue 17): low and medium run, high waits for an
/// approval, critical for an admin under break-glass; retries resume the same request and write
/// once; session-wide approvals; many waiting agents; two instances on PostgreSQL; a restart.
@Suite("Capability tiers and approvals")
struct ApprovalTests {
    /// move_issue to Done: high, session-wide; comment_issue: high, per call, 1 s wait;
    /// create_issue: high, per call; add_project_member: critical.
    static let policyText = """
        version: 1
        defaults:
          waitSeconds: 40
        tools:
          move_issue:
            when:
              - argument: state
                in: [Done]
                tier: high
          comment_issue:
            tier: high
            approval: call
            waitSeconds: 1
          create_issue:
            tier: high
            approval: call
          add_project_member:
            tier: critical
        """

    static func gateway(_ backend: StoreBackend = .sqlite, sharing other: InProcessGateway? = nil) async throws -> InProcessGateway {
        let policy = try PolicyFile.parse(policyText)
        return try await InProcessGateway(clock: ManualClock(), backend: backend, sharing: other) { $0.policy = policy }
    }

    /// The pending requests once there are `count` of them (bounded: 30 s).
    static func pending(_ gateway: InProcessGateway, count: Int) async throws -> [ApprovalRequestRecord] {
        for _ in 0..<600 {
            let requests = try await gateway.admin.approvalRequests(pendingOnly: true)
            if requests.count >= count { return requests }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("\(count) pending approval requests did not appear within 30 s")
    }

    static func events(_ gateway: InProcessGateway, tool: String) async throws -> [AuditEventRecord] {
        try await gateway.store.read { try $0.auditEvents(agentID: nil, limit: 10_000) }.filter { $0.tool == tool }
    }

    @Test func lowRunsAndMediumIsFlaggedInTheAudit() async throws {
        let gateway = try await Self.gateway()
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        #expect(try await client.call("get_issue", ["issue": "WEB-1"]).1.isToolSuccess)
        #expect(try await client.call("assign_issue", ["issue": "WEB-1", "assignees": ["bob"]]).1.isToolSuccess)
        #expect(try await client.call("move_issue", ["issue": "WEB-1", "state": "In Progress"]).1.isToolSuccess)
        #expect(try await Self.events(gateway, tool: "get_issue").map(\.tier) == [nil])
        #expect(try await Self.events(gateway, tool: "assign_issue").map(\.tier) == ["medium"])
        #expect(try await Self.events(gateway, tool: "move_issue").map(\.tier) == ["medium"])
        #expect(try await gateway.admin.approvalRequests().isEmpty)
        // tools/list states each tool's tier.
        let tools = try await client.rpc("tools/list").json["result"]?["tools"]?.arrayValue ?? []
        func description(_ name: String) -> String { tools.first { $0["name"]?.stringValue == name }?["description"]?.stringValue ?? "" }
        #expect(description("get_issue").contains("Tier: low"))
        #expect(description("assign_issue").contains("Tier: medium"))
        #expect(description("move_issue").contains("high when state is Done"))
        #expect(description("comment_issue").contains("Tier: high (waits up to 1 s for Alice"))
        #expect(description("add_project_member").contains("Tier: critical"))
    }

    @Test(arguments: StoreBackend.allCases)
    func highWaitsIsApprovedInTheConsoleAndRunsOnce(backend: StoreBackend) async throws {
        let gateway = try await Self.gateway(backend)
        let (agentID, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let call = Task { try await client.call("move_issue", ["issue": "WEB-1", "state": "Done"]) }
        let request = try #require(try await Self.pending(gateway, count: 1).first)
        #expect(request.agentID == agentID && request.ownerID == "alice" && request.tool == "move_issue" && request.project == "WEB")
        #expect(request.summary == "move WEB-1 to “Done”" && request.tier == "high" && request.scope == "session")
        #expect(request.sessionID.hasPrefix("ses_") && request.deviceID == client.deviceID)

        // The owner sees it on the console page and approves it there.
        let alice = try await ConsoleBrowser.signIn(gateway, as: "alice")
        let page = try await alice.get("/console/approvals")
        #expect(
            page.status == 200 && String(decoding: page.body, as: UTF8.self).contains(request.id)
                && String(decoding: page.body, as: UTF8.self).contains("http-equiv=\"refresh\""))
        let approved = try await alice.post("/console/approvals/\(request.id)/approve", [("reason", "release day")])
        #expect(approved.status == 303)

        let (_, result) = try await call.value
        #expect(result.isToolSuccess, "\(result)")
        #expect(result["structuredContent"]?["issue"]?["state"]?["name"]?.stringValue == marked("Done"))
        let moves = try await Self.events(gateway, tool: "move_issue")
        #expect(moves.count == 1 && moves[0].outcome == "ok" && moves[0].approvalID == request.id && moves[0].tier == "high")
        let decided = try #require(try await gateway.store.read { try $0.approvalRequest(id: request.id) })
        #expect(decided.status == "approved" && decided.decidedBy == "alice" && decided.reason == "release day")
        #expect(decided.usedByAuditID == moves[0].id)
        let actions = try await gateway.admin.ownerActions()
        #expect(actions.contains { $0.action == "approve_request" && $0.subjectID == request.id && $0.actorUserID == "alice" })
        // Another owner neither sees nor decides it.
        let bob = try await ConsoleBrowser.signIn(gateway, as: "bob")
        #expect(try await bob.api("GET", "/approvals?status=all").json["requests"]?.arrayValue?.isEmpty == true)
        #expect(try await bob.api("POST", "/approvals/\(request.id)/deny", json: ["reason": "no"]).status == 404)
    }

    @Test func aDenialGivesAnIsErrorWithTheReason() async throws {
        let gateway = try await Self.gateway()
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let call = Task { try await client.call("move_issue", ["issue": "WEB-1", "state": "Done"]) }
        let request = try #require(try await Self.pending(gateway, count: 1).first)
        let alice = try await ConsoleBrowser.signIn(gateway, as: "alice")
        let missingReason = try await alice.api("POST", "/approvals/\(request.id)/deny", json: [:])
        #expect(missingReason.status == 422)
        let denied = try await alice.api("POST", "/approvals/\(request.id)/deny", json: ["reason": "not before the review"])
        #expect(denied.status == 200 && denied.json["request"]?["status"] == "denied")
        let (_, result) = try await call.value
        #expect(result.toolErrorCode == "approval_denied")
        let text = result["content"]?[0]?["text"]?.stringValue ?? ""
        #expect(text.contains("not before the review") && text.contains("alice"), "\(text)")
        #expect(try await Self.events(gateway, tool: "move_issue").map(\.outcome) == ["denied"])
        #expect(
            try await gateway.store.read { try $0.issue(projectID: try $0.project(key: "WEB")!.id, number: 1)?.stateID }
                == (try await gateway.store.read { try $0.states(projectID: try $0.project(key: "WEB")!.id).first { $0.name == "Todo" }?.id }))
    }

    @Test func aTimeoutThenARetryResumesTheSameRequestAndWritesOnce() async throws {
        let gateway = try await Self.gateway()
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        var client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let arguments: JSONValue = ["issue": "WEB-2", "body": "Shipping it.", "idempotencyKey": "comment-1"]
        let first = try await client.call("comment_issue", arguments).1
        #expect(first.toolErrorCode == "approval_pending")
        #expect(first["structuredContent"]?["error"]?["retryable"]?.boolValue == true)
        let text = first["content"]?[0]?["text"]?.stringValue ?? ""
        #expect(text.contains("same arguments") && text.contains("minute"), "\(text)")
        let second = try await client.call("comment_issue", arguments).1
        #expect(second.toolErrorCode == "approval_pending")
        // The sidecar renews its session token every few minutes: a retry after that resumes too.
        try await client.newSession()
        #expect(try await client.call("comment_issue", arguments).1.toolErrorCode == "approval_pending")
        let requests = try await gateway.admin.approvalRequests()
        #expect(requests.count == 1)
        let id = try #require(requests.first?.id)
        #expect(text.contains(id))
        _ = try await gateway.admin.decideApproval(id: id, approve: true, reason: nil, by: .hostCLI)
        let third = try await client.call("comment_issue", arguments).1
        #expect(third.isToolSuccess, "\(third)")
        // The same key again replays the stored result without asking anyone.
        let replay = try await client.call("comment_issue", arguments).1
        #expect(replay.isToolSuccess && replay["_meta"]?[ResultMeta.replayed]?.boolValue == true)
        #expect(try await gateway.admin.approvalRequests().count == 1)
        let issueID = try #require(try await gateway.store.read { try $0.issue(projectID: try $0.project(key: "WEB")!.id, number: 2)?.id })
        #expect(try await gateway.store.read { try $0.commentCount(issueID: issueID) } == 1)
        // A call-wide approval ran its one call: the same arguments under a new key ask again.
        let again = try await client.call("comment_issue", ["issue": "WEB-2", "body": "Shipping it.", "idempotencyKey": "comment-2"]).1
        #expect(again.toolErrorCode == "approval_pending")
        #expect(try await gateway.admin.approvalRequests().count == 2)
    }

    @Test func aSessionWideApprovalCoversLaterCallsAndANewSessionAsksAgain() async throws {
        let gateway = try await Self.gateway()
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        var client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let snapshot = client
        let first = Task { try await snapshot.call("move_issue", ["issue": "WEB-1", "state": "Done"]) }
        let request = try #require(try await Self.pending(gateway, count: 1).first)
        _ = try await gateway.admin.decideApproval(id: request.id, approve: true, reason: "sprint close", by: .user("alice"))
        #expect(try await first.value.1.isToolSuccess)
        // The same session moves another issue to Done at once.
        #expect(try await client.call("move_issue", ["issue": "WEB-2", "state": "Done"]).1.isToolSuccess)
        #expect(try await gateway.admin.approvalRequests().count == 1)
        // A new session asks again.
        try await client.newSession()
        let renewed = client
        let later = Task { try await renewed.call("move_issue", ["issue": "WEB-3", "state": "Done"]) }
        let next = try #require(try await Self.pending(gateway, count: 1).first)
        #expect(next.id != request.id && next.sessionID != request.sessionID)
        _ = try await gateway.admin.decideApproval(id: next.id, approve: false, reason: "enough for today", by: .user("alice"))
        #expect(try await later.value.1.toolErrorCode == "approval_denied")
    }

    @Test func criticalNeedsAnAdminUnderBreakGlass() async throws {
        let gateway = try await Self.gateway()
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let arguments: JSONValue = ["project": "WEB", "member": "dave"]
        #expect(try await client.call("add_project_member", arguments).1.toolErrorCode == "break_glass_required")
        #expect(try await gateway.admin.approvalRequests().isEmpty)

        await #expect(throws: AdminError.self) {
            _ = try await gateway.admin.openBreakGlass(adminID: "alice", reason: "not an admin", minutes: 10, by: .hostCLI)
        }
        await #expect(throws: AdminError.self) { _ = try await gateway.admin.openBreakGlass(adminID: "ada", reason: " ", minutes: 10, by: .hostCLI) }
        let grant = try await gateway.admin.openBreakGlass(adminID: "ada", reason: "onboarding dave during the incident", minutes: 15, by: .hostCLI)
        let call = Task { try await client.call("add_project_member", arguments) }
        let request = try #require(try await Self.pending(gateway, count: 1).first)
        #expect(request.tier == "critical" && request.scope == "call" && request.approvers == "admin")
        // The owner, the host CLI without an admin, and an admin without a reason may not approve it.
        for (actor, reason) in [(ActionActor.user("alice"), "mine"), (.hostCLI, "host"), (.user("ada"), "")] {
            await #expect(throws: AdminError.self) {
                _ = try await gateway.admin.decideApproval(id: request.id, approve: true, reason: reason, by: actor)
            }
        }
        let approved = try await gateway.admin.decideApproval(id: request.id, approve: true, reason: "checked with dave", by: .user("ada"))
        #expect(approved.breakGlassID == grant.id)
        let (_, result) = try await call.value
        #expect(result.isToolSuccess, "\(result)")
        let events = try await Self.events(gateway, tool: "add_project_member")
        #expect(events.map(\.tier) == ["critical", "critical"] && events.last?.approvalID == request.id)
        let actions = try await gateway.admin.ownerActions().map(\.action)
        #expect(actions.contains("open_break_glass") && actions.contains("approve_critical_request"))
        // Once the grant ends, critical calls are refused again.
        try await gateway.admin.endBreakGlass(id: grant.id, by: .hostCLI)
        #expect(try await client.call("add_project_member", ["project": "WEB", "member": "carol"]).1.toolErrorCode == "break_glass_required")
    }

    /// An agent may have at most 20 requests waiting: the next high call is refused at once.
    @Test func anAgentCannotFloodTheApproversWithRequests() async throws {
        let gateway = try await Self.gateway()
        let (agentID, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let moment = gateway.gateway.now
        try await gateway.store.write { store in
            for index in 0..<Gateway.maximumOpenApprovalsPerAgent {
                try store.insertApprovalRequest(
                    ApprovalRequestRecord(
                        id: "apr_flood\(index)", agentID: agentID, ownerID: "alice", deviceID: client.deviceID, sessionID: "ses_old",
                        tool: "comment_issue", project: "WEB", fingerprint: "f\(index)", summary: "comment", tier: "high", scope: "call",
                        approvers: "owner", status: ApprovalStatus.pending, decidedBy: nil, decidedAt: nil, reason: nil, breakGlassID: nil,
                        createdAt: moment, expiresAt: moment + 600_000, usedByAuditID: nil))
            }
        }
        let refused = try await client.call("comment_issue", ["issue": "WEB-1", "body": "one more"]).1
        #expect(refused.toolErrorCode == "rate_limited")
        #expect(try await gateway.admin.approvalRequests(pendingOnly: true).count == Gateway.maximumOpenApprovalsPerAgent)
        // Deciding one makes room for one.
        _ = try await gateway.admin.decideApproval(id: "apr_flood0", approve: false, reason: "old", by: .hostCLI)
        #expect(try await client.call("comment_issue", ["issue": "WEB-1", "body": "one more"]).1.toolErrorCode == "approval_pending")
    }

    @Test func twentyAgentsWaitAtOnceWithoutCrossTalk() async throws {
        let gateway = try await Self.gateway()
        var clients: [AgentClient] = []
        for index in 0..<20 {
            let (_, code) = try await gateway.newAgent(scopes: Scope.all, name: "agent \(index)")
            clients.append(try await AgentClient.pair(baseURL: gateway.url, code: code))
        }
        let calls = clients.enumerated().map { index, client in
            Task { try await client.call("create_issue", ["project": "WEB", "title": .string("Task \(index)")]) }
        }
        let requests = try await Self.pending(gateway, count: 20)
        #expect(Set(requests.map(\.agentID)).count == 20)
        // Approve them one by one, in reverse order; each call gets its own issue.
        for request in requests.sorted(by: { $0.summary > $1.summary }) {
            _ = try await gateway.admin.decideApproval(id: request.id, approve: true, reason: nil, by: .user("alice"))
        }
        for (index, call) in calls.enumerated() {
            let (_, result) = try await call.value
            #expect(result.isToolSuccess, "\(index): \(result)")
            #expect(result["structuredContent"]?["issue"]?["title"]?.stringValue == marked("Task \(index)"))
        }
        let creates = try await Self.events(gateway, tool: "create_issue")
        #expect(creates.count == 20 && Set(creates.compactMap(\.approvalID)) == Set(requests.map(\.id)))
    }

    /// Two instances on one PostgreSQL database: the call waits on one, the approval is given on
    /// the other, and the waiting call wakes (LISTEN/NOTIFY, or the bounded poll).
    @Test func anApprovalOnOneInstanceWakesTheCallOnAnother() async throws {
        let first = try await Self.gateway(.postgres)
        let second = try await Self.gateway(.postgres, sharing: first)
        let (_, code) = try await first.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: first.url, code: code)
        let call = Task { try await client.call("move_issue", ["issue": "WEB-4", "state": "Done"]) }
        let request = try #require(try await Self.pending(second, count: 1).first)
        let alice = try await ConsoleBrowser.signIn(second, as: "alice")
        #expect(try await alice.api("POST", "/approvals/\(request.id)/approve", json: [:]).status == 200)
        let (_, result) = try await call.value
        #expect(result.isToolSuccess, "\(result)")
        #expect(try await Self.events(second, tool: "move_issue").map(\.approvalID) == [request.id])
    }

    /// A real gateway restarts while a request is pending: the request survives, the retry finds
    /// it, the CLI approves it, and the change happens once.
    @Test func aRequestSurvivesARestartAndTheRetryFindsIt() async throws {
        let directory = temporaryDirectory()
        let path = directory + "/policy.yaml"
        try Self.policyText.write(toFile: path, atomically: true, encoding: .utf8)
        let server = try await GatewayProcess.start(extraArguments: ["--policy", path])
        let database = server.database
        let (_, code) = try await offThePool { try server.newAgent(scopes: Scope.all) }
        var client = try await AgentClient.pair(baseURL: server.url, code: code)
        let arguments: JSONValue = ["issue": "WEB-1", "body": "Deployed."]
        #expect(try await client.call("comment_issue", arguments).1.toolErrorCode == "approval_pending")
        try await offThePool { server.stop() }

        let restarted = try await GatewayProcess.start(extraArguments: ["--policy", path], database: database, seed: false)
        defer { restarted.stop() }
        client = client.at(restarted.url)
        try await client.initialize()
        #expect(try await client.call("comment_issue", arguments).1.toolErrorCode == "approval_pending")
        let listed = try JSONValue(parsing: try await offThePool { try restarted.admin(["approvals", "list", "--json"]) })
        let requests = listed["requests"]?.arrayValue ?? []
        #expect(requests.count == 1)
        let id = try #require(requests.first?["id"]?.stringValue)
        _ = try await offThePool { try restarted.admin(["approvals", "approve", id, "--reason", "fine"]) }
        #expect(try await client.call("comment_issue", arguments).1.isToolSuccess)
        let events = try JSONValue(parsing: try await offThePool { try restarted.admin(["audit", "--json"]) })["events"]?.arrayValue ?? []
        let comments = events.filter { $0["tool"] == "comment_issue" }
        #expect(comments.map { $0["outcome"]?.stringValue } == ["denied", "denied", "ok"])
        #expect(comments.allSatisfy { $0["approval"]?.stringValue == id && $0["tier"] == "high" })
    }
    /// The optional webhook: a new request is POSTed, signed with HMAC-SHA-256 over the body, tried
    /// again after 503s with back-off, carrying the summary and no other argument text.
    @Test func aNewRequestIsAnnouncedBySignedWebhookWithRetries() async throws {
        let receiver = try await WebhookReceiver.start(failing: 2)
        let secret = Array("a-webhook-secret-of-32-bytes-xyz".utf8)
        let policy = try PolicyFile.parse(Self.policyText)
        let gateway = try await InProcessGateway(clock: ManualClock()) { configuration in
            configuration.policy = policy
            var webhook = ApprovalWebhookSettings(url: receiver.url + "/hook", secret: secret)
            webhook.firstRetryMilliseconds = 100
            configuration.approvalWebhook = webhook
        }
        let (_, code) = try await gateway.newAgent(scopes: Scope.all, name: "webhook agent")
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let body = "Secret plan: rotate the keys tonight."
        #expect(try await client.call("comment_issue", ["issue": "WEB-1", "body": .string(body)]).1.toolErrorCode == "approval_pending")
        var deliveries: [JSONValue] = []
        for _ in 0..<300 where deliveries.count < 3 {
            deliveries = try await receiver.received()
            if deliveries.count < 3 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(deliveries.map { $0["status"]?.intValue } == [503, 503, 204])
        let request = try #require(try await gateway.admin.approvalRequests().first)
        for delivery in deliveries {
            let text = delivery["body"]?.stringValue ?? ""
            let headers = delivery["headers"]?.objectValue ?? [:]
            let signature = headers.members.first { $0.key.lowercased() == "x-agent-gateway-signature" }?.value.stringValue
            #expect(signature == "sha256=" + Hex.encode(Hash.hmacSHA256(Array(text.utf8), key: secret)))
            let event = try JSONValue(parsing: text)
            #expect(event["type"] == "approval.requested" && event["request"]?["id"]?.stringValue == request.id)
            #expect(event["request"]?["summary"]?.stringValue == "comment on WEB-1 (\(body.count) characters)")
            #expect(event["request"]?["agent"]?["name"] == "webhook agent")
            #expect(!text.contains("Secret plan") && !text.contains(String(decoding: secret, as: UTF8.self)) && !text.contains(client.token))
        }
        // A retry of the same call makes no second request, so no second announcement.
        #expect(try await client.call("comment_issue", ["issue": "WEB-1", "body": .string(body)]).1.toolErrorCode == "approval_pending")
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await receiver.received().count == 3)
    }
}

/// The TEST DOUBLE of a team's webhook endpoint (`Tests/Doubles/webhook-receiver.py`) on loopback.
final class WebhookReceiver: @unchecked Sendable {
    let process: SpawnedProcess
    let url: String

    private init(process: SpawnedProcess, url: String) {
        self.process = process
        self.url = url
    }

    static func start(failing: Int) async throws -> WebhookReceiver {
        let (process, url) = try await startDouble("webhook-receiver.py", ["--fail", String(failing)], name: "the webhook receiver")
        return WebhookReceiver(process: process, url: url)
    }

    deinit { process.signal(SIGKILL) }

    func received() async throws -> [JSONValue] {
        try await HTTP.send("GET", url + "/_double/received").json["received"]?.arrayValue ?? []
    }
}
