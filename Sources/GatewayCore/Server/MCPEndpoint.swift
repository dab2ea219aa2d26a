import AgentWire
import HTTPTypes
import Hummingbird
import NIOCore
import W3CTraceContext

extension HTTPField.Name {
    static let mcpSessionID = HTTPField.Name("Mcp-Session-Id")!
    static let mcpProtocolVersion = HTTPField.Name("MCP-Protocol-Version")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}

/// `/mcp`: MCP Streamable HTTP (2025-03-26 through 2025-11-25) with initialize, ping, tools/list and tools/call.
extension GatewayHTTPServer {
    static func rpcError(id: JSONValue?, code: Int, message: String) -> JSONValue {
        JSONRPC.error(id: id ?? .null, code: code, message: message)
    }
    static func rpcResult(id: JSONValue, result: JSONValue) -> JSONValue { JSONRPC.result(id: id, result) }

    func checkOrigin(_ request: Request) -> Response? {
        guard let origin = request.headers[.origin] else { return nil }
        if gateway.acceptedOrigins.contains(origin.lowercased()) { return nil }
        return Self.json(
            Self.rpcError(
                id: nil, code: JSONRPCErrorCode.invalidRequest,
                message: "Origin \(BoundedText.excerpt(origin, limit: 100)) is not allowed on this gateway"),
            status: .forbidden)
    }

    func handleMCPPost(_ request: Request) async -> Response {
        if let refusal = checkOrigin(request) { return refusal }
        let principal: Principal
        do {
            // A refused session's request is read only to audit what it asked (RefusalAudit.swift).
            principal = try await gateway.authenticate(
                authorization: request.headers[.authorization],
                refusedCall: { RefusedCall.mcp(try? await Self.readJSON(request, limit: RequestBodyLimits.mcp)) })
        } catch {
            return Self.errorResponse(Gateway.asGatewayError(error))
        }
        if let version = request.headers[.mcpProtocolVersion], !MCPVersions.supported.contains(version) {
            return Self.json(
                Self.rpcError(
                    id: nil, code: JSONRPCErrorCode.invalidRequest,
                    message:
                        "unsupported MCP-Protocol-Version \(BoundedText.excerpt(version)); this gateway supports \(MCPVersions.supported.joined(separator: ", "))"
                ),
                status: .badRequest)
        }
        let message: JSONValue
        do { message = try await Self.readJSON(request, limit: RequestBodyLimits.mcp) } catch {
            if let error = error as? GatewayError, error.status == .contentTooLarge { return Self.errorResponse(error) }
            return Self.json(Self.rpcError(id: nil, code: JSONRPCErrorCode.parseError, message: "the body is not valid JSON"), status: .badRequest)
        }
        if message.arrayValue != nil {
            return Self.json(
                Self.rpcError(
                    id: nil, code: JSONRPCErrorCode.invalidRequest, message: "JSON-RPC batches are not supported; send one message per POST"),
                status: .badRequest)
        }
        guard let object = message.objectValue, object["jsonrpc"]?.stringValue == "2.0" else {
            return Self.json(
                Self.rpcError(id: nil, code: JSONRPCErrorCode.invalidRequest, message: "not a JSON-RPC 2.0 message"), status: .badRequest)
        }
        guard let method = object["method"]?.stringValue else {
            // A response from the client (we never send requests): accepted and ignored.
            return Response(status: .accepted)
        }
        guard let id = object["id"], !id.isNull else {
            return Response(status: .accepted)  // a notification (initialized, cancelled, …)
        }
        let params = object["params"]?.objectValue ?? [:]

        if method == "initialize" {
            let requested = params["protocolVersion"]?.stringValue ?? MCPVersions.latest
            let version = MCPVersions.supported.contains(requested) ? requested : MCPVersions.latest
            // A session costs a row on PostgreSQL: at most the read rate of them a minute.
            let sessionID: String
            do {
                sessionID = try await gateway.openMCPSession(principal, protocolVersion: version)
            } catch {
                return Self.errorResponse(Gateway.asGatewayError(error))
            }
            let result: JSONValue = [
                "protocolVersion": .string(version),
                "capabilities": ["tools": ["listChanged": false]],
                "serverInfo": ["name": "agent-gateway", "title": "Agent Gateway", "version": .string(BuildInfo.version)],
                "instructions": .string(ServerInstructions.text),
            ]
            return Self.json(Self.rpcResult(id: id, result: result), headers: [.mcpSessionID: sessionID])
        }

        guard let sessionID = request.headers[.mcpSessionID] else {
            return Self.json(
                Self.rpcError(
                    id: id, code: JSONRPCErrorCode.invalidRequest,
                    message: "no Mcp-Session-Id: send initialize first, then pass the Mcp-Session-Id it returns"),
                status: .badRequest)
        }
        let found: MCPSessionEntry?
        do { found = try await gateway.shared.mcpSession(sessionID, agentID: principal.agent.id, epoch: principal.epoch) } catch {
            return Self.errorResponse(Gateway.asGatewayError(error))
        }
        guard let session = found else {
            return Self.json(
                Self.rpcError(id: id, code: JSONRPCErrorCode.unknownSession, message: "unknown or ended MCP session; send initialize again"),
                status: .notFound)
        }

        switch method {
        case "ping":
            return Self.json(Self.rpcResult(id: id, result: [:]))
        case "tools/list":
            let policy = gateway.policy
            let tools = gateway.visibleTools(principal).map {
                $0.mcpDescription(protocolVersion: session.protocolVersion, tierNote: policy.tierNote(for: $0, ownerName: principal.owner.name))
            }
            return Self.json(Self.rpcResult(id: id, result: ["tools": .array(tools)]))
        case "tools/call":
            guard let name = params["name"]?.stringValue else {
                return Self.json(Self.rpcError(id: id, code: JSONRPCErrorCode.invalidParams, message: "tools/call needs params.name"))
            }
            let progressToken = params["_meta"]?["progressToken"]
            let acceptsStream = (request.headers[.accept] ?? "").contains("text/event-stream")
            let headerKey = request.headers[.idempotencyKey]
            let trace = TraceMeta.incoming(params["_meta"]?.objectValue)
            if let progressToken, acceptsStream {
                return await streamToolCall(
                    id: id, name: name, arguments: params["arguments"], headerKey: headerKey, principal: principal, trace: trace,
                    progressToken: progressToken)
            }
            do {
                let result = try await gateway.callTool(
                    name: name, arguments: params["arguments"], headerIdempotencyKey: headerKey, principal: principal, trace: trace)
                return Self.json(Self.rpcResult(id: id, result: result))
            } catch {
                return toolCallFailure(error, id: id, name: name)
            }
        default:
            return Self.json(
                Self.rpcError(
                    id: id, code: JSONRPCErrorCode.methodNotFound, message: "method \(BoundedText.excerpt(method)) is not supported by this gateway"))
        }
    }

    func toolCallFailure(_ error: any Error, id: JSONValue, name: String) -> Response {
        if error is UnknownToolError {
            let names = ToolCatalog.all.map(\.name).joined(separator: ", ")
            return Self.json(
                Self.rpcError(
                    id: id, code: JSONRPCErrorCode.invalidParams,
                    message: "unknown tool \(BoundedText.excerpt(name)); tools of this gateway: \(names)"))
        }
        return Self.errorResponse(Gateway.asGatewayError(error))
    }

    enum StreamEvent: Sendable {
        case progress(String)
        case result(JSONValue)
        case failure(GatewayError, unknownTool: Bool)
    }

    /// A tools/call whose client asked for progress: SSE with notifications/progress, then the response.
    /// Failures that happen before any progress (rate limit, unknown tool) keep their plain HTTP answers.
    func streamToolCall(
        id: JSONValue, name: String, arguments: JSONValue?, headerKey: String?, principal: Principal, trace: TraceContext?,
        progressToken: JSONValue
    ) async -> Response {
        let (stream, continuation) = AsyncStream.makeStream(of: StreamEvent.self)
        let gateway = self.gateway
        Task {
            do {
                let result = try await gateway.callTool(
                    name: name, arguments: arguments, headerIdempotencyKey: headerKey, principal: principal, trace: trace,
                    progress: { message in continuation.yield(.progress(message)) })
                continuation.yield(.result(result))
            } catch {
                continuation.yield(.failure(Gateway.asGatewayError(error), unknownTool: error is UnknownToolError))
            }
            continuation.finish()
        }
        var iterator = stream.makeAsyncIterator()
        guard let first = await iterator.next() else { return Self.errorResponse(.internalError) }
        switch first {
        case .result(let result): return Self.json(Self.rpcResult(id: id, result: result))
        case .failure(let error, let unknownTool):
            return unknownTool ? toolCallFailure(UnknownToolError(name: name), id: id, name: name) : Self.errorResponse(error)
        case .progress(let message):
            let body = ResponseBody { writer in
                var step = 1
                var waited = false
                func event(_ value: JSONValue) -> ByteBuffer {
                    ByteBuffer(bytes: Array("event: message\ndata: ".utf8) + value.serialized() + Array("\n\n".utf8))
                }
                // Two steps (checked, stored); a call waiting for an approval sends more, and then
                // no total: progress must only grow, and must not pass a total it announced.
                func progress(_ text: String) -> JSONValue {
                    var params: JSONObject = ["progressToken": progressToken, "progress": .int(step), "message": .string(text)]
                    if text.hasPrefix("waiting for ") { waited = true }
                    if !waited, step <= 2 { params["total"] = 2 }
                    return ["jsonrpc": "2.0", "method": "notifications/progress", "params": .object(params)]
                }
                try await writer.write(event(progress(message)))
                for await next in stream {
                    switch next {
                    case .progress(let text):
                        step += 1
                        try await writer.write(event(progress(text)))
                    case .result(let result):
                        try await writer.write(event(Self.rpcResult(id: id, result: result)))
                    case .failure(let error, _):
                        try await writer.write(event(Self.rpcResult(id: id, result: Gateway.errorResult(error))))
                    }
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
        }
    }

    func handleMCPDelete(_ request: Request) async -> Response {
        if let refusal = checkOrigin(request) { return refusal }
        let principal: Principal
        do { principal = try await gateway.authenticate(authorization: request.headers[.authorization]) } catch {
            return Self.errorResponse(Gateway.asGatewayError(error))
        }
        guard let sessionID = request.headers[.mcpSessionID] else {
            return Self.json(
                Self.rpcError(id: nil, code: JSONRPCErrorCode.invalidRequest, message: "DELETE /mcp needs an Mcp-Session-Id"), status: .badRequest)
        }
        let closed: Bool
        do { closed = try await gateway.shared.closeMCPSession(sessionID, agentID: principal.agent.id, now: gateway.now) } catch {
            return Self.errorResponse(Gateway.asGatewayError(error))
        }
        guard closed else {
            return Self.json(
                Self.rpcError(id: nil, code: JSONRPCErrorCode.unknownSession, message: "unknown or ended MCP session"), status: .notFound)
        }
        return Response(status: .noContent)
    }
}
