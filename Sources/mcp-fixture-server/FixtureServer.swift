import AgentWire
import Foundation
import Hummingbird

/// How the fixture frames responses to JSON-RPC requests.
enum ResponseMode: String, Sendable, CaseIterable {
    case json, sse
}

/// Which MCP protocol era the fixture serves.
enum ProtocolEra: String, Sendable, CaseIterable {
    case legacy, modern, dual
}

struct FixtureOptions: Sendable {
    var responseMode: ResponseMode = .json
    var era: ProtocolEra = .dual
    var pageSize = 0
    var requireBearer: String?
    var verbose = false
    var keepaliveMilliseconds = 15_000
}

/// The request context: Hummingbird's core storage, plus a way to drop the TCP connection.
struct FixtureContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Closes the client's connection at once, without a response (for the `garbage` tool).
    let dropConnection: @Sendable () -> Void

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        let channel = source.channel
        dropConnection = { channel.close(promise: nil) }
    }
}

/// The request headers the fixture looks at, read in one pass.
struct MCPHeaders: Sendable {
    var sessionID: String?
    var protocolVersion: String?
    var idempotencyKey: String?
    var authorization: String?
    var accept: String?
    var origin: String?
    var mcpMethod: String?
    var mcpName: String?
    /// The client sent `Expect: 100-continue` (the fixture never answers 100 Continue).
    var expectsContinue = false

    init(_ fields: HTTPFields) {
        for field in fields {
            switch field.name.canonicalName {
            case "mcp-session-id": sessionID = field.value
            case "mcp-protocol-version": protocolVersion = field.value
            case "idempotency-key": idempotencyKey = field.value
            case "authorization": authorization = field.value
            case "accept": accept = accept.map { $0 + ", " + field.value } ?? field.value
            case "origin": origin = field.value
            case "mcp-method": mcpMethod = field.value
            case "mcp-name": mcpName = field.value
            case "expect": expectsContinue = field.value.lowercased() == "100-continue"
            default: break
            }
        }
    }

    /// Whether `Accept` lists this media type, or a wildcard covering it (parameters ignored).
    /// Works on bytes: this runs on every request of the benchmark path.
    func accepts(_ mediaType: StaticString) -> Bool {
        guard let accept else { return false }
        let wanted = UnsafeBufferPointer(start: mediaType.utf8Start, count: mediaType.utf8CodeUnitCount)
        let slash = wanted.firstIndex(of: UInt8(ascii: "/")) ?? wanted.count
        for item in accept.utf8.split(separator: UInt8(ascii: ",")) {
            var type = item.prefix { $0 != UInt8(ascii: ";") }.filter { $0 != 0x20 && $0 != 0x09 }
            for index in type.indices where type[index] >= 0x41 && type[index] <= 0x5A { type[index] += 0x20 }
            if type.elementsEqual(wanted) || type.elementsEqual(Array("*/*".utf8)) { return true }
            if type.count == slash + 2, type.starts(with: wanted[..<slash]), type[slash] == UInt8(ascii: "/"), type[slash + 1] == UInt8(ascii: "*") {
                return true
            }
        }
        return false
    }
}

/// Everything one MCP request handler needs to know about the HTTP request it came in.
struct CallEnvironment: Sendable {
    let id: JSONValue
    let modern: Bool
    let sessionID: String?
    let headers: MCPHeaders
    let request: Request
    let context: FixtureContext
}

/// Routes HTTP requests to the MCP endpoint and the control endpoints.
struct FixtureResponder: HTTPResponder {
    let server: FixtureServer

    func respond(to request: Request, context: FixtureContext) async throws -> Response {
        switch request.uri.path {
        case "/mcp":
            return await server.handleMCP(request, context: context)
        case "/_fixture/log":
            guard request.method == .get else { return Reply.empty(.methodNotAllowed, headers: [.allow: "GET"]) }
            return Reply.json(server.state.logJSON().serialized())
        case "/_fixture/expire-sessions":
            guard request.method == .post else { return Reply.empty(.methodNotAllowed, headers: [.allow: "POST"]) }
            server.state.expireSessions()
            return Reply.json(Array(#"{"ok":true}"#.utf8))
        case "/_fixture/reset":
            guard request.method == .post else { return Reply.empty(.methodNotAllowed, headers: [.allow: "POST"]) }
            server.state.reset()
            return Reply.json(Array(#"{"ok":true}"#.utf8))
        default:
            return Reply.json(Array(#"{"error":"not found: the MCP endpoint is /mcp"}"#.utf8), status: .notFound)
        }
    }
}

/// The MCP Streamable HTTP endpoint: both protocol eras, sessions, and the tools.
final class FixtureServer: Sendable {
    static let maximumBodyBytes = 64 * 1024 * 1024
    static let serverInfo: JSONValue = ["name": "mcp-fixture-server", "version": "1.0.0"]
    static let instructions = "fixture instructions"
    static let logLevels: Set<String> = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]

    let options: FixtureOptions
    let state = FixtureState()
    let catalogue = ToolCatalogue()

    init(options: FixtureOptions) {
        self.options = options
    }

    func handleMCP(_ request: Request, context: FixtureContext) async -> Response {
        let headers = MCPHeaders(request.headers)
        if let origin = headers.origin, !Self.isLoopbackOrigin(origin) {
            return Reply.failure(
                .invalidRequest("Origin \(origin) is not allowed; the fixture only accepts loopback origins", status: .forbidden), id: nil)
        }
        if let token = options.requireBearer, headers.authorization != "Bearer \(token)" {
            let body =
                #"{"error":{"code":"token_invalid","message":"missing or wrong bearer token; send Authorization: Bearer <the token the fixture was started with>","retryable":false}}"#
            return Reply.json(Array(body.utf8), status: .unauthorized, headers: [.wwwAuthenticate: #"Bearer error="invalid_token""#])
        }
        switch request.method {
        case .post: return await handlePost(request, headers: headers, context: context)
        case .get: return handleStandaloneStream(request, headers: headers)
        case .delete: return handleDelete(headers: headers)
        default: return Reply.empty(.methodNotAllowed, headers: [.allow: options.era == .modern ? "POST" : "GET, POST, DELETE"])
        }
    }

    // MARK: POST

    private func handlePost(_ request: Request, headers: MCPHeaders, context: FixtureContext) async -> Response {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Self.maximumBodyBytes)
        } catch {
            return Reply.failure(.invalidRequest("request body is larger than 64 MiB", status: .contentTooLarge), id: nil)
        }
        var record = RequestRecord(
            httpMethod: "POST", sessionID: headers.sessionID, protocolVersionHeader: headers.protocolVersion,
            idempotencyKey: headers.idempotencyKey, expectsContinue: headers.expectsContinue)
        let message: JSONValue
        do {
            message = try JSONValue(parsing: Array(body.readableBytesView))
        } catch {
            state.record(record)
            return Reply.failure(.parseError("\(error)"), id: nil)
        }
        guard case .object(let object) = message else {
            state.record(record)
            let what = message.arrayValue != nil ? "JSON-RPC batches are not supported" : "the body is not a JSON-RPC object"
            return Reply.failure(.invalidRequest("Invalid Request: \(what); send one JSON-RPC message per POST"), id: nil)
        }
        let id = object["id"]
        let method = object["method"]?.stringValue
        let params = object["params"]
        let metaVersion = params?["_meta"]?["io.modelcontextprotocol/protocolVersion"]?.stringValue
        record.method = method
        record.id = id
        record.protocolVersionMeta = metaVersion
        if method == "tools/call" { record.tool = params?["name"]?.stringValue }
        state.record(record)
        if options.verbose { Self.log("POST \(method ?? "-") id=\(id?.jsonText ?? "-") session=\(headers.sessionID ?? "-")") }

        guard object["jsonrpc"]?.stringValue == "2.0" else {
            return Reply.failure(.invalidRequest("Invalid Request: jsonrpc must be \"2.0\""), id: id)
        }
        let kind: MessageKind
        switch (method, id) {
        case (.some, .none): kind = .notification
        case (.some, .some(.string)), (.some, .some(.number)): kind = .request
        case (.none, .some) where object["result"] != nil || object["error"] != nil: kind = .response
        default: return Reply.failure(.invalidRequest("Invalid Request: not a JSON-RPC request, notification or response"), id: id)
        }
        if kind == .request, !(headers.accepts("application/json") && headers.accepts("text/event-stream")) {
            return Reply.failure(
                .invalidRequest("Not Acceptable: send Accept: application/json, text/event-stream", status: .notAcceptable), id: id)
        }
        if options.era != .legacy, let metaVersion {
            return await handleModern(object, kind: kind, version: metaVersion, headers: headers, request: request, context: context)
        }
        if options.era == .modern {
            return rejectLegacy(object, kind: kind, headers: headers)
        }
        return await handleLegacy(object, kind: kind, headers: headers, request: request, context: context)
    }

    private enum MessageKind { case request, notification, response }

    // MARK: Legacy era (initialize handshake, sessions)

    private func handleLegacy(
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

    private func initialize(id: JSONValue, params: JSONValue?) -> Response {
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
    private func rejectLegacy(_ message: JSONObject, kind: MessageKind, headers: MCPHeaders) -> Response {
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

    private func handleModern(
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

    // MARK: Methods shared by both eras

    private func dispatch(method: String, params: JSONValue?, environment: CallEnvironment) async -> Response {
        let modern = environment.modern
        switch method {
        case "ping" where !modern:
            return reply(JSONRPCBytes.result(id: environment.id, [:]))
        case "logging/setLevel" where !modern:
            guard let level = params?["level"]?.stringValue, Self.logLevels.contains(level) else {
                return reply(
                    JSONRPCBytes.error(id: environment.id, .invalidParams("logging/setLevel needs params.level, one of \(Self.logLevels.sorted())")))
            }
            state.setLogLevel(level)
            return reply(JSONRPCBytes.result(id: environment.id, [:]))
        case "server/discover" where modern:
            let result: JSONObject = [
                "supportedVersions": .array(ProtocolVersions.modern.map(JSONValue.string)),
                "capabilities": ["tools": ["listChanged": true]],
                "instructions": .string(Self.instructions),
                "ttlMs": 3_600_000,
                "cacheScope": "public",
            ]
            return reply(envelope(id: environment.id, result: result, modern: true))
        case "subscriptions/listen" where modern:
            return listen(params: params, environment: environment)
        case "tools/list":
            do {
                return reply(envelope(id: environment.id, result: try listTools(params: params, modern: modern), modern: modern))
            } catch {
                return reply(JSONRPCBytes.error(id: environment.id, error))
            }
        case "tools/call":
            return await callTool(params: params, environment: environment)
        default:
            return failure(.methodNotFound(method, status: modern ? .notFound : .ok), id: environment.id)
        }
    }

    private func listTools(params: JSONValue?, modern: Bool) throws(ProtocolFailure) -> JSONObject {
        let tools = catalogue.listed(includingExtraTool: state.extraToolListed)
        var offset = 0
        if let cursor = params?["cursor"], !cursor.isNull {
            guard let text = cursor.stringValue, let decoded = ToolCursor.decode(text), decoded > 0, decoded < tools.count else {
                throw .invalidParams("Invalid params: unknown tools/list cursor \(cursor.jsonText); start again without a cursor")
            }
            offset = decoded
        }
        let end = options.pageSize > 0 ? min(offset + options.pageSize, tools.count) : tools.count
        var result: JSONObject = ["tools": .array(Array(tools[offset..<end]))]
        if end < tools.count { result["nextCursor"] = .string(ToolCursor.encode(offset: end)) }
        if modern {
            result["ttlMs"] = 0
            result["cacheScope"] = "private"
        }
        return result
    }

    /// A result envelope; modern results carry `resultType` and the server's identity in `_meta`.
    func envelope(id: JSONValue, result: JSONObject, modern: Bool) -> [UInt8] {
        guard modern else { return JSONRPCBytes.result(id: id, .object(result)) }
        var result = result
        if result["resultType"] == nil { result.members.insert(.init(key: "resultType", value: "complete"), at: 0) }
        var meta = result["_meta"]?.objectValue ?? [:]
        meta["io.modelcontextprotocol/serverInfo"] = Self.serverInfo
        result["_meta"] = .object(meta)
        return JSONRPCBytes.result(id: id, .object(result))
    }

    /// Frames one JSON-RPC message for a request as `--response-mode` says.
    func reply(_ message: [UInt8], headers: HTTPFields = [:]) -> Response {
        options.responseMode == .sse ? Reply.sse([message], headers: headers) : Reply.json(message, headers: headers)
    }

    /// An error response: framed like a result when its HTTP status is 200, otherwise plain JSON.
    func failure(_ failure: ProtocolFailure, id: JSONValue?) -> Response {
        failure.status == .ok ? reply(JSONRPCBytes.error(id: id, failure), headers: failure.headers) : Reply.failure(failure, id: id)
    }

    // MARK: GET and DELETE (legacy sessions)

    private func handleStandaloneStream(_ request: Request, headers: MCPHeaders) -> Response {
        state.record(
            RequestRecord(
                httpMethod: "GET", sessionID: headers.sessionID, protocolVersionHeader: headers.protocolVersion,
                idempotencyKey: headers.idempotencyKey))
        if options.verbose { Self.log("GET session=\(headers.sessionID ?? "-")") }
        guard options.era != .modern else { return Reply.empty(.methodNotAllowed, headers: [.allow: "POST"]) }
        guard let sessionID = headers.sessionID else {
            return Reply.failure(.invalidRequest("Bad Request: no Mcp-Session-Id; initialize first"), id: nil)
        }
        guard state.sessionExists(sessionID) else {
            return Reply.failure(
                ProtocolFailure(status: .notFound, code: -32001, message: "Session not found: \(sessionID); send initialize again"), id: nil)
        }
        if let version = headers.protocolVersion, !ProtocolVersions.legacy.contains(version) {
            return Reply.failure(.invalidRequest("Bad Request: unsupported MCP-Protocol-Version \(version)"), id: nil)
        }
        guard headers.accepts("text/event-stream") else {
            return Reply.failure(.invalidRequest("Not Acceptable: send Accept: text/event-stream", status: .notAcceptable), id: nil)
        }
        return notificationStream(.standalone(sessionID: sessionID), firstFrame: nil, request: request)
    }

    private func handleDelete(headers: MCPHeaders) -> Response {
        state.record(
            RequestRecord(
                httpMethod: "DELETE", sessionID: headers.sessionID, protocolVersionHeader: headers.protocolVersion,
                idempotencyKey: headers.idempotencyKey))
        if options.verbose { Self.log("DELETE session=\(headers.sessionID ?? "-")") }
        guard options.era != .modern else { return Reply.empty(.methodNotAllowed, headers: [.allow: "POST"]) }
        guard let sessionID = headers.sessionID else {
            return Reply.failure(.invalidRequest("Bad Request: no Mcp-Session-Id to delete"), id: nil)
        }
        guard state.deleteSession(sessionID) else {
            return Reply.failure(ProtocolFailure(status: .notFound, code: -32001, message: "Session not found: \(sessionID)"), id: nil)
        }
        return Reply.empty(.noContent)
    }

    /// `subscriptions/listen`: an SSE stream that acknowledges, then carries list-changed notifications.
    private func listen(params: JSONValue?, environment: CallEnvironment) -> Response {
        let wantsTools = params?["notifications"]?["toolsListChanged"]?.boolValue ?? false
        var honoured: JSONObject = [:]
        if wantsTools { honoured["toolsListChanged"] = true }
        let acknowledgement = JSONRPCBytes.notification(
            method: "notifications/subscriptions/acknowledged",
            params: ["_meta": ["io.modelcontextprotocol/subscriptionId": environment.id], "notifications": .object(honoured)])
        return notificationStream(
            .subscription(id: environment.id, toolsListChanged: wantsTools), firstFrame: SSE.frame(acknowledgement), request: environment.request)
    }

    /// A long-lived SSE stream, registered until the client goes away or the session ends,
    /// with an SSE comment every keep-alive interval.
    private func notificationStream(_ kind: NotificationStream.Kind, firstFrame: ByteBuffer?, request: Request) -> Response {
        let (streamID, frames, continuation) = state.openStream(kind)
        if let firstFrame { continuation.yield(firstFrame) }
        let interval = options.keepaliveMilliseconds
        let state = self.state
        return Response(
            status: .ok, headers: Self.closingStreamHeaders,
            body: ResponseBody { writer in
                let keepalive = Task {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(interval))
                        continuation.yield(SSE.keepalive)
                    }
                }
                defer {
                    keepalive.cancel()
                    state.closeStream(streamID)
                }
                _ = try await request.body.consumeWithInboundCloseHandler { _ in
                    for await frame in frames { try await writer.write(frame) }
                } onInboundClosed: {
                    continuation.finish()
                }
                try await writer.finish(nil)
            })
    }

    // MARK: Helpers

    static func isLoopbackOrigin(_ origin: String) -> Bool {
        guard let host = URLComponents(string: origin)?.host else { return false }
        return ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host.lowercased())
    }

    /// Decodes the `=?base64?…?=` sentinel form of `Mcp-Name` / `Mcp-Param-*` values.
    static func decodeHeaderValue(_ value: String) -> String? {
        guard value.hasPrefix("=?base64?"), value.hasSuffix("?="), value.count >= 11 else { return value }
        let encoded = String(value.dropFirst(9).dropLast(2))
        guard let data = Data(base64Encoded: encoded) else { return nil }
        return String(data: data, encoding: .utf8)
    }

    static func log(_ line: String) {
        FileHandle.standardError.write(Data(("mcp-fixture-server: " + line + "\n").utf8))
    }
}
