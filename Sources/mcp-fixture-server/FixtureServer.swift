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

    enum MessageKind { case request, notification, response }

    // MARK: Methods shared by both eras

    func dispatch(method: String, params: JSONValue?, environment: CallEnvironment) async -> Response {
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

    func listTools(params: JSONValue?, modern: Bool) throws(ProtocolFailure) -> JSONObject {
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
