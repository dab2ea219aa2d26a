import AgentWire
import Foundation
import GatewayCore
import SodiumKit
import Testing

@Suite("Idempotency, audit and rate limits")
struct IdempotencyAndAuditTests {
    func issueCount(_ gateway: InProcessGateway, title: String) async throws -> Int {
        try await gateway.store.read { store in
            let web = try store.project(key: "WEB")!
            return try store.searchIssues(IssueQuery(projectID: web.id, text: title, afterNumber: 0, limit: 1000)).count
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func sameKeyReplaysTheStoredResult(backend: StoreBackend) async throws {
        let gateway = try await InProcessGateway(clock: ManualClock(), backend: backend)
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let arguments: JSONValue = ["project": "WEB", "title": "Replay me", "labels": ["bug"]]
        let first = try await client.call("create_issue", arguments, idempotencyKey: "key-1").1
        #expect(first.isToolSuccess)
        #expect(first["_meta"]?["io.agent-gateway/replayed"] == nil)
        // Same arguments in another member order: the canonical form matches.
        let reordered: JSONValue = ["labels": ["bug"], "title": "Replay me", "project": "WEB"]
        let second = try await client.call("create_issue", reordered, idempotencyKey: "key-1").1
        #expect(second["_meta"]?["io.agent-gateway/replayed"]?.boolValue == true)
        #expect(second["structuredContent"] == first["structuredContent"])
        #expect(try await issueCount(gateway, title: "Replay me") == 1)

        // The argument wins over the header, and is not part of the fingerprint.
        var withArgument = arguments.objectValue!
        withArgument["idempotencyKey"] = "key-1"
        let third = try await client.call("create_issue", .object(withArgument), idempotencyKey: "other-header-key").1
        #expect(third["_meta"]?["io.agent-gateway/replayed"]?.boolValue == true)

        let reused = try await client.call("create_issue", ["project": "WEB", "title": "Something else"], idempotencyKey: "key-1").1
        #expect(reused.toolErrorCode == "idempotency_key_reused")
        #expect(try await issueCount(gateway, title: "Something else") == 0)

        // Keys are scoped to the agent: another agent's same key is a new write.
        let (_, otherCode) = try await gateway.newAgent(scopes: Scope.all)
        let other = try await AgentClient.pair(baseURL: gateway.url, code: otherCode)
        let fromOther = try await other.call("create_issue", arguments, idempotencyKey: "key-1").1
        #expect(fromOther.isToolSuccess && fromOther["_meta"]?["io.agent-gateway/replayed"] == nil)
        #expect(try await issueCount(gateway, title: "Replay me") == 2)
    }

    @Test(arguments: StoreBackend.allCases)
    func replayWindowIsTwentyFourHours(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock, backend: backend) { $0.sessionTTLSeconds = 200_000 }
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let arguments: JSONValue = ["issue": "WEB-1", "body": "daily"]
        _ = try await client.call("comment_issue", arguments, idempotencyKey: "day")
        clock.advance(seconds: 23 * 3600)
        #expect(try await client.call("comment_issue", arguments, idempotencyKey: "day").1["_meta"]?["io.agent-gateway/replayed"]?.boolValue == true)
        clock.advance(seconds: 2 * 3600)
        let fresh = try await client.call("comment_issue", arguments, idempotencyKey: "day").1
        #expect(fresh.isToolSuccess && fresh["_meta"]?["io.agent-gateway/replayed"] == nil)
    }

    @Test(arguments: StoreBackend.allCases)
    func concurrentCallsWithOneKeyCreateOneIssue(backend: StoreBackend) async throws {
        let gateway = try await InProcessGateway(clock: ManualClock(), backend: backend)
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let results = try await withThrowingTaskGroup(of: JSONValue.self) { group in
            for _ in 0..<12 {
                group.addTask { try await client.call("create_issue", ["project": "WEB", "title": "Exactly once"], idempotencyKey: "race").1 }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(try await issueCount(gateway, title: "Exactly once") == 1)
        // The duplicates wait for the first call and replay its result: every reply is a success.
        let originals = results.filter { $0.isToolSuccess && $0["_meta"]?["io.agent-gateway/replayed"] == nil }
        #expect(originals.count == 1)
        #expect(results.filter { !$0.isToolSuccess }.isEmpty, "\(results.map { $0.toolErrorCode ?? "ok" })")
        let keys = Set(results.compactMap { $0["structuredContent"]?["issue"]?["key"]?.stringValue })
        #expect(keys.count == 1)
    }

    @Test(arguments: StoreBackend.allCases)
    func everyCallLeavesOneAuditEventWithoutSecrets(backend: StoreBackend) async throws {
        let gateway = try await InProcessGateway(clock: ManualClock(), backend: backend)
        let (agentID, code) = try await gateway.newAgent(scopes: [Scope.projectRead, Scope.issueCreate])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let before = try await gateway.admin.auditEvents(agentID: agentID).count
        #expect(before == 0)
        let secretTitle = "Very secret title 7f3a"
        _ = try await client.call("list_projects")
        _ = try await client.call("get_issue", ["issue": "WEB-1"])
        _ = try await client.call("create_issue", ["project": "WEB", "title": .string(secretTitle)], idempotencyKey: "audit-key")
        _ = try await client.call("create_issue", ["project": "WEB", "title": .string(secretTitle)], idempotencyKey: "audit-key")
        _ = try await client.call("get_issue", ["issue": "OPS-1"])
        _ = try await client.call("comment_issue", ["issue": "WEB-1", "body": "x"])
        _ = try await client.call("get_issue", ["issue": "WEB-1", "bogus": 1])
        _ = try await client.call("delete_issue", ["issue": "WEB-1"])
        _ = try await client.rpc("tools/list")
        let events = try await gateway.admin.auditEvents(agentID: agentID)
        #expect(events.count == 8)
        // An unknown tool's name is audited as a hash, not as the text the agent sent.
        #expect(
            events.map(\.tool) == [
                "list_projects", "get_issue", "create_issue", "create_issue", "get_issue", "comment_issue", "get_issue",
                "unknown:" + String(Hex.encode(Hash.sha256(Array("delete_issue".utf8))).prefix(16)),
            ])
        #expect(
            events.map { $0.errorCode ?? "ok" } == [
                "ok", "ok", "ok", "ok", "project_not_granted", "scope_denied", "validation_failed", "unknown_tool",
            ])
        #expect(events[3].replayed && !events[2].replayed)
        #expect(events[2].idempotencyKeyHash != nil && events[2].idempotencyKeyHash == events[3].idempotencyKeyHash)
        #expect(events[2].idempotencyKeyHash != "audit-key")
        #expect(events[1].targetIDs.first?.hasPrefix("iss_") == true)
        #expect(events[4].project == "OPS")
        for event in events {
            #expect(event.id.count == 26)
            #expect(event.agentID == agentID && event.ownerID == "alice" && event.deviceID == client.deviceID)
            #expect(event.sessionID?.hasPrefix("ses_") == true)
            #expect(event.argumentsSHA256.count == 64)
        }
        let rendered = events.map { GatewayAdmin.json($0).jsonText }.joined()
        #expect(!rendered.contains(secretTitle))
        #expect(!rendered.contains(client.token))
        #expect(!rendered.contains("audit-key"))
    }

    @Test func readAndWriteRateLimitsAnswer429() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock()) {
            $0.readsPerMinute = 3
            $0.writesPerMinute = 2
        }
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        for _ in 0..<3 { #expect(try await client.call("list_projects").1.isToolSuccess) }
        let (limited, _) = try await client.call("list_projects")
        #expect(limited.status == 429)
        #expect(limited.errorCode == "rate_limited")
        #expect(Int(limited.header("Retry-After") ?? "") ?? 0 >= 1)
        // Writes have their own bucket.
        for index in 0..<2 { #expect(try await client.call("comment_issue", ["issue": "WEB-1", "body": .string("c\(index)")]).1.isToolSuccess) }
        let (writeLimited, _) = try await client.call("comment_issue", ["issue": "WEB-1", "body": "c3"])
        #expect(writeLimited.status == 429 && writeLimited.errorCode == "rate_limited")
        // Another agent is not affected.
        let (_, otherCode) = try await gateway.newAgent(scopes: Scope.all)
        let other = try await AgentClient.pair(baseURL: gateway.url, code: otherCode)
        #expect(try await other.call("list_projects").1.isToolSuccess)
    }
}
