import AgentWire
import CurlHTTP
import Logging

/// The methods that go upstream: `initialize`'s answer, `tools/list`, `tools/call`, the forwarded
/// resources, prompts and completions, and `logging/setLevel`.
extension RequestRouter {
    func initializeReply(id: RequestKey) async -> Reply {
        if let catalogFallback {
            let (handshake, instructions) = await catalogFallback.initializeHandshake()
            return negotiation.initializeResult(id: id, handshake: handshake, instructions: instructions)
        }
        let handshake = await upstream.handshake(waitingAtMost: options.initializeWaitForUpstream)
        return negotiation.initializeResult(id: id, handshake: handshake, instructions: negotiation.instructions(handshake: handshake))
    }

    // MARK: Tools

    func listTools(id: RequestKey, params: JSONObject?, context: RequestContext) async -> Reply {
        if let catalogFallback {
            return toolListReply(await catalogFallback.listTools(params: forwardedParams(params)), id: id, context: context)
        }
        let response: UpstreamMessage
        do {
            response = try await upstream.request(method: "tools/list", params: forwardedParams(params))
        } catch {
            return .value(JSONRPC.error(id: id.id, code: JSONRPCErrorCode.internalError, message: "tools/list failed: \(error.message)"))
        }
        guard let result = response.value("result")?.objectValue else {
            return ResponseFraming.relay(response, to: id, modern: context.isModern)
        }
        return toolListReply(result, id: id, context: context)
    }

    /// The client's `tools/list` result: narrowing applied, read-only hints noted, and the fields a
    /// modern revision needs.
    func toolListReply(_ upstreamResult: JSONObject, id: RequestKey, context: RequestContext) -> Reply {
        var result = upstreamResult
        let tools = result["tools"]?.arrayValue ?? []
        let visible = narrowing.visibleTools(tools)
        if visible.count != tools.count { result["tools"] = .array(visible) }
        if context.isModern {
            if result["resultType"] == nil { result["resultType"] = "complete" }
            if result["ttlMs"] == nil { result["ttlMs"] = 0 }
            if result["cacheScope"] == nil { result["cacheScope"] = "private" }
        }
        return .value(JSONRPC.result(id: id.id, .object(result)))
    }

    func callTool(id: RequestKey, params: JSONObject?, context: RequestContext) async -> Reply {
        guard let params, let name = params["name"]?.stringValue else {
            return .value(
                JSONRPC.error(id: id.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: tools/call needs a string \"name\""))
        }
        if let arguments = params["arguments"], arguments.objectValue == nil, !arguments.isNull {
            return .value(JSONRPC.error(id: id.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: \"arguments\" must be an object"))
        }
        if let refusal = await narrowing.refusal(toolName: name) {
            return .value(JSONRPC.error(id: id.id, code: JSONRPCErrorCode.invalidParams, message: refusal))
        }
        let idempotencyKey = ULID().text
        let wantsProgress = params["_meta"]?["progressToken"] != nil
        let (forwarded, trace) = tracedParams(params)
        let started = ContinuousClock.now
        let response: UpstreamMessage
        do {
            response = try await upstream.request(
                method: "tools/call", params: forwarded, toolName: name, idempotencyKey: idempotencyKey
            ) { [self] notification in
                relayDuringCall(notification, wantsProgress: wantsProgress)
            }
        } catch {
            // Cancelled by the client or by shutdown: the request has left the in-flight table and
            // gets no answer. A failure that merely says "cancelled" (a credential source closing)
            // is answered like any other, or the request would wait forever.
            if Task.isCancelled { return .deferred }
            logger.notice(
                "tools/call \(Self.loggableToolName(name)) failed: \(error.code.rawValue)",
                metadata: trace.merging(["ms": "\((ContinuousClock.now - started).milliseconds)"]) { $1 })
            var result = JSONRPC.toolError(Self.toolErrorText(error))
            if context.isModern, case .object(var object) = result {
                object["resultType"] = "complete"
                result = .object(object)
            }
            return .value(JSONRPC.result(id: id.id, result))
        }
        catalogFallback?.checkAfterRecovery()
        logger.info(
            "tools/call \(Self.loggableToolName(name)) answered",
            metadata: trace.merging([
                "outcome": response.layout.member("error") == nil ? "result" : "error", "ms": "\((ContinuousClock.now - started).milliseconds)",
            ]) { $1 })
        return ResponseFraming.relay(response, to: id, modern: context.isModern)
    }

    /// A tool name as a log line may show it: the client chose it, so anything but a plain name
    /// (letters, digits, `_`, `-`, `.`, `/`, at most 64) is shown as `(unusual name)`.
    static func loggableToolName(_ name: String) -> String {
        let plain =
            name.utf8.count <= 64 && !name.isEmpty
            && name.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || "_-./".utf8.contains(byte)
            }
        return plain ? name : "(unusual name)"
    }

    /// What the model reads when a call failed before the upstream answered it: the failure's own
    /// line, and whether anything was written and retrying makes sense.
    static func toolErrorText(_ failure: UpstreamFailure) -> String {
        guard failure.callDidNotRun else { return failure.message }
        switch failure.code {
        case .unreachable, .timedOut, .tls, .upstreamError, .badResponse:
            return "\(failure.message) (nothing was written; the next call tries again)"
        default:
            return "\(failure.message) (nothing was written)"
        }
    }

    /// A notification the upstream sent while a call ran: progress only if the client asked for
    /// it, a tool-list change as any other, the rest (log messages) to the client.
    func relayDuringCall(_ notification: UpstreamMessage, wantsProgress: Bool) {
        switch notification.method {
        case "notifications/progress":
            if wantsProgress { writer.send(ResponseFraming.compacted(notification.bytes[...])) }
        case "notifications/tools/list_changed":
            subscriptions.relayUnsolicited(notification)
        default:
            // notifications/message and the like belong to this call's client.
            writer.send(ResponseFraming.compacted(notification.bytes[...]))
        }
    }

    // MARK: Forwarded methods

    /// Resources, prompts and completions go upstream unchanged, if the upstream offers them.
    func forwardIfOffered(id: RequestKey, method: String, params: JSONObject?, context: RequestContext) async -> Reply {
        let capability = method.hasPrefix("resources/") ? "resources" : method.hasPrefix("prompts/") ? "prompts" : "completions"
        let handshake = await upstream.handshake(waitingAtMost: .seconds(10))
        guard handshake?.capabilities[capability] != nil else {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.methodNotFound, message: "Method not found: \(method) (the upstream offers no \(capability))"))
        }
        do {
            let response = try await upstream.request(method: method, params: tracedParams(params).params)
            return ResponseFraming.relay(response, to: id, modern: context.isModern)
        } catch {
            if Task.isCancelled { return .deferred }
            return .value(JSONRPC.error(id: id.id, code: JSONRPCErrorCode.internalError, message: "\(method) failed: \(error.message)"))
        }
    }

    /// The client's params minus the protocol `_meta` keys the sidecar sets itself upstream.
    func forwardedParams(_ params: JSONObject?) -> JSONObject? {
        guard var params else { return nil }
        if var meta = params["_meta"]?.objectValue {
            meta[ModernMetaKey.protocolVersion] = nil
            meta[ModernMetaKey.clientCapabilities] = nil
            meta[ModernMetaKey.clientInfo] = nil
            params["_meta"] = meta.isEmpty ? nil : .object(meta)
        }
        return params
    }

    /// The params to send upstream: ``forwardedParams(_:)`` with the W3C trace context of this hop
    /// in `_meta` (the client's trace continued with a span of the sidecar's own, or a new trace),
    /// and that span for the log lines about the call.
    func tracedParams(_ params: JSONObject?) -> (params: JSONObject?, trace: Logger.Metadata) {
        var forwarded = forwardedParams(params) ?? JSONObject()
        let incoming = TraceMeta.incoming(params?["_meta"]?.objectValue)
        let span = TraceMeta.span(after: incoming)
        forwarded["_meta"] = .object(TraceMeta.writing(span, into: forwarded["_meta"]?.objectValue))
        return (forwarded, TraceMeta.logMetadata(span: span, parent: incoming))
    }

    /// Answered at once; passed on upstream in the background when the upstream offers logging.
    func setLogLevel(id: RequestKey, params: JSONObject?) -> Reply {
        let levels = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
        guard let level = params?["level"]?.stringValue, levels.contains(level) else {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.invalidParams,
                    message: "Invalid params: \"level\" must be one of \(levels.joined(separator: ", "))"))
        }
        Task { [upstream] in
            guard let handshake = try? await upstream.handshake(), handshake.capabilities["logging"] != nil else { return }
            _ = try? await upstream.request(method: "logging/setLevel", params: ["level": .string(level)])
        }
        return .value(JSONRPC.result(id: id.id, [:]))
    }
}
