import AgentWire
import SodiumKit

/// Lists the agent's tools over the gateway's MCP endpoint the way `serve` reaches it
/// (`initialize`, `notifications/initialized`, `tools/list`, then `DELETE` of the MCP session), for
/// `doctor`. The session token goes only into the `Authorization` header.
struct MCPToolProbe: Sendable {
    struct Problem: Error, Sendable {
        let message: String
    }

    let transport: any GatewayTransport
    let gateway: GatewayOrigin
    let timeout: Duration

    /// The revision the probe asks for; the gateway may answer with another it supports.
    static let revision = "2025-06-18"

    /// The names of the tools the gateway lists for this session.
    func listTools(token: SecretBytes) async -> Result<[String], Problem> {
        let authorization = "Bearer " + token.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
        let initialize: JSONValue = [
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": [
                "protocolVersion": .string(Self.revision), "capabilities": [:],
                "clientInfo": ["name": "agent-sidecar-doctor", "version": .string(SidecarIdentity.version)],
            ],
        ]
        do {
            let (opened, headers) = try await post(initialize, authorization: authorization, session: nil, revision: nil)
            guard let version = opened["result"]?["protocolVersion"]?.stringValue else {
                return .failure(Problem(message: "initialize answered \(Self.describe(opened))"))
            }
            let session = headers.value(for: "mcp-session-id")
            _ = try? await post(
                ["jsonrpc": "2.0", "method": "notifications/initialized"], authorization: authorization, session: session, revision: version)
            let (listed, _) = try await post(
                ["jsonrpc": "2.0", "id": 2, "method": "tools/list"], authorization: authorization, session: session, revision: version)
            if let session {
                var headers = [HTTPHeader("Authorization", authorization), HTTPHeader("Mcp-Session-Id", session)]
                headers.append(HTTPHeader("MCP-Protocol-Version", version))
                _ = try? await transport.send(HTTPRequest(method: "DELETE", url: gateway.url("/mcp"), headers: headers, timeout: timeout))
            }
            guard let tools = listed["result"]?["tools"]?.arrayValue else {
                return .failure(Problem(message: "tools/list answered \(Self.describe(listed))"))
            }
            return .success(tools.compactMap { $0["name"]?.stringValue })
        } catch let problem as Problem {
            return .failure(problem)
        } catch {
            return .failure(Problem(message: "\(error)"))
        }
    }

    /// One JSON-RPC message; the answer, whether it came as JSON or as one server-sent event.
    private func post(_ message: JSONValue, authorization: String, session: String?, revision: String?) async throws -> (JSONValue, [HTTPHeader]) {
        var headers = [
            HTTPHeader("Authorization", authorization), HTTPHeader("Content-Type", "application/json"),
            HTTPHeader("Accept", "application/json, text/event-stream"),
        ]
        if let session { headers.append(HTTPHeader("Mcp-Session-Id", session)) }
        if let revision { headers.append(HTTPHeader("MCP-Protocol-Version", revision)) }
        let response: HTTPResponse
        do {
            response = try await transport.send(
                HTTPRequest(method: "POST", url: gateway.url("/mcp"), headers: headers, body: message.serialized(), timeout: timeout))
        } catch let error as HTTPClientError {
            throw Problem(message: UpstreamFailure.from(error, upstream: gateway.url("/mcp"), timeout: timeout, peer: "gateway").message)
        }
        if response.status == 202 { return (.null, response.headers) }
        guard response.status == 200 else {
            let detail = (try? JSONValue(parsing: response.body)).map(Self.describe) ?? ""
            throw Problem(message: "the gateway answered HTTP \(response.status) to /mcp \(detail)")
        }
        var body = response.body
        if (response.headers.value(for: "content-type") ?? "").lowercased().hasPrefix("text/event-stream") {
            let text = String(decoding: body, as: UTF8.self)
            let data = text.split(separator: "\n").filter { $0.hasPrefix("data:") }.map { $0.dropFirst(5).drop(while: { $0 == " " }) }
            body = Array(data.joined(separator: "\n").utf8)
        }
        guard let json = try? JSONValue(parsing: body) else { throw Problem(message: "the gateway's answer on /mcp is not JSON") }
        return (json, response.headers)
    }

    static func describe(_ value: JSONValue) -> String {
        if let message = value["error"]?["message"]?.stringValue { return "with the error: \(RemoteText.oneLine(message))" }
        let text = value.jsonText
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}
