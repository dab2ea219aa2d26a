import AgentWire
import Foundation
import GatewayCore
import Testing

@Suite("MCP Streamable HTTP transport")
struct MCPTransportTests {
    @Test(arguments: MCPVersions.supported)
    func negotiatesEachSupportedVersion(version: String) async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        var client = try await AgentClient.pair(baseURL: gateway.url, code: code, initialize: false)
        client.protocolVersion = version
        try await client.initialize()
        #expect(try await client.rpc("ping").json["result"] == [:])
        let tools = try await client.rpc("tools/list").json["result"]?["tools"]?.arrayValue ?? []
        #expect(tools.count == 4)
        #expect((tools.first?["outputSchema"] != nil) == (version >= "2025-06-18"))
        #expect(try await client.call("get_issue", ["issue": "WEB-1"]).1.isToolSuccess)
    }

    @Test func sessionAndVersionRules() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        var client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let sessionID = try #require(client.mcpSessionID)

        let unsupported = try await client.rpc("ping", headers: ["MCP-Protocol-Version": "2024-01-01"])
        #expect(unsupported.status == 400)

        client.mcpSessionID = nil
        let discover = try await client.rpc("server/discover")
        #expect(discover.status == 400)
        #expect(discover.json["error"]?["code"]?.intValue == JSONRPCErrorCode.invalidRequest)
        #expect(discover.json["error"]?["message"]?.stringValue?.contains("initialize") == true)

        client.mcpSessionID = "mcp_unknown"
        #expect(try await client.rpc("ping").status == 404)

        client.mcpSessionID = sessionID
        let notification = try await HTTP.send(
            "POST", gateway.url + "/mcp", json: ["jsonrpc": "2.0", "method": "notifications/initialized"],
            headers: client.authorization.merging(["Mcp-Session-Id": sessionID]) { $1 })
        #expect(notification.status == 202)
        let batch = try await HTTP.send(
            "POST", gateway.url + "/mcp", json: [["jsonrpc": "2.0", "id": 1, "method": "ping"]],
            headers: client.authorization.merging(["Mcp-Session-Id": sessionID]) { $1 })
        #expect(batch.status == 400 && batch.json["error"]?["code"]?.intValue == JSONRPCErrorCode.invalidRequest)
        let unknownMethod = try await client.rpc("resources/list")
        #expect(unknownMethod.json["error"]?["code"]?.intValue == JSONRPCErrorCode.methodNotFound)

        let get = try await HTTP.send("GET", gateway.url + "/mcp", headers: client.authorization)
        #expect(get.status == 405)
        let unauthenticated = try await HTTP.send("POST", gateway.url + "/mcp", json: ["jsonrpc": "2.0", "id": 1, "method": "ping"])
        #expect(unauthenticated.status == 401 && unauthenticated.errorCode == "token_missing")
        let badOrigin = try await client.rpc("ping", headers: ["Origin": "https://evil.example"])
        #expect(badOrigin.status == 403)

        let deleted = try await HTTP.send("DELETE", gateway.url + "/mcp", headers: client.authorization.merging(["Mcp-Session-Id": sessionID]) { $1 })
        #expect(deleted.status == 204)
        #expect(try await client.rpc("ping").status == 404)
        // Ending the MCP session leaves the auth session alone.
        let setup = try await HTTP.send("GET", gateway.url + "/api/v1/agent-session/setup", headers: client.authorization)
        #expect(setup.status == 200)
    }

    @Test func progressTokenStreamsServerSentEvents() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let answer = try await client.rpc(
            "tools/call",
            params: ["name": "create_issue", "arguments": ["project": "WEB", "title": "Streamed"], "_meta": ["progressToken": "p1"]], id: 7)
        #expect(answer.header("Content-Type")?.hasPrefix("text/event-stream") == true)
        let text = String(decoding: answer.body, as: UTF8.self)
        let messages = text.components(separatedBy: "\n").filter { $0.hasPrefix("data: ") }.compactMap {
            try? JSONValue(parsing: String($0.dropFirst(6)))
        }
        #expect(messages.count == 3)
        #expect(messages.first?["method"]?.stringValue == "notifications/progress")
        #expect(messages.first?["params"]?["progressToken"]?.stringValue == "p1")
        #expect(messages.last?["id"]?.intValue == 7)
        #expect(messages.last?["result"]?["isError"]?.boolValue == false)
    }
}
