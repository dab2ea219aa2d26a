import AgentWire
import Hummingbird

/// Thrown from a response body to end the HTTP response without completing it.
private struct AbandonedResponse: Error {}

extension FixtureServer {
    static let defaultFailureBody = #"{"error":{"code":"fixture_failure","message":"fixture failure","retryable":true}}"#
    static let stallMilliseconds = 60_000

    func callTool(params: JSONValue?, environment: CallEnvironment) async -> Response {
        guard let name = params?["name"]?.stringValue else {
            return failure(.invalidParams("Invalid params: tools/call needs params.name (a string)"), id: environment.id)
        }
        let arguments: JSONObject
        switch params?["arguments"] {
        case .none, .some(.null): arguments = [:]
        case .some(.object(let object)): arguments = object
        case .some: return failure(.invalidParams("Invalid params: tools/call params.arguments must be an object"), id: environment.id)
        }
        guard catalogue.isKnown(name, includingExtraTool: state.extraToolListed) else {
            return failure(.invalidParams("Unknown tool: \(name); call tools/list for the current tools"), id: environment.id)
        }
        if let problem = catalogue.argumentProblem(tool: name, arguments: arguments) {
            return toolResult(
                environment,
                ["content": [Self.text("Invalid arguments for tool \(name): \(problem); see its inputSchema in tools/list")], "isError": true])
        }
        switch name {
        case "add": return add(arguments, environment)
        case "echo": return echo(arguments, environment)
        case "slow": return await slow(milliseconds: arguments["ms"]?.intValue ?? 0, environment)
        case "progress":
            return await progress(
                steps: arguments["steps"]?.intValue ?? 0, interval: arguments["intervalMs"]?.intValue ?? 10,
                token: params?["_meta"]?["progressToken"], environment)
        case "big": return big(count: arguments["bytes"]?.intValue ?? 0, environment)
        case "write_note": return writeNote(arguments["note"]?.stringValue ?? "", environment)
        case "headers": return headers(environment)
        case "change_tools": return changeTools(environment)
        case "fail", "fail_write": return fail(arguments, environment)
        case "garbage": return await garbage(kind: arguments["kind"]?.stringValue ?? "", environment)
        default: return toolResult(environment, ["content": [Self.text("extra tool called")]])
        }
    }

    static func text(_ text: String) -> JSONValue {
        ["type": "text", "text": .string(text)]
    }

    func toolResult(_ environment: CallEnvironment, _ result: JSONObject, headers: HTTPFields = [:]) -> Response {
        reply(envelope(id: environment.id, result: result, modern: environment.modern), headers: headers)
    }

    /// The answer to a call the client cancelled with `notifications/cancelled` while it still
    /// waits on the HTTP response (JSON mode): there is no result to give.
    private func cancelledReply(_ environment: CallEnvironment) -> Response {
        reply(JSONRPCBytes.error(id: environment.id, ProtocolFailure(code: -32800, message: "Request cancelled")), headers: Self.closing)
    }

    /// Watching a request for disconnects consumes the connection's input, so responses that do
    /// so end the connection: `Connection: close` tells the client not to reuse it.
    static let closing: HTTPFields = [.connection: "close"]

    static var closingStreamHeaders: HTTPFields {
        var headers = Reply.streamHeaders
        headers[.connection] = "close"
        return headers
    }

    /// Runs `operation`; if the client closes its connection first, cancels `call` and records it.
    private func untilDisconnect<Value: Sendable>(
        _ environment: CallEnvironment, call: InFlightCall, _ operation: () async throws -> Value
    ) async throws -> Value {
        let state = self.state
        let id = environment.id
        let sessionID = environment.sessionID
        return try await environment.request.body.consumeWithInboundCloseHandler { _ in
            let value = try await operation()
            call.finish()
            return value
        } onInboundClosed: {
            if call.cancel() { state.recordCancellation(id: id, sessionID: sessionID, via: "disconnect") }
        }
    }

    // MARK: add, echo, write_note, headers, change_tools

    private func add(_ arguments: JSONObject, _ environment: CallEnvironment) -> Response {
        let sum: JSONValue
        if case .number(let a) = arguments["a"], case .number(let b) = arguments["b"], let x = Int(a.literal), let y = Int(b.literal),
            case (let total, false) = x.addingReportingOverflow(y)
        {
            sum = .int(total)
        } else {
            sum = .double((arguments["a"]?.doubleValue ?? 0) + (arguments["b"]?.doubleValue ?? 0))
        }
        return toolResult(environment, ["content": [Self.text(sum.jsonText)], "structuredContent": ["sum": sum]])
    }

    private func echo(_ arguments: JSONObject, _ environment: CallEnvironment) -> Response {
        let text = arguments["text"]?.stringValue ?? ""
        let headers: JSONValue = [
            "authorization-present": .bool(environment.headers.authorization != nil),
            "idempotency-key": environment.headers.idempotencyKey.map(JSONValue.string) ?? .null,
            "mcp-protocol-version": environment.headers.protocolVersion.map(JSONValue.string) ?? .null,
        ]
        return toolResult(
            environment,
            [
                "content": [["type": "text", "text": .string(text), "x-fixture-future-content": ["kept": true]]],
                "structuredContent": ["text": .string(text), "headers": headers],
                "_meta": ["com.example.fixture/echo": ["utf8Length": .int(text.utf8.count)]],
                "x-fixture-future-result": true,
            ])
    }

    private func writeNote(_ note: String, _ environment: CallEnvironment) -> Response {
        let key = environment.headers.idempotencyKey
        let seen = state.countNote(key: key)
        return toolResult(
            environment,
            [
                "content": [Self.text("note recorded; idempotency key \(key ?? "(none)") seen \(seen) time(s)")],
                "structuredContent": [
                    "note": .string(note), "idempotencyKey": key.map(JSONValue.string) ?? .null, "timesSeen": .int(seen),
                ],
            ])
    }

    private func headers(_ environment: CallEnvironment) -> Response {
        var headers = JSONObject()
        for field in environment.request.headers {
            let name = field.name.canonicalName
            let value = name == "authorization" ? "<present>" : field.value
            if let earlier = headers[name]?.stringValue {
                headers[name] = .string(earlier + ", " + value)
            } else {
                headers[name] = .string(value)
            }
        }
        return toolResult(environment, ["content": [Self.text(JSONValue.object(headers).jsonText)], "structuredContent": .object(headers)])
    }

    private func changeTools(_ environment: CallEnvironment) -> Response {
        let listed = state.toggleExtraTool()
        state.broadcastToolsChanged()
        let result = envelope(
            id: environment.id,
            result: [
                "content": [Self.text(listed ? "extra_tool is now listed" : "extra_tool is no longer listed")],
                "structuredContent": ["extraToolListed": .bool(listed)],
            ],
            modern: environment.modern)
        // List changes ride on a legacy request's own SSE stream too; in the modern era they go
        // only to subscriptions/listen streams, as the 2026-07-28 transport requires.
        if options.responseMode == .sse, !environment.modern {
            return Reply.sse([JSONRPCBytes.notification(method: "notifications/tools/list_changed", params: nil), result])
        }
        return reply(result)
    }

    // MARK: slow, progress

    private func slow(milliseconds: Int, _ environment: CallEnvironment) async -> Response {
        let call = state.beginCall(id: environment.id, sessionID: environment.sessionID)
        let result = envelope(id: environment.id, result: ["content": [Self.text("slept \(milliseconds) ms")]], modern: environment.modern)
        if options.responseMode == .sse {
            // Headers first, as a streaming server would; the result event comes after the wait.
            return Response(
                status: .ok, headers: Self.closingStreamHeaders,
                body: ResponseBody { writer in
                    defer { self.state.endCall(id: environment.id, sessionID: environment.sessionID) }
                    let completed = try await self.untilDisconnect(environment, call: call) { await call.pause(milliseconds: milliseconds) }
                    if completed { try await writer.write(SSE.frame(result)) }
                    try await writer.finish(nil)
                })
        }
        defer { state.endCall(id: environment.id, sessionID: environment.sessionID) }
        let completed = (try? await untilDisconnect(environment, call: call) { await call.pause(milliseconds: milliseconds) }) ?? false
        return completed ? reply(result, headers: Self.closing) : cancelledReply(environment)
    }

    private func progress(steps: Int, interval: Int, token: JSONValue?, _ environment: CallEnvironment) async -> Response {
        let call = state.beginCall(id: environment.id, sessionID: environment.sessionID)
        let result = envelope(
            id: environment.id, result: ["content": [Self.text("completed \(steps) steps")]], modern: environment.modern)
        guard let token else {
            defer { state.endCall(id: environment.id, sessionID: environment.sessionID) }
            let completed = (try? await untilDisconnect(environment, call: call) { await call.pause(milliseconds: steps * interval) }) ?? false
            return completed ? reply(result, headers: Self.closing) : cancelledReply(environment)
        }
        // Always SSE when progress is requested, whatever --response-mode says.
        return Response(
            status: .ok, headers: Self.closingStreamHeaders,
            body: ResponseBody { writer in
                defer { self.state.endCall(id: environment.id, sessionID: environment.sessionID) }
                let completed = try await self.untilDisconnect(environment, call: call) {
                    for step in stride(from: 1, through: steps, by: 1) {
                        guard await call.pause(milliseconds: interval) else { return false }
                        let notification = JSONRPCBytes.notification(
                            method: "notifications/progress",
                            params: [
                                "progressToken": token, "progress": .int(step), "total": .int(steps),
                                "message": .string("step \(step) of \(steps)"),
                            ])
                        try await writer.write(SSE.frame(notification))
                    }
                    return true
                }
                if completed { try await writer.write(SSE.frame(result)) }
                try await writer.finish(nil)
            })
    }

    // MARK: big

    /// One 64-byte block of the `big` text, already JSON-escaped: 59 'x', '\', 'é', '"', '\n'.
    private static let bigBlock: [UInt8] = Array(String(repeating: "x", count: 59).utf8) + Array(#"\\é\"\n"#.utf8)

    private func big(count: Int, _ environment: CallEnvironment) -> Response {
        var output: [UInt8] = []
        output.reserveCapacity(count / 64 * Self.bigBlock.count + 64 + 256)
        output.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
        JSONSerializer.write(environment.id, into: &output)
        output.append(contentsOf: #","result":{"#.utf8)
        if environment.modern { output.append(contentsOf: #""resultType":"complete","#.utf8) }
        output.append(contentsOf: #""content":[{"type":"text","text":""#.utf8)
        for _ in 0..<(count / 64) { output.append(contentsOf: Self.bigBlock) }
        output.append(contentsOf: repeatElement(UInt8(ascii: "x"), count: count % 64))
        output.append(contentsOf: #""}]"#.utf8)
        if environment.modern {
            output.append(contentsOf: #","_meta":{"io.modelcontextprotocol/serverInfo":"#.utf8)
            JSONSerializer.write(Self.serverInfo, into: &output)
            output.append(UInt8(ascii: "}"))
        }
        output.append(contentsOf: "}}".utf8)
        return reply(output)
    }

    // MARK: fail, garbage

    private func fail(_ arguments: JSONObject, _ environment: CallEnvironment) -> Response {
        let status = arguments["status"]?.intValue ?? 503
        if let times = arguments["times"]?.intValue {
            let attempt = state.countFailure(key: environment.headers.idempotencyKey)
            if attempt > times {
                return toolResult(
                    environment,
                    [
                        "content": [Self.text("succeeded after \(times) failures")],
                        "structuredContent": ["attempt": .int(attempt), "failures": .int(times)],
                    ])
            }
        }
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter = arguments["retryAfter"] { headers[.retryAfter] = retryAfter.stringValue ?? retryAfter.jsonText }
        let body = (status == 204 || status == 304) ? "" : arguments["body"]?.stringValue ?? Self.defaultFailureBody
        return Response(status: .init(code: status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    private func garbage(kind: String, _ environment: CallEnvironment) async -> Response {
        let id = environment.id
        let partial = #"{"jsonrpc":"2.0","id":\#(id.jsonText),"result":{"content":[{"type":"text","text":"partial"#
        switch kind {
        case "text":
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: "this is not json")))
        case "wrong-id":
            let wrongID: JSONValue
            switch id {
            case .number(let number): wrongID = .int((number.intValue ?? 0) &+ 1_000_000)
            case .string(let text): wrongID = .string(text + "-wrong")
            default: wrongID = "wrong"
            }
            return reply(envelope(id: wrongID, result: ["content": [Self.text("wrong id")]], modern: environment.modern))
        case "truncated-sse":
            // A complete HTTP response whose SSE body stops half-way through its only event.
            return Response(
                status: .ok, headers: Self.closingStreamHeaders,
                body: ResponseBody(byteBuffer: ByteBuffer(string: "event: message\ndata: " + partial)))
        case "stall-headers":
            let call = state.beginCall(id: id, sessionID: environment.sessionID)
            defer { state.endCall(id: id, sessionID: environment.sessionID) }
            _ = try? await untilDisconnect(environment, call: call) { await call.pause(milliseconds: Self.stallMilliseconds) }
            environment.context.dropConnection()
            return Reply.empty(.serviceUnavailable)
        case "stall-body":
            let call = state.beginCall(id: id, sessionID: environment.sessionID)
            return Response(
                status: .ok, headers: [.contentType: "application/json", .connection: "close"],
                body: ResponseBody { writer in
                    defer { self.state.endCall(id: id, sessionID: environment.sessionID) }
                    try await writer.write(ByteBuffer(string: partial))
                    _ = try? await self.untilDisconnect(environment, call: call) { await call.pause(milliseconds: Self.stallMilliseconds) }
                    environment.context.dropConnection()
                    throw AbandonedResponse()
                })
        default:  // "drop-connection"
            return Response(
                status: .ok, headers: Reply.streamHeaders,
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: "event: message\ndata: " + partial))
                    environment.context.dropConnection()
                    throw AbandonedResponse()
                })
        }
    }
}
