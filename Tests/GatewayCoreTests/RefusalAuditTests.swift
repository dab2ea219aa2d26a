import AgentWire
import Foundation
import GatewayCore
import SodiumKit
import Testing

/// Calls refused because of who is calling (revoked agent or device, blocked owner, expired or
/// ended session) leave one `refused` audit event each, with the reason and without argument text.
@Suite("Audit of refused calls")
struct RefusalAuditTests {
    static func refused(_ gateway: InProcessGateway, agentID: String) async throws -> [AuditEventRecord] {
        try await gateway.admin.auditEvents(agentID: agentID).filter { $0.outcome == "refused" }
    }

    @Test func expiredAndEndedSessionsAreAudited() async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock) { $0.sessionTTLSeconds = 60 }
        let (agentID, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        var client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        clock.advance(seconds: 61)
        let secret = "text the audit must never hold"
        let (expired, _) = try await client.call("search_issues", ["project": "WEB", "text": .string(secret)])
        #expect(expired.errorCode == "token_expired")

        try await client.newSession()
        try await client.initialize()
        #expect(try await HTTP.send("DELETE", gateway.url + "/api/v1/sessions/current", headers: client.authorization).status == 204)
        #expect(try await client.rpc("tools/list").errorCode == "session_ended")

        let events = try await Self.refused(gateway, agentID: agentID)
        #expect(events.map(\.errorCode) == ["token_expired", "session_ended"])
        #expect(events.map(\.tool) == ["search_issues", "mcp:tools/list"])
        #expect(events.allSatisfy { $0.sessionID != nil && $0.deviceID == client.deviceID && $0.ownerID == "alice" && $0.project == nil })
        // The arguments are fingerprinted as for allowed calls, never stored.
        let canonical = JSONValue.object(["project": "WEB", "text": .string(secret)]).canonicalized().serialized()
        #expect(events[0].argumentsSHA256 == Hex.encode(Hash.sha256(canonical)))
        let rendered = "\(try await gateway.admin.auditEvents(agentID: agentID))"
        #expect(!rendered.contains(secret) && !rendered.contains(client.token))
    }

    @Test func revokedDeviceIsAuditedOnMCPOnRESTAndOnSessionMint() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (agentID, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        #expect(try await HTTP.send("POST", gateway.url + "/api/v1/devices/current/revoke", headers: client.authorization).status == 200)
        #expect(try await client.call("list_projects").0.errorCode == "device_revoked")
        #expect(try await HTTP.send("GET", gateway.url + "/api/v1/agent-session/setup", headers: client.authorization).errorCode == "device_revoked")
        let mint = try await HTTP.send(
            "POST", gateway.url + "/api/v1/sessions", json: AgentClient.sessionBody(baseURL: gateway.url, deviceID: client.deviceID, key: client.key))
        #expect(mint.errorCode == "device_revoked")
        let events = try await Self.refused(gateway, agentID: agentID)
        #expect(events.map(\.tool) == ["list_projects", "api:setup", "api:create_session"])
        #expect(events.allSatisfy { $0.errorCode == "device_revoked" })
        #expect(events.last?.sessionID == nil)
    }

    @Test func revokedAgentAndBlockedOwnerAreAudited() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (agentID, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        try await gateway.admin.setOwnerBlocked(id: "alice", blocked: true)
        #expect(try await client.call("list_projects").0.errorCode == "owner_blocked")
        try await gateway.admin.setOwnerBlocked(id: "alice", blocked: false)
        try await gateway.admin.revokeAgent(id: agentID)
        #expect(try await client.call("list_projects").0.errorCode == "agent_revoked")
        let mint = try await HTTP.send(
            "POST", gateway.url + "/api/v1/sessions", json: AgentClient.sessionBody(baseURL: gateway.url, deviceID: client.deviceID, key: client.key))
        #expect(mint.errorCode == "agent_revoked")
        let events = try await Self.refused(gateway, agentID: agentID)
        #expect(events.map(\.errorCode) == ["owner_blocked", "agent_revoked", "agent_revoked"])
        #expect(events.map(\.tool) == ["list_projects", "list_projects", "api:create_session"])
    }

    @Test func unknownCallersAndNotificationsLeaveNoEvent() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (agentID, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let before = try await gateway.admin.auditEvents(agentID: nil).count
        // No token, an unknown token, a forged signature: nobody to attribute the refusal to.
        #expect(try await HTTP.send("POST", gateway.url + "/mcp", json: ["jsonrpc": "2.0", "id": 1, "method": "tools/list"]).status == 401)
        let unknown = try await HTTP.send(
            "POST", gateway.url + "/mcp", json: ["jsonrpc": "2.0", "id": 1, "method": "tools/list"], headers: ["Authorization": "Bearer ags_nope"])
        #expect(unknown.errorCode == "token_invalid")
        let forged = try await HTTP.send(
            "POST", gateway.url + "/api/v1/sessions", json: AgentClient.sessionBody(baseURL: gateway.url, deviceID: client.deviceID, key: DeviceKey())
        )
        #expect(forged.errorCode == "signature_invalid")
        // A refused notification is not a call.
        try await gateway.admin.revokeAgent(id: agentID)
        let notification = try await HTTP.send(
            "POST", gateway.url + "/mcp", json: ["jsonrpc": "2.0", "method": "notifications/initialized"], headers: client.authorization)
        #expect(notification.errorCode == "agent_revoked")
        #expect(try await gateway.admin.auditEvents(agentID: nil).count == before)
    }

    @Test func refusalsAreAuditedAtMostSixtyPerDevicePerMinute() async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock)
        let (agentID, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        try await gateway.admin.revokeAgent(id: agentID)
        for _ in 0..<70 { #expect(try await client.call("list_projects").0.errorCode == "agent_revoked") }
        #expect(try await Self.refused(gateway, agentID: agentID).count == 60)
        clock.advance(seconds: 61)
        #expect(try await client.call("list_projects").0.errorCode == "agent_revoked")
        #expect(try await Self.refused(gateway, agentID: agentID).count == 61)
    }

    @Test func toolNamesOfRefusedCallsAreBounded() {
        #expect(RefusedCall(tool: String(repeating: "x", count: 500)).tool.count == 64)
        #expect(RefusedCall(tool: "a\nb<script>").tool == "a?b?script?")
        #expect(RefusedCall.mcp(["jsonrpc": "2.0", "method": "notifications/cancelled"]) == nil)
        #expect(RefusedCall.mcp(["jsonrpc": "2.0", "id": 3, "method": "ping"])?.tool == "mcp:ping")
        #expect(RefusedCall.mcp(nil)?.tool == "mcp:unreadable")
    }
}
