import AgentWire
import Foundation
import Hummingbird

/// The two protocol eras: the legacy `initialize` handshake with sessions, and the stateless
/// 2026-07-28 revision with `_meta` in every request.
extension FixtureServer {
    // MARK: Legacy era (initialize handshake, sessions)

    func handleLegacy(
        _ message: JSONObject, kind: MessageKind, headers: MCPHeaders, request: Request, context: FixtureContext
    ) async -> Response {
        let id = message["id"]
        let method = message["method"]?.stringValue ?? ""
        let unsupportedHeader = headers.protocolVersion.flatMap { ProtocolVersions.legacy.contains($0) ? nil : $0 }
        let headerFailure = ProtocolFailure.invalidRequest(
            "Bad Request: unsupported MCP-Protocol-Version \(unsupportedHeader ?? ""); use one of \(ProtocolVersions.legacy.joined(separator: ", "))")
        if kind == .request, method == "initialize" {
            if unsupportedHeader != nil { return Reply.failure(headerFailure, id: id) }
            return initialize(id: id ?? .null, params: message["params"])
        }
        guard let sessionID = headers.sessionID else {
            return Reply.failure(.invalidRequest("Bad Request: no Mcp-Session-Id; initialize first"), id: id)
        }
        guard state.sessionExists(sessionID) else {
            return Reply.failure(
                ProtocolFailure(status: .notFound, code: -32001, message: "Session not found: \(sessionID); send initialize again"), id: id)
        }
        if unsupportedHeader != nil { return Reply.failure(headerFailure, id: id) }
        switch kind {
        case .notification:
            if method == "notifications/cancelled", let cancelledID = message["params"]?["requestId"] {
                state.cancelCall(id: cancelledID, sessionID: sessionID)
            }
            return Reply.empty(.accepted)
        case .response:
            return Reply.empty(.accepted)
        case .request:
            let environment = CallEnvironment(
                id: id ?? .null, modern: false, sessionID: sessionID, headers: headers, request: request, context: context)
            return await dispatch(method: method, params: message["params"], environment: environment)
        }
    }

    func initialize(id: JSONValue, params: JSONValue?) -> Response {
        guard let requested = params?["protocolVersion"]?.stringValue else {
            return reply(JSONRPCBytes.error(id: id, .invalidParams("initialize needs params.protocolVersion (a string)")))
        }
        let version = ProtocolVersions.legacy.contains(requested) ? requested : ProtocolVersions.legacy.last!
        let sessionID = state.openSession(protocolVersion: version)
        let result: JSONValue = [
            "protocolVersion": .string(version),
            "capabilities": ["tools": ["listChanged": true], "logging": [:]],
            "serverInfo": Self.serverInfo,
            "instructions": .string(Self.instructions),
        ]
        return reply(JSONRPCBytes.result(id: id, result), headers: [.init("Mcp-Session-Id")!: sessionID])
    }

    /// `--era modern` and a request without modern `_meta`.
    func rejectLegacy(_ message: JSONObject, kind: MessageKind, headers: MCPHeaders) -> Response {
        let id = kind == .request ? message["id"] : nil
        if message["method"]?.stringValue == "initialize" {
            return Reply.failure(
                .unsupportedVersion(
                    requested: message["params"]?["protocolVersion"]?.stringValue ?? "",
                    message:
                        "This server supports only MCP 2026-07-28 (no initialize); send requests with _meta io.modelcontextprotocol/protocolVersion"),
                id: id)
        }
        return Reply.failure(.unsupportedVersion(requested: headers.protocolVersion ?? "2025-03-26"), id: id)
    }

    // MARK: Modern era (stateless, per-request _meta)

    func handleModern(
        _ message: JSONObject, kind: MessageKind, version: String, headers: MCPHeaders, request: Request, context: FixtureContext
    ) async -> Response {
        let id = kind == .request ? message["id"] : nil
        let method = message["method"]?.stringValue ?? ""
        guard let headerVersion = headers.protocolVersion else {
            return Reply.failure(
                .headerMismatch("MCP-Protocol-Version header is missing; it must equal _meta io.modelcontextprotocol/protocolVersion"), id: id)
        }
        guard headerVersion == version else {
            return Reply.failure(
                .headerMismatch("MCP-Protocol-Version header value '\(headerVersion)' does not match body value '\(version)'"), id: id)
        }
        guard ProtocolVersions.modern.contains(version) else {
            return Reply.failure(.unsupportedVersion(requested: version), id: id)
        }
        switch kind {
        case .response:
            return Reply.failure(.invalidRequest("Invalid Request: clients must not send JSON-RPC responses in MCP 2026-07-28"), id: nil)
        case .notification:
            if method == "notifications/cancelled", let cancelledID = message["params"]?["requestId"] {
                state.cancelCall(id: cancelledID, sessionID: nil)
            }
            return Reply.empty(.accepted)
        case .request:
            break
        }
        guard let headerMethod = headers.mcpMethod else {
            return Reply.failure(.headerMismatch("Mcp-Method header is missing; it must equal the body's method"), id: id)
        }
        guard headerMethod == method else {
            return Reply.failure(.headerMismatch("Mcp-Method header value '\(headerMethod)' does not match body value '\(method)'"), id: id)
        }
        if method == "tools/call" || method == "resources/read" || method == "prompts/get" {
            let bodyName = message["params"]?[method == "resources/read" ? "uri" : "name"]?.stringValue ?? ""
            guard let encoded = headers.mcpName else {
                return Reply.failure(.headerMismatch("Mcp-Name header is missing; it must equal the body's params.name"), id: id)
            }
            guard let headerName = Self.decodeHeaderValue(encoded), headerName == bodyName else {
                return Reply.failure(.headerMismatch("Mcp-Name header value '\(encoded)' does not match body value '\(bodyName)'"), id: id)
            }
        }
        // Mcp-Session-Id is ignored: the modern era has no sessions.
        let environment = CallEnvironment(id: id ?? .null, modern: true, sessionID: nil, headers: headers, request: request, context: context)
        return await dispatch(method: method, params: message["params"], environment: environment)
    }
}
