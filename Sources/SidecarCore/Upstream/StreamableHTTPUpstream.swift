import AgentWire
import Logging
import SodiumKit
import Synchronization
import SystemSupport

/// How the upstream was found to speak.
public enum UpstreamEra: Sendable, Equatable {
    /// `initialize` handshake; `sessionID` is the `Mcp-Session-Id` it issued, if any.
    case legacy(version: String, sessionID: String?)
    /// 2026-07-28 and later: stateless, version in every request's `_meta`.
    case modern(version: String)

    var protocolVersion: String {
        switch self {
        case .legacy(let version, _), .modern(let version): return version
        }
    }
}

/// What the upstream told us about itself.
public struct UpstreamHandshake: Sendable {
    public let era: UpstreamEra
    public let capabilities: JSONValue
    public let serverInfo: JSONValue?
    public let instructions: String?
    let generation: Int

    /// A handshake as an upstream reported it (tests and the fuzz target make their own).
    public init(era: UpstreamEra, capabilities: JSONValue, serverInfo: JSONValue? = nil, instructions: String? = nil) {
        self.init(era: era, capabilities: capabilities, serverInfo: serverInfo, instructions: instructions, generation: 0)
    }

    init(era: UpstreamEra, capabilities: JSONValue, serverInfo: JSONValue?, instructions: String?, generation: Int) {
        self.era = era
        self.capabilities = capabilities
        self.serverInfo = serverInfo
        self.instructions = instructions
        self.generation = generation
    }

    public var offersToolListChanges: Bool { capabilities["tools"]?["listChanged"]?.boolValue == true }
}

/// Settings of the upstream bridge.
public struct UpstreamSettings: Sendable {
    public var url: UpstreamURL
    public var extraHeaders: [HTTPHeader] = []
    public var requestTimeout: Duration = .seconds(120)
    /// Retries of one call: connections refused before any byte left, and 429/503 with Retry-After.
    public var maximumRetries = 2
    /// A Retry-After longer than this is not waited for; the call fails with the advice instead.
    public var maximumRetryWait: Duration = .seconds(10)
    /// Try the stateless 2026-07-28 revision first.
    public var prefersModern = true

    public init(url: UpstreamURL) { self.url = url }
}

/// An MCP client for the Streamable HTTP transport over libcurl: finds the upstream's era
/// (a `server/discover` probe, then `initialize`), keeps `Mcp-Session-Id`, re-initializes once
/// when the session is gone, retries only where that is safe, and relays notifications that
/// arrive on a response stream before the response.
public final class StreamableHTTPUpstream: Sendable {
    public typealias NotificationHandler = @Sendable (UpstreamMessage) -> Void

    struct State {
        var handshake: UpstreamHandshake?
        var connecting: Task<UpstreamHandshake, any Error>?
        var nextRequestID = 1
        var generation = 0
        var knownEra: Bool?  // true = modern, false = legacy; nil = not probed yet
    }

    let http: CurlHTTPClient
    public let settings: UpstreamSettings
    let credentials: any UpstreamCredentialSource
    let logger: Logger
    let state = Mutex(State())

    public init(settings: UpstreamSettings, http: CurlHTTPClient, credentials: any UpstreamCredentialSource, logger: Logger) {
        self.settings = settings
        self.http = http
        self.credentials = credentials
        self.logger = logger
    }

    // MARK: Handshake

    /// The upstream's handshake, performed once and shared by concurrent callers.
    public func handshake() async throws(UpstreamFailure) -> UpstreamHandshake {
        // Every request asks; once known, answer without a task (and the thread hop it costs).
        if let handshake = state.withLock({ $0.handshake }) { return handshake }
        let task: Task<UpstreamHandshake, any Error> = state.withLock { state in
            if let handshake = state.handshake { return Task { handshake } }
            if let connecting = state.connecting { return connecting }
            let connecting = Task { try await self.performHandshake() }
            state.connecting = connecting
            return connecting
        }
        do {
            let handshake = try await task.value
            state.withLock { state in
                if state.handshake == nil || state.handshake!.generation < handshake.generation { state.handshake = handshake }
                state.connecting = nil
            }
            return handshake
        } catch {
            state.withLock { $0.connecting = nil }
            throw asFailure(error)
        }
    }

    /// The handshake if it has completed, without waiting.
    public var currentHandshake: UpstreamHandshake? { state.withLock { $0.handshake } }

    /// Forgets the session so that the next call initializes again (after a 404).
    func invalidate(generation: Int) {
        state.withLock { state in
            if let handshake = state.handshake, handshake.generation == generation { state.handshake = nil }
        }
    }

    private func performHandshake() async throws -> UpstreamHandshake {
        let generation = state.withLock { state -> Int in
            state.generation += 1
            return state.generation
        }
        let knownEra = state.withLock { $0.knownEra }
        if settings.prefersModern, knownEra != false {
            if let modern = try await probeModern(generation: generation) {
                state.withLock { $0.knownEra = true }
                return modern
            }
            state.withLock { $0.knownEra = false }
        }
        return try await initializeLegacy(generation: generation)
    }

    /// Sends `server/discover` with modern `_meta`. Returns nil when the upstream is legacy.
    private func probeModern(generation: Int) async throws -> UpstreamHandshake? {
        let version = ProtocolRevision.v2026_07_28.rawValue
        let id = allocateRequestID()
        let body: JSONValue = [
            "jsonrpc": "2.0", "id": .int(id), "method": "server/discover",
            "params": ["_meta": modernMeta(version: version)],
        ]
        let outcome = try await post(
            body: body.serialized(), requestID: id, method: "server/discover", toolName: nil, era: .modern(version: version),
            idempotencyKey: nil, timeout: settings.requestTimeout, onNotification: nil)
        switch outcome {
        case .response(let message):
            guard let result = message.value("result")?.objectValue,
                let versions = result["supportedVersions"]?.arrayValue?.compactMap(\.stringValue),
                versions.contains(version)
            else {
                return nil
            }
            logger.debug("upstream speaks \(version) (stateless)")
            return UpstreamHandshake(
                era: .modern(version: version), capabilities: result["capabilities"] ?? [:],
                serverInfo: result["_meta"]?[ModernMetaKey.serverInfo], instructions: result["instructions"]?.stringValue,
                generation: generation)
        case .accepted:
            return nil
        case .httpFailure(let status, _, _) where (400..<500).contains(status) && status != 401 && status != 403 && status != 429:
            return nil
        case .httpFailure(let status, let headers, let body):
            throw failure(status: status, headers: headers, body: body)
        }
    }

    private func initializeLegacy(generation: Int) async throws -> UpstreamHandshake {
        let requested = ProtocolRevision.latestLegacy.rawValue
        let id = allocateRequestID()
        let body: JSONValue = [
            "jsonrpc": "2.0", "id": .int(id), "method": "initialize",
            "params": ["protocolVersion": .string(requested), "capabilities": [:], "clientInfo": SidecarIdentity.implementation],
        ]
        var sessionID: String?
        let outcome = try await post(
            body: body.serialized(), requestID: id, method: "initialize", toolName: nil, era: nil, idempotencyKey: nil,
            timeout: settings.requestTimeout, onNotification: nil, onHead: { head in sessionID = head.headers.value(for: "mcp-session-id") })
        let message: UpstreamMessage
        switch outcome {
        case .response(let received): message = received
        case .accepted:
            throw UpstreamFailure(code: .badResponse, message: "the upstream accepted `initialize` without answering it; it is not an MCP server")
        case .httpFailure(let status, let headers, let body):
            throw failure(status: status, headers: headers, body: body)
        }
        if let error = message.value("error") {
            throw UpstreamFailure(
                code: .rejected,
                message:
                    "the upstream refused to initialize: \(error["message"]?.stringValue ?? "no reason given"); check that --upstream points at an MCP endpoint"
            )
        }
        guard let result = message.value("result")?.objectValue, let version = result["protocolVersion"]?.stringValue else {
            throw UpstreamFailure(code: .badResponse, message: "the upstream's initialize result has no protocolVersion; it does not speak MCP")
        }
        guard ProtocolRevision(rawValue: version).map({ !$0.isModern }) == true else {
            throw UpstreamFailure(
                code: .rejected, message: "the upstream chose protocol version \(version), which the sidecar does not speak; upgrade agent-sidecar")
        }
        let era = UpstreamEra.legacy(version: version, sessionID: sessionID)
        // Complete the handshake; a failure here is not fatal to the session.
        let initialized: JSONValue = ["jsonrpc": "2.0", "method": "notifications/initialized"]
        _ = try? await post(
            body: initialized.serialized(), requestID: nil, method: "notifications/initialized", toolName: nil, era: era,
            idempotencyKey: nil, timeout: settings.requestTimeout, onNotification: nil)
        logger.debug("upstream speaks \(version)\(sessionID == nil ? "" : " with a session")")
        return UpstreamHandshake(
            era: era, capabilities: result["capabilities"] ?? [:], serverInfo: result["serverInfo"],
            instructions: result["instructions"]?.stringValue, generation: generation)
    }

    func modernMeta(version: String) -> JSONValue {
        [
            ModernMetaKey.protocolVersion: .string(version), ModernMetaKey.clientCapabilities: [:],
            ModernMetaKey.clientInfo: SidecarIdentity.implementation,
        ]
    }

    func allocateRequestID() -> Int {
        state.withLock { state in
            defer { state.nextRequestID += 1 }
            return state.nextRequestID
        }
    }

    // MARK: Requests

    /// Sends one request and returns the upstream's response message (a result or an error),
    /// relaying notifications that arrive first. Retries where safe; cancelling the task aborts
    /// the transfer and tells a legacy upstream with `notifications/cancelled`.
    ///
    /// - Parameters:
    ///   - method: the JSON-RPC method.
    ///   - params: the request's params as the client sent them; the sidecar's own `_meta` is added
    ///     for a modern upstream.
    ///   - toolName: for `tools/call`, the `Mcp-Name` header.
    ///   - idempotencyKey: sent as `Idempotency-Key`; the same on every retry of this call.
    public func request(
        method: String, params: JSONObject?, toolName: String? = nil, idempotencyKey: String? = nil,
        onNotification: NotificationHandler? = nil
    ) async throws(UpstreamFailure) -> UpstreamMessage {
        var attempts = 0
        var reinitialized = false
        var reauthenticated = false
        while true {
            let handshake: UpstreamHandshake
            // The call has not left yet: whatever failed here, the upstream did not run it.
            do { handshake = try await self.handshake() } catch { throw await explained(error).notRun() }
            let id = allocateRequestID()
            var finalParams = params ?? JSONObject()
            if case .modern(let version) = handshake.era {
                var meta = finalParams["_meta"]?.objectValue ?? JSONObject()
                for member in modernMeta(version: version).objectValue! where meta[member.key] == nil || member.key == ModernMetaKey.protocolVersion {
                    meta[member.key] = member.value
                }
                finalParams["_meta"] = .object(meta)
            }
            var message = JSONObject()
            message["jsonrpc"] = "2.0"
            message["id"] = .int(id)
            message["method"] = .string(method)
            if params != nil || !finalParams.isEmpty {
                message["params"] = .object(finalParams)
            }
            let outcome: PostOutcome
            do {
                outcome = try await withTaskCancellationHandler {
                    try await post(
                        body: JSONValue.object(message).serialized(), requestID: id, method: method, toolName: toolName,
                        era: handshake.era, idempotencyKey: idempotencyKey, timeout: settings.requestTimeout,
                        onNotification: onNotification)
                } onCancel: {
                    self.sendCancellation(requestID: id, era: handshake.era)
                }
            } catch let error as HTTPClientError {
                if !error.requestWasSent, attempts < settings.maximumRetries, !Task.isCancelled {
                    attempts += 1
                    logger.debug("upstream connection failed before sending (\(error.code.rawValue)); retry \(attempts)")
                    try? await Task.sleep(for: .milliseconds(50 * attempts))
                    continue
                }
                throw UpstreamFailure.from(error, upstream: settings.url.text, timeout: settings.requestTimeout)
            } catch {
                throw asFailure(error)
            }
            switch outcome {
            case .response(let response): return response
            case .accepted:
                throw UpstreamFailure(
                    code: .badResponse, message: "the upstream accepted the request but sent no response; it may not speak MCP over HTTP")
            case .httpFailure(let status, let headers, let body):
                let failure = failure(status: status, headers: headers, body: body)
                if status == 404, case .legacy(_, let session?) = handshake.era, !reinitialized {
                    logger.info("upstream session \(session.prefix(8))… is gone; initializing again")
                    reinitialized = true
                    invalidate(generation: handshake.generation)
                    continue
                }
                if status == 401, !reauthenticated, await credentials.credentialRejected(status: status, errorCode: failure.gatewayCode) {
                    reauthenticated = true
                    continue
                }
                if status == 429 || status == 503, let wait = failure.retryAfterSeconds, attempts < settings.maximumRetries,
                    Duration.seconds(wait) <= settings.maximumRetryWait
                {
                    attempts += 1
                    logger.debug("upstream answered \(status); retrying in \(wait) s (attempt \(attempts))")
                    do { try await Task.sleep(for: .seconds(wait)) } catch { throw UpstreamFailure(code: .cancelled, message: "cancelled") }
                    continue
                }
                throw await explained(failure)
            }
        }
    }

    /// A refusal of the credentials (401, 403) in the credential source's words.
    private func explained(_ failure: UpstreamFailure) async -> UpstreamFailure {
        guard failure.httpStatus == 401 || failure.httpStatus == 403 else { return failure }
        return await credentials.explainRejection(failure)
    }

    /// Sends a notification (fire and forget; failures are logged).
    public func notify(method: String, params: JSONObject?) async {
        guard let handshake = try? await handshake() else { return }
        var message: JSONObject = ["jsonrpc": "2.0", "method": .string(method)]
        if let params { message["params"] = .object(params) }
        do {
            _ = try await post(
                body: JSONValue.object(message).serialized(), requestID: nil, method: method, toolName: nil, era: handshake.era,
                idempotencyKey: nil, timeout: .seconds(5), onNotification: nil)
        } catch {
            logger.debug("upstream notification \(method) failed: \(error)")
        }
    }

    private func sendCancellation(requestID: Int, era: UpstreamEra) {
        // A modern upstream treats the closed stream as the cancellation; a legacy one wants it said.
        guard case .legacy = era else { return }
        Task { await self.notify(method: "notifications/cancelled", params: ["requestId": .int(requestID), "reason": "cancelled by the client"]) }
    }

    // MARK: Change notifications

    /// Listens for `notifications/tools/list_changed` and other unsolicited notifications until the
    /// task is cancelled: the standalone GET stream of a legacy upstream, `subscriptions/listen`
    /// on a modern one. Reconnects with a back-off; stops if the upstream does not offer a stream.
    public func listenForChanges(_ onNotification: @escaping NotificationHandler) async {
        var failures = 0
        while !Task.isCancelled {
            guard let handshake = try? await handshake() else {
                failures += 1
                try? await Task.sleep(for: .milliseconds(min(30_000, 500 * failures * failures)))
                continue
            }
            guard var headers = try? await baseHeaders(era: handshake.era, method: nil, toolName: nil) else {
                failures += 1
                try? await Task.sleep(for: .milliseconds(min(30_000, 500 * failures * failures)))
                continue
            }
            var request: HTTPRequest
            switch handshake.era {
            case .legacy(_, let sessionID):
                guard sessionID != nil else { return }
                headers.append(HTTPHeader("Accept", "text/event-stream"))
                request = HTTPRequest(
                    method: "GET", url: settings.url.text, headers: headers, timeout: .seconds(86_400 * 365), streamsEventStreams: true)
            case .modern(let version):
                let id = allocateRequestID()
                headers.append(HTTPHeader("Accept", "application/json, text/event-stream"))
                headers.append(HTTPHeader("Content-Type", "application/json"))
                headers.append(HTTPHeader("Mcp-Method", "subscriptions/listen"))
                let body: JSONValue = [
                    "jsonrpc": "2.0", "id": .int(id), "method": "subscriptions/listen",
                    "params": ["_meta": modernMeta(version: version), "notifications": ["toolsListChanged": true]],
                ]
                request = HTTPRequest(
                    method: "POST", url: settings.url.text, headers: headers, body: body.serialized(), timeout: .seconds(86_400 * 365),
                    streamsEventStreams: true)
            }
            do {
                var decoder = ServerSentEventDecoder()
                var opened = false
                for try await part in http.stream(request) {
                    switch part {
                    case .head(let head):
                        guard (200..<300).contains(head.status), head.isEventStream else {
                            logger.debug("upstream offers no notification stream (HTTP \(head.status))")
                            if head.status == 404, case .legacy = handshake.era { invalidate(generation: handshake.generation) }
                            if head.status == 405 || head.status == 400 || !(500..<600).contains(head.status) && head.status != 404 { return }
                            throw UpstreamFailure(code: .upstreamError, message: "HTTP \(head.status)")
                        }
                        opened = true
                        failures = 0
                    case .body(let bytes):
                        try decoder.feed(bytes) { event in
                            guard event.event == "message", let message = try? UpstreamMessage(bytes: event.data), message.isNotification else {
                                return
                            }
                            onNotification(message)
                        }
                    }
                }
                if !opened { failures += 1 }
            } catch {
                if Task.isCancelled { return }
                failures += 1
            }
            try? await Task.sleep(for: .milliseconds(min(30_000, 250 * (1 << min(failures, 7)))))
        }
    }

    // MARK: Shutdown

    /// Ends the upstream session (`DELETE` with `Mcp-Session-Id`) and the credential's session,
    /// both at once: the shutdown budget is short, and ending the credential's session (which
    /// kills the token) must not wait behind the other.
    public func close(timeout: Duration) async {
        var endMCPSession: HTTPRequest?
        if let handshake = currentHandshake, case .legacy(_, let sessionID?) = handshake.era {
            // baseHeaders carries the Mcp-Session-Id of a legacy era.
            let headers = (try? await baseHeaders(era: handshake.era, method: nil, toolName: nil)) ?? settings.extraHeaders
            logger.debug("ending upstream session \(sessionID.prefix(8))…")
            endMCPSession = HTTPRequest(method: "DELETE", url: settings.url.text, headers: headers, timeout: timeout)
        }
        await withTaskGroup(of: Void.self) { group in
            if let endMCPSession { group.addTask { _ = try? await self.http.send(endMCPSession) } }
            group.addTask { await self.credentials.close() }
        }
    }

    // MARK: One exchange

    enum PostOutcome: Sendable {
        case response(UpstreamMessage)
        case accepted
        case httpFailure(status: Int, headers: [HTTPHeader], body: [UInt8])
    }

    /// The `Authorization` value from the credential source, its failure said as an UpstreamFailure.
    func authorization() async throws(UpstreamFailure) -> SecretBytes? {
        do {
            return try await credentials.authorizationSecret()
        } catch let failure as UpstreamFailure {
            throw failure
        } catch {
            throw UpstreamFailure(code: .unauthorized, message: "no credential for the upstream: \(error)")
        }
    }

    /// Headers every exchange carries; asks the credential source once.
    func baseHeaders(era: UpstreamEra?, method: String?, toolName: String?) async throws(UpstreamFailure) -> [HTTPHeader] {
        var headers = settings.extraHeaders
        if let authorization = try await authorization() {
            headers.append(HTTPHeader("Authorization", secret: authorization))
        }
        switch era {
        case .legacy(let version, let sessionID):
            headers.append(HTTPHeader("MCP-Protocol-Version", version))
            if let sessionID { headers.append(HTTPHeader("Mcp-Session-Id", sessionID)) }
        case .modern(let version):
            headers.append(HTTPHeader("MCP-Protocol-Version", version))
            if let method { headers.append(HTTPHeader("Mcp-Method", method)) }
            if let toolName { headers.append(HTTPHeader("Mcp-Name", Self.headerSafe(toolName))) }
        case nil:
            break
        }
        return headers
    }

    /// Plain visible ASCII goes as is; anything else uses the spec's base64 sentinel form.
    static func headerSafe(_ value: String) -> String {
        let plain = value.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
        return plain ? value : "=?base64?\(Base64.encode(Array(value.utf8)))?="
    }

    private func post(
        body: [UInt8], requestID: Int?, method: String, toolName: String?, era: UpstreamEra?, idempotencyKey: String?,
        timeout: Duration, onNotification: NotificationHandler?, onHead: ((HTTPResponseHead) -> Void)? = nil
    ) async throws -> PostOutcome {
        var headers: [HTTPHeader]
        do { headers = try await baseHeaders(era: era, method: method, toolName: toolName) } catch { throw error.notRun() }
        headers.append(HTTPHeader("Content-Type", "application/json"))
        headers.append(HTTPHeader("Accept", "application/json, text/event-stream"))
        if let idempotencyKey { headers.append(HTTPHeader("Idempotency-Key", idempotencyKey)) }
        let request = HTTPRequest(method: "POST", url: settings.url.text, headers: headers, body: body, timeout: timeout, streamsEventStreams: true)

        var head: HTTPResponseHead?
        var collected: [UInt8] = []
        var decoder = ServerSentEventDecoder(maximumEventBytes: http.configuration.maximumResponseBytes)
        var response: UpstreamMessage?
        for try await part in http.stream(request) {
            switch part {
            case .head(let received):
                head = received
                onHead?(received)
            case .body(let bytes):
                guard let head, (200..<300).contains(head.status), head.isEventStream else {
                    if collected.isEmpty { collected = bytes } else { collected.append(contentsOf: bytes) }
                    continue
                }
                try decoder.feed(bytes) { event in
                    guard event.event == "message", response == nil else { return }
                    let message: UpstreamMessage
                    do { message = try UpstreamMessage(bytes: event.data) } catch {
                        throw UpstreamFailure(
                            code: .badResponse,
                            message: "the upstream sent an event that is not valid JSON (\(error)); report it to the upstream's operator")
                    }
                    if message.isResponse {
                        guard let requestID, message.value("id")?.intValue == requestID else {
                            throw UpstreamFailure(
                                code: .badResponse,
                                message: "the upstream answered a request the sidecar did not send; report it to the upstream's operator")
                        }
                        response = message
                    } else if message.isRequest {
                        self.refuseServerRequest(message, era: era)
                    } else {
                        onNotification?(message)
                    }
                }
                if response != nil { return .response(response!) }
            }
        }
        guard let head else { throw HTTPClientError(code: .connectionLost, detail: "no response head", requestWasSent: true) }
        guard (200..<300).contains(head.status) else { return .httpFailure(status: head.status, headers: head.headers, body: collected) }
        if head.isEventStream {
            guard requestID != nil else { return .accepted }
            throw UpstreamFailure(code: .badResponse, message: "the upstream closed its event stream before answering; retry the call")
        }
        if head.status == 202 || collected.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            if requestID == nil { return .accepted }
            throw UpstreamFailure(
                code: .badResponse, message: "the upstream answered HTTP \(head.status) with no JSON-RPC response; it may not speak MCP")
        }
        let message: UpstreamMessage
        do { message = try UpstreamMessage(bytes: collected) } catch {
            throw UpstreamFailure(
                code: .badResponse,
                message: "the upstream sent a response that is not valid JSON (\(error)); check that --upstream is an MCP endpoint")
        }
        guard let requestID else { return .accepted }
        guard message.isResponse, message.value("id")?.intValue == requestID else {
            throw UpstreamFailure(
                code: .badResponse,
                message: "the upstream's response does not answer the request the sidecar sent; report it to the upstream's operator")
        }
        return .response(message)
    }

    /// The sidecar offers its upstream no client features (sampling, roots, elicitation), so a
    /// request from the upstream is answered with an error rather than left hanging.
    private func refuseServerRequest(_ message: UpstreamMessage, era: UpstreamEra?) {
        guard let id = message.value("id") else { return }
        let reply: JSONValue = [
            "jsonrpc": "2.0", "id": id,
            "error": ["code": .int(JSONRPCErrorCode.methodNotFound), "message": "agent-sidecar does not offer client features to its upstream"],
        ]
        Task {
            guard let era else { return }
            guard var headers = try? await baseHeaders(era: era, method: nil, toolName: nil) else { return }
            headers.append(HTTPHeader("Content-Type", "application/json"))
            headers.append(HTTPHeader("Accept", "application/json, text/event-stream"))
            _ = try? await http.send(
                HTTPRequest(method: "POST", url: settings.url.text, headers: headers, body: reply.serialized(), timeout: .seconds(5)))
        }
    }

    /// Maps an HTTP error status to a failure that says what happened and what to do next.
    func failure(status: Int, headers: [HTTPHeader], body: [UInt8]) -> UpstreamFailure {
        let parsed = try? JSONParser.parse(body)
        let gatewayError = parsed?["error"]
        let gatewayCode = gatewayError?["code"]?.stringValue
        let gatewayMessage = gatewayError?["message"]?.stringValue.map(Self.oneLine)
        let retryAfter = headers.value(for: "retry-after").flatMap { Int($0.trimmingSpaces()) }
        let codeSuffix = gatewayCode.map { " \($0)" } ?? ""
        func say(_ what: String, _ advice: String) -> String {
            "\(what) (HTTP \(status)\(codeSuffix)): \(gatewayMessage ?? advice)"
        }
        var failure = describeStatus(
            status, say: say, gatewayCode: gatewayCode, gatewayMessage: gatewayMessage, parsed: parsed, retryAfter: retryAfter)
        // Refused before it ran: unauthenticated, forbidden, or over the rate limit.
        if status == 401 || status == 403 || status == 429 { failure.callDidNotRun = true }
        return failure
    }

    private func describeStatus(
        _ status: Int, say: (String, String) -> String, gatewayCode: String?, gatewayMessage: String?, parsed: JSONValue?, retryAfter: Int?
    ) -> UpstreamFailure {
        let codeSuffix = gatewayCode.map { " \($0)" } ?? ""
        switch status {
        case 401:
            return UpstreamFailure(
                code: .unauthorized,
                message: say("the upstream rejected the credentials", "check the token given with --bearer-env, or run `agent-sidecar setup` again"),
                httpStatus: status, gatewayCode: gatewayCode)
        case 403:
            return UpstreamFailure(
                code: .forbidden, message: say("the upstream refused the call", "the credentials lack permission; ask the upstream's owner"),
                httpStatus: status, gatewayCode: gatewayCode)
        case 429:
            let advice = retryAfter.map { "retry after \($0) s" } ?? "retry later"
            return UpstreamFailure(
                code: .rateLimited, message: say("the upstream is rate limiting this client", advice), httpStatus: status, gatewayCode: gatewayCode,
                retryAfterSeconds: retryAfter)
        case 500..<600:
            return UpstreamFailure(
                code: .upstreamError, message: say("the upstream failed", "retry later; if it persists, tell the upstream's operator"),
                httpStatus: status, gatewayCode: gatewayCode, retryAfterSeconds: retryAfter)
        default:
            let jsonRPCMessage = parsed?["error"]?["message"]?.stringValue.map(Self.oneLine)
            return UpstreamFailure(
                code: .rejected,
                message:
                    "the upstream rejected the request (HTTP \(status)\(codeSuffix)): \(gatewayMessage ?? jsonRPCMessage ?? "check --upstream and the sidecar's flags")",
                httpStatus: status, gatewayCode: gatewayCode)
        }
    }

    static func oneLine(_ text: String) -> String {
        text.flattenedToOneLine(limit: 500, marker: "")
    }

    func asFailure(_ error: any Error) -> UpstreamFailure {
        if let failure = error as? UpstreamFailure { return failure }
        if error is CancellationError { return UpstreamFailure(code: .cancelled, message: "the call was cancelled") }
        if let httpError = error as? HTTPClientError {
            return UpstreamFailure.from(httpError, upstream: settings.url.text, timeout: settings.requestTimeout)
        }
        if error is ServerSentEventDecoder.EventTooLarge {
            return UpstreamFailure(code: .tooLarge, message: "the upstream sent an event larger than the size limit; raise --max-message-bytes")
        }
        return UpstreamFailure(code: .badResponse, message: "the upstream exchange failed: \(error)")
    }
}
