import AgentWire
import Foundation
import SodiumKit
import Testing

@testable import GatewayCore

/// Two gateway instances on one PostgreSQL database behave as one (issue 16): one rate limit, one
/// claim per idempotency key, one pairing guard, the same MCP sessions, and a revocation made
/// through one refused at the next call on the other. (The three-instance runs behind nginx are
/// Tests/MultiInstance.) The single-process state that SQLite uses is checked beside it.
@Suite("State shared by gateway instances")
struct SharedStateTests {
    /// Two in-process gateways on one new PostgreSQL database, an agent with every scope, and a
    /// client paired through the first.
    func twoInstances(
        clock: ManualClock = ManualClock(), configure: @escaping (inout GatewayConfiguration) -> Void = { _ in }
    ) async throws -> (InProcessGateway, InProcessGateway, AgentClient, String) {
        let first = try await InProcessGateway(clock: clock, backend: .postgres, configure: configure)
        let second = try await InProcessGateway(clock: clock, backend: .postgres, sharing: first, configure: configure)
        let (agentID, code) = try await first.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: first.url, code: code)
        return (first, second, client, agentID)
    }

    @Test func aRateLimitHoldsAcrossInstances() async throws {
        let (first, second, client, _) = try await twoInstances { $0.writesPerMinute = 6 }
        var accepted = 0
        var limited = 0
        for index in 0..<12 {
            let target = index % 2 == 0 ? client : client.at(second.url)
            let (answer, result) = try await target.call("comment_issue", ["issue": "WEB-1", "body": .string("note \(index)")])
            if answer.status == 429 { limited += 1 } else if result.isToolSuccess { accepted += 1 }
        }
        // The clock does not move: one budget of 6 over both instances, not 6 on each.
        #expect(accepted == 6)
        #expect(limited == 6)
        _ = first
    }

    @Test func duplicatesOverTwoInstancesMakeOneIssueAndOneAnswer() async throws {
        let (first, second, client, _) = try await twoInstances()
        defer { withExtendedLifetime(first) {} }
        let results = try await withThrowingTaskGroup(of: JSONValue.self) { group in
            for index in 0..<16 {
                let target = index % 2 == 0 ? client : client.at(second.url)
                group.addTask {
                    try await target.call("create_issue", ["project": "WEB", "title": "Once over two instances"], idempotencyKey: "pool-race").1
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { !$0.isToolSuccess }.isEmpty, "\(results.map { $0.toolErrorCode ?? "ok" })")
        #expect(results.filter { $0["_meta"]?["io.agent-gateway/replayed"] == nil }.count == 1)
        let keys = Set(results.compactMap { $0["structuredContent"]?["issue"]?["key"]?.stringValue })
        #expect(keys.count == 1)
        let issues = try await second.store.read { store in
            try store.searchIssues(IssueQuery(projectID: try store.project(key: "WEB")!.id, text: "Once over two instances", limit: 50))
        }
        #expect(issues.count == 1)
    }

    @Test func aClaimLeftByADeadInstanceExpiresWithItsLease() async throws {
        let clock = ManualClock()
        let (first, second, client, agentID) = try await twoInstances(clock: clock)
        // The first instance claims the key and dies before its call commits (its claim is never
        // released; its lease is not renewed while the clock is held).
        let keyHash = first.gateway.idempotencyKeyHash(agentID: agentID, key: "orphan")
        let fingerprint = Hex.encode(
            Hash.sha256(Array("create_issue\n".utf8) + Gateway.canonicalArguments(["project": "WEB", "title": "After a crash"])))
        let dead = try await first.gateway.shared.claim("\(agentID)/\(keyHash)", fingerprint: fingerprint, now: clock.gatewayClock.nowMilliseconds())
        guard case .claimed = dead else { throw TestFailure("the first claim was not taken: \(dead)") }
        let retry = Task {
            try await client.at(second.url).call("create_issue", ["project": "WEB", "title": "After a crash"], idempotencyKey: "orphan").1
        }
        // The retry waits while the lease runs; past it, it claims the key and makes the issue.
        try await Task.sleep(for: .milliseconds(300))
        clock.advance(seconds: IdempotencyLease.milliseconds / 1000 + 1)
        let result = try await retry.value
        #expect(result.isToolSuccess, "\(result.toolErrorCode ?? "")")
        #expect(result["_meta"]?["io.agent-gateway/replayed"] == nil)
    }

    @Test func aRevocationThroughOneInstanceIsRefusedAtTheNextCallOnTheOther() async throws {
        let (first, second, client, agentID) = try await twoInstances()
        let onSecond = client.at(second.url)
        for _ in 0..<2 { #expect(try await onSecond.call("list_projects").1.isToolSuccess) }
        try await first.admin.revokeAgent(id: agentID)
        let refused = try await onSecond.call("list_projects").0
        #expect(refused.status == 401)
        #expect(refused.errorCode == "agent_revoked")
    }

    @Test func anMCPSessionOpenedOnOneInstanceServesOnTheOtherUntilClosed() async throws {
        let (first, second, client, _) = try await twoInstances()
        let onSecond = client.at(second.url)
        #expect(try await onSecond.rpc("tools/list").status == 200)
        #expect(try await client.rpc("tools/list").status == 200)
        let closed = try await HTTP.send(
            "DELETE", second.url + "/mcp", headers: client.authorization.merging(["Mcp-Session-Id": client.mcpSessionID!]) { $1 })
        #expect(closed.status == 204)
        // The first instance had the session in its cache: closing it moved the epoch.
        #expect(try await client.rpc("tools/list").status == 404)
        #expect(try await onSecond.rpc("tools/list").status == 404)
        _ = first
    }

    @Test func failedPairingGuessesCountOnEveryInstance() async throws {
        let (first, second, _, _) = try await twoInstances()
        let now = ManualClock().gatewayClock.nowMilliseconds()
        let free = PairingGuard.Policy().perAddress.free
        for _ in 0..<free {
            let (decision, _) = try await first.gateway.shared.beginPairing(address: "192.0.2.7", prefix: "ABCD", now: now)
            #expect(decision == .proceed(delay: 0))
        }
        // The guesses through the first instance used the address's free failures on the second too.
        let (decision, _) = try await second.gateway.shared.beginPairing(address: "192.0.2.7", prefix: "WXYZ", now: now)
        #expect(decision != .proceed(delay: 0))
        // A success gives its place back everywhere.
        let (_, ticket) = try await second.gateway.shared.beginPairing(address: "198.51.100.1", prefix: "QRST", now: now)
        let held = try #require(ticket)
        await first.gateway.shared.giveBack(held)
    }

    @Test func aReleaseWakesAWaiterOnAnotherInstance() async throws {
        let (first, second, _, _) = try await twoInstances()
        let now = ManualClock().gatewayClock.nowMilliseconds()
        // The listener connects at the first wait; let it, then wait in earnest.
        await second.gateway.shared.waitForRelease(of: "warm-up", milliseconds: 500)
        guard case .claimed(let claim) = try await first.gateway.shared.claim("agent/wake", fingerprint: "f", now: now) else {
            throw TestFailure("the claim was not taken")
        }
        let started = ContinuousClock.now
        let waiter = Task { await second.gateway.shared.waitForRelease(of: "agent/wake", milliseconds: 60_000) }
        try await Task.sleep(for: .milliseconds(200))
        await first.gateway.shared.release(claim)
        await waiter.value
        // Woken by NOTIFY, not by its one-minute bound.
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    /// A decision committed on the database by anyone (here the first instance's admin, as the
    /// admin CLI would) wakes a call waiting for it on the second instance by NOTIFY.
    @Test func aDecisionWakesAWaiterOnAnotherInstance() async throws {
        let (first, second, client, agentID) = try await twoInstances()
        let now = ManualClock().gatewayClock.nowMilliseconds()
        await second.gateway.shared.waitForDecision(of: "apr_warm-up", milliseconds: 500)
        let request = ApprovalRequestRecord(
            id: "apr_wake", agentID: agentID, ownerID: "alice", deviceID: client.deviceID, sessionID: "ses_x", tool: "move_issue",
            project: "WEB", fingerprint: "f", summary: "move WEB-1 to “Done”", tier: "high", scope: "call", approvers: "owner",
            status: ApprovalStatus.pending, decidedBy: nil, decidedAt: nil, reason: nil, breakGlassID: nil, createdAt: now,
            expiresAt: now + 600_000, usedByAuditID: nil)
        try await first.store.write { try $0.insertApprovalRequest(request) }
        let started = ContinuousClock.now
        let waiter = Task { await second.gateway.shared.waitForDecision(of: "apr_wake", milliseconds: 60_000) }
        try await Task.sleep(for: .milliseconds(200))
        _ = try await first.admin.decideApproval(id: "apr_wake", approve: true, reason: nil, by: .hostCLI)
        await waiter.value
        // Woken by NOTIFY agent_gateway_approvals, not by its one-minute bound.
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(try await second.store.read { try $0.approvalRequest(id: "apr_wake")?.status } == "approved")
    }

    @Test func oneProcessStateAnswersTheSameWay() async throws {
        let state = ProcessSharedState(pairingPolicy: PairingGuard.Policy(), random: try RandomSource.system())
        let now: Int64 = 1_000_000
        for _ in 0..<3 { #expect(try await state.takeToken(agentID: "a", bucket: .write, ratePerMinute: 3, now: now) == nil) }
        #expect(try await state.takeToken(agentID: "a", bucket: .write, ratePerMinute: 3, now: now) == 20)
        #expect(try await state.takeToken(agentID: "a", bucket: .read, ratePerMinute: 3, now: now) == nil)
        guard case .claimed(let claim) = try await state.claim("k", fingerprint: "f", now: now) else { throw TestFailure("not claimed") }
        #expect(try await state.claim("k", fingerprint: "f", now: now) == .inFlight)
        #expect(try await state.claim("k", fingerprint: "g", now: now) == .reusedWithOtherArguments)
        let waiter = Task { await state.waitForRelease(of: "k", milliseconds: 60_000) }
        while state.releases.count == 0 { try await Task.sleep(for: .milliseconds(5)) }
        await state.release(claim)
        await waiter.value
        guard case .claimed = try await state.claim("k", fingerprint: "g", now: now) else { throw TestFailure("not claimed after release") }
    }
}
