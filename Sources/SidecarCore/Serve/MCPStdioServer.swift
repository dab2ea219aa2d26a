import AgentWire
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `agent-sidecar serve`: an MCP server on stdin/stdout that bridges every call to one upstream.
///
/// Threads and tasks: a reader thread frames stdin and classifies each message in arrival order;
/// cheap requests (initialize, ping, discover) are answered right there, the rest run as one task
/// each, so a slow call never delays another; one writer thread owns stdout; the curl engine
/// thread drives every upstream transfer. See docs/architecture.md.
public final class MCPStdioServer: Sendable {
    enum Reply: Sendable {
        case value(JSONValue)
        /// A complete message, already serialized with the client's id.
        case frame([UInt8])
        /// Nothing to send now (an open subscription).
        case deferred
    }

    /// Where the replies of one message go: straight to stdout, or into a batch's array.
    final class BatchCollector: Sendable {
        let pending: Mutex<(expected: Int, frames: [[UInt8]])>
        let writer: StdoutWriter
        init(expected: Int, writer: StdoutWriter) {
            self.pending = Mutex((expected, []))
            self.writer = writer
        }
        func deliver(_ frame: [UInt8]?) {
            let complete: [[UInt8]]? = pending.withLock { state in
                if let frame { state.frames.append(frame) }
                state.expected -= 1
                return state.expected == 0 ? state.frames : nil
            }
            guard let complete, !complete.isEmpty else { return }
            var line: [UInt8] = [UInt8(ascii: "[")]
            for (index, frame) in complete.enumerated() {
                if index > 0 { line.append(UInt8(ascii: ",")) }
                line.append(contentsOf: frame)
            }
            line.append(UInt8(ascii: "]"))
            writer.send(line)
        }
    }

    struct InFlight {
        var task: Task<Void, Never>?
        var batch: BatchCollector?
        var isSubscription = false
    }

    struct Subscription {
        let id: JSONValue
        let toolsListChanged: Bool
    }

    struct State {
        var legacyRevision: ProtocolRevision?
        var initialized = false
        var inFlight: [RequestKey: InFlight] = [:]
        var subscriptions: [RequestKey: Subscription] = [:]
        var acceptingInput = true
        var shutdownReason: String?
        var readOnlyHints: [String: Bool?] = [:]
        /// The revision of the last modern request, for errors that cannot name a request.
        var lastModernRevision: ProtocolRevision?
        var listenerStarted = false
        /// Paired mode: the tools last listed to the client (from the gateway or the stored catalog).
        var listedTools: [JSONValue]?
        /// Paired mode: the client holds the stored catalog (or a session started without the gateway),
        /// so the first call that reaches the gateway again checks the catalog.
        var awaitingRecovery = false
    }

    let options: ServeOptions
    let upstream: any MCPUpstream
    let logger: Logger
    let writer: StdoutWriter
    let reader: StdinLineReader
    let state = Mutex(State())
    let shutdownSignal = ShutdownLatch()
    /// Paired mode: the last tool catalog, served when the gateway cannot be used (see `ToolCatalogCache`).
    let catalog: ToolCatalogMemory?

    /// - Parameters:
    ///   - catalog: Paired mode's stored catalog. With one, `tools/list` always succeeds: when the
    ///     upstream fails or is slow it is answered from the catalog, `initialize`'s instructions say
    ///     why, and the first call that goes through again checks the catalog and sends
    ///     `notifications/tools/list_changed` if it changed.
    public init(
        options: ServeOptions, upstream: any MCPUpstream, logger: Logger, input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO,
        catalog: ToolCatalogMemory? = nil
    ) {
        self.options = options
        self.upstream = upstream
        self.logger = logger
        self.catalog = catalog
        let latch = shutdownSignal
        self.writer = StdoutWriter(fileDescriptor: output) { latch.trigger("stdout closed") }
        self.reader = StdinLineReader(fileDescriptor: input, maximumLineBytes: options.maximumMessageBytes)
    }

    // MARK: Lifecycle

    /// Serves until stdin closes or SIGTERM/SIGINT arrives, then shuts down gracefully.
    /// Returns the process exit code.
    public func run() async -> Int32 {
        LargeAllocations.returnToTheSystemWhenFreed()
        installSignalHandlers()
        // Meet the upstream while the client starts: initialize can then pass on its instructions.
        Task { [self] in
            if let handshake = try? await upstream.handshake() { startChangeListener(handshake) }
        }
        reader.start { [self] event in self.receive(event) }
        let reason = await shutdownSignal.wait()
        await shutDown(reason: reason)
        return 0
    }

    func installSignalHandlers() {
        let latch = shutdownSignal
        ShutdownSignals.install { number in latch.trigger(number == SIGTERM ? "SIGTERM" : "SIGINT") }
    }

    func shutDown(reason: String) async {
        logger.debug("shutting down: \(reason)")
        state.withLock { $0.acceptingInput = false }
        let deadline = ContinuousClock.now + options.shutdownGrace
        while ContinuousClock.now < deadline {
            let busy = state.withLock { state in state.inFlight.values.contains { !$0.isSubscription } }
            if !busy { break }
            try? await Task.sleep(for: .milliseconds(5))
        }
        // Past the grace: cancel what is left; end open subscriptions with their completion result.
        let (leftover, subscriptions) = state.withLock { state -> ([Task<Void, Never>], [Subscription]) in
            let tasks = state.inFlight.values.compactMap { $0.isSubscription ? nil : $0.task }
            let subscriptions = Array(state.subscriptions.values)
            state.inFlight = [:]
            state.subscriptions = [:]
            return (tasks, subscriptions)
        }
        if !leftover.isEmpty { logger.info("cancelling \(leftover.count) call(s) still running after the grace period") }
        for task in leftover { task.cancel() }
        for subscription in subscriptions {
            let result: JSONValue = ["resultType": "complete", "_meta": [ModernMetaKey.subscriptionID: subscription.id]]
            writer.send(JSONRPC.result(id: subscription.id, result).serialized())
        }
        listener.withLock { $0?.cancel() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.upstream.close(timeout: .milliseconds(150)) }
            group.addTask { try? await Task.sleep(for: .milliseconds(250)) }
            await group.next()
            group.cancelAll()
        }
        writer.close()
        writer.flush(timeoutNanoseconds: 1_000_000_000)
    }

    let listener = Mutex<Task<Void, Never>?>(nil)

    func startChangeListener(_ handshake: UpstreamHandshake) {
        guard handshake.offersToolListChanges else { return }
        let start = state.withLock { state -> Bool in
            defer { state.listenerStarted = true }
            return !state.listenerStarted
        }
        guard start else { return }
        let task = Task { [self] in
            await upstream.listenForChanges { message in self.relayUnsolicited(message) }
        }
        listener.withLock { $0 = task }
    }

    // MARK: Input

    func receive(_ event: StdinEvent) {
        switch event {
        case .endOfInput:
            shutdownSignal.trigger("end of input")
        case .oversized(let count):
            guard state.withLock({ $0.acceptingInput }) else { return }
            logger.warning("skipped a \(count)-byte message over the \(options.maximumMessageBytes)-byte limit")
            sendWithoutID(
                code: JSONRPCErrorCode.invalidRequest,
                message:
                    "message of \(count) bytes exceeds the limit of \(options.maximumMessageBytes) bytes; send smaller messages or raise --max-message-bytes"
            )
        case .line(let bytes):
            guard state.withLock({ $0.acceptingInput }) else { return }
            receiveLine(bytes)
        }
    }

    func receiveLine(_ bytes: [UInt8]) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            sendWithoutID(code: JSONRPCErrorCode.parseError, message: "Parse error: \(error)")
            return
        }
        if case .array(let items) = value {
            receiveBatch(items)
            return
        }
        receiveMessage(value, batch: nil)
    }

    func receiveBatch(_ items: [JSONValue]) {
        let revision = state.withLock { $0.legacyRevision }
        guard let revision, revision.allowsBatches else {
            let named = revision.map { "revision \($0.rawValue)" } ?? "this session"
            sendWithoutID(
                code: JSONRPCErrorCode.invalidRequest,
                message: "JSON-RPC batches are not allowed in \(named) (only 2025-03-26 has them); send one message per line")
            return
        }
        guard !items.isEmpty else {
            sendWithoutID(code: JSONRPCErrorCode.invalidRequest, message: "an empty batch is not a valid request")
            return
        }
        // Count the members that will produce a reply, so the collector knows when the array is whole.
        let expected = items.reduce(0) { count, item in
            switch IncomingMessage(item) {
            case .notification, .response: return count
            default: return count + 1
            }
        }
        let collector = expected > 0 ? BatchCollector(expected: expected, writer: writer) : nil
        for item in items { receiveMessage(item, batch: collector) }
    }

    func receiveMessage(_ value: JSONValue, batch: BatchCollector?) {
        switch IncomingMessage(value) {
        case .invalid(let id, let reason):
            let message =
                id.isNull
                ? errorWithoutID(code: JSONRPCErrorCode.invalidRequest, message: "Invalid request: \(reason)")
                : JSONRPC.error(id: id, code: JSONRPCErrorCode.invalidRequest, message: "Invalid request: \(reason)")
            deliver(message.serialized(), batch: batch)
        case .invalidParams(let id, let reason):
            deliver(JSONRPC.error(id: id.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: \(reason)").serialized(), batch: batch)
        case .response:
            logger.debug("ignored a response from the client: the sidecar sends no requests")
        case .notification(let method, let params):
            receiveNotification(method: method, params: params)
        case .request(let id, let method, let params):
            receiveRequest(id: id, method: method, params: params, batch: batch)
        }
    }

    func deliver(_ frame: [UInt8], batch: BatchCollector?) {
        if let batch { batch.deliver(frame) } else { writer.send(frame) }
    }

    func send(_ message: JSONValue) { writer.send(message.serialized()) }

    func errorWithoutID(code: Int, message: String) -> JSONValue {
        let revision = state.withLock { $0.legacyRevision ?? $0.lastModernRevision }
        return JSONRPC.errorWithoutID(code: code, message: message, revision: revision)
    }

    func sendWithoutID(code: Int, message: String) { send(errorWithoutID(code: code, message: message)) }

    func receiveNotification(method: String, params: JSONObject?) {
        switch method {
        case "notifications/initialized":
            state.withLock { $0.initialized = true }
        case "notifications/cancelled":
            guard let requestID = params?["requestId"], let key = RequestKey(requestID) else { return }
            let entry = state.withLock { state -> InFlight? in
                state.subscriptions[key] = nil
                return state.inFlight.removeValue(forKey: key)
            }
            guard let entry else { return }
            logger.debug("client cancelled request \(key.text)")
            entry.task?.cancel()
            entry.batch?.deliver(nil)
        default:
            break  // progress, roots and unknown notifications need no action
        }
    }

    // MARK: Requests

    func receiveRequest(id: RequestKey, method: String, params: JSONObject?, batch: BatchCollector?) {
        let duplicate = state.withLock { state -> Bool in
            if state.inFlight[id] != nil { return true }
            state.inFlight[id] = InFlight(batch: batch)
            return false
        }
        if duplicate {
            deliver(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.invalidRequest,
                    message: "request id \(id.text) is already in use by a call in flight; use unique ids"
                )
                .serialized(), batch: batch)
            return
        }
        let context: RequestContext
        switch requestContext(params: params) {
        case .success(let found): context = found
        case .failure(let error):
            finish(id, .value(JSONRPC.error(id: id.id, code: error.code, message: error.message, data: error.data)))
            return
        }
        // 2026-07-28 has no batches: a modern request inside one (possible only in a 2025-03-26
        // session) is refused there, or an open subscription would hold the batch's array forever.
        if batch != nil, context.isModern {
            finish(
                id,
                .value(
                    JSONRPC.error(
                        id: id.id, code: JSONRPCErrorCode.invalidRequest,
                        message: "Invalid request: a \(context.revision.rawValue) request cannot be part of a JSON-RPC batch; send it on its own line"
                    )
                ))
            return
        }
        // Local, cheap methods are answered on this thread: no hop, lowest latency.
        switch method {
        case "ping" where context.revision.hasPing:
            finish(id, .value(JSONRPC.result(id: id.id, [:])))
            return
        case "server/discover":
            finish(id, .value(JSONRPC.result(id: id.id, discoverResult())))
            return
        case "logging/setLevel" where context.revision.hasLoggingSetLevel:
            finish(id, setLogLevel(id: id, params: params))
            return
        case "initialize":
            if let refusal = negotiate(id: id, params: params) {
                finish(id, refusal)
                return
            }
        default:
            break
        }
        let task = Task { [self] in
            let reply = await handle(id: id, method: method, params: params, context: context)
            finish(id, reply)
        }
        state.withLock { state in
            if state.inFlight[id] != nil { state.inFlight[id]?.task = task }
        }
    }

    /// Sends the reply of a request unless it was cancelled: every request is answered at most once.
    func finish(_ id: RequestKey, _ reply: Reply) {
        let frame: [UInt8]
        switch reply {
        case .value(let value): frame = value.serialized()
        case .frame(let bytes): frame = bytes
        case .deferred: return
        }
        // The request leaves the in-flight table and its reply is queued under one lock: shutdown,
        // which waits for the table to empty before it closes stdout, can never slip in between
        // and drop the reply.
        state.withLock { state in
            guard let entry = state.inFlight.removeValue(forKey: id) else { return }
            deliver(frame, batch: entry.batch)
        }
    }

    struct RequestContext: Sendable {
        let revision: ProtocolRevision
        var isModern: Bool { revision.isModern }
    }

    struct ProtocolError: Error {
        let code: Int
        let message: String
        var data: JSONValue? = nil
    }

    /// Which revision governs a request: the one in its modern `_meta`, else the one negotiated by
    /// `initialize`, else (a client that skipped the handshake) the latest legacy revision.
    func requestContext(params: JSONObject?) -> Result<RequestContext, ProtocolError> {
        let negotiated = state.withLock { $0.legacyRevision }
        if let requested = params?["_meta"]?[ModernMetaKey.protocolVersion]?.stringValue {
            if let revision = ProtocolRevision(rawValue: requested), revision.isModern {
                state.withLock { $0.lastModernRevision = revision }
                return .success(RequestContext(revision: revision))
            }
            if let negotiated { return .success(RequestContext(revision: negotiated)) }
            return .failure(
                ProtocolError(
                    code: JSONRPCErrorCode.unsupportedProtocolVersion, message: "Unsupported protocol version",
                    data: ["supported": .array(ProtocolRevision.supportedNewestFirst.map(JSONValue.string)), "requested": .string(requested)]))
        }
        return .success(RequestContext(revision: negotiated ?? .latestLegacy))
    }

    func handle(id: RequestKey, method: String, params: JSONObject?, context: RequestContext) async -> Reply {
        switch method {
        case "initialize":
            return await initializeResult(id: id)
        case "tools/list":
            return await listTools(id: id, params: params, context: context)
        case "tools/call":
            return await callTool(id: id, params: params, context: context)
        case "subscriptions/listen" where context.isModern:
            return listen(id: id, params: params)
        case "resources/list", "resources/read", "resources/templates/list", "resources/subscribe", "resources/unsubscribe",
            "prompts/list", "prompts/get", "completion/complete":
            return await forwardIfOffered(id: id, method: method, params: params, context: context)
        default:
            return .value(JSONRPC.error(id: id.id, code: JSONRPCErrorCode.methodNotFound, message: "Method not found: \(method)"))
        }
    }

    // MARK: Handshake and discovery

    /// Validates and records the negotiated revision at once, on the reader thread, so messages
    /// that follow `initialize` on the same stream see it. Returns an error reply, or nil.
    func negotiate(id: RequestKey, params: JSONObject?) -> Reply? {
        guard let params, let requested = params["protocolVersion"]?.stringValue else {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: initialize needs a string \"protocolVersion\""))
        }
        if let capabilities = params["capabilities"], capabilities.objectValue == nil {
            return .value(
                JSONRPC.error(id: id.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: \"capabilities\" must be an object"))
        }
        // Echo a legacy version we speak; otherwise offer our latest legacy one (the client decides).
        let revision = ProtocolRevision(rawValue: requested).flatMap { $0.isModern ? nil : $0 } ?? .latestLegacy
        let alreadyInitialized = state.withLock { state -> Bool in
            if state.legacyRevision != nil { return true }
            state.legacyRevision = revision
            return false
        }
        if alreadyInitialized {
            return .value(
                JSONRPC.error(id: id.id, code: JSONRPCErrorCode.invalidRequest, message: "Invalid request: the session is already initialized"))
        }
        return nil
    }

    func initializeResult(id: RequestKey) async -> Reply {
        let revision = state.withLock { $0.legacyRevision } ?? .latestLegacy
        var handshake: UpstreamHandshake?
        var text: String?
        if let catalog {
            switch await upstreamHandshakeOutcome(waitingAtMost: options.initializeWaitForUpstream) {
            case .ready(let ready):
                handshake = ready
                text = instructions(handshake: ready)
            case .failed(let failure):
                state.withLock { $0.awaitingRecovery = true }
                text = degradedInstructions(catalog: catalog.current, reason: failure)
            case .pending:
                state.withLock { $0.awaitingRecovery = true }
                text = degradedInstructions(catalog: catalog.current, reason: nil)
            }
        } else {
            handshake = await upstreamHandshake(waitingAtMost: options.initializeWaitForUpstream)
            text = instructions(handshake: handshake)
        }
        var result: JSONObject = [
            "protocolVersion": .string(revision.rawValue),
            "capabilities": .object(advertisedCapabilities(handshake: handshake, modern: false)),
            "serverInfo": SidecarIdentity.implementation,
        ]
        if let text { result["instructions"] = .string(text) }
        return .value(JSONRPC.result(id: id.id, .object(result)))
    }

    /// Paired mode's instructions when the gateway could not be used at `initialize`: the gateway's
    /// own (from the stored catalog), then why, and what the model and the user can expect.
    ///
    /// - Parameter reason: The failure, or nil when the gateway had not answered in time.
    func degradedInstructions(catalog: ToolCatalogSnapshot?, reason: UpstreamFailure?) -> String {
        let tools =
            catalog == nil
            ? "No tool catalog is stored yet, so no tools are listed; run `agent-sidecar setup` again once the gateway answers."
            : "The tools listed are the last catalog this gateway served."
        let notice: String
        if let reason, Self.isRefusal(reason) {
            // A refusal the gateway sent, or a local credential problem (the device key file).
            let what = reason.httpStatus == nil ? "cannot sign in to the gateway" : "the gateway refused this device when the session started"
            notice =
                "agent-sidecar: \(what): \(reason.message). \(tools) Every call fails with this reason, and nothing is written, until that is fixed; tell the user what to do."
        } else {
            let why = reason.map { "could not be reached when the session started: \($0.message)" } ?? "had not answered when the session started"
            notice =
                "agent-sidecar: the gateway \(why). \(tools) A call made while it is down returns an error and writes nothing; the next call tries again, and once the gateway answers, calls go through in this same session without a restart."
        }
        let parts = [catalog?.instructions, notice, options.extraInstructions].compactMap { $0 }.filter { !$0.isEmpty }
        return parts.joined(separator: "\n\n")
    }

    /// Whether a failure is the gateway refusing the device or session (revoked, blocked, unknown,
    /// a bad key), which no retry fixes, rather than the gateway being unreachable or failing.
    static func isRefusal(_ failure: UpstreamFailure) -> Bool {
        if let code = failure.gatewayCode, PairedSessionCredentials.refusalCodes.contains(code) { return true }
        return failure.code == .unauthorized || failure.code == .forbidden || failure.code == .configuration
    }

    func discoverResult() -> JSONValue {
        let handshake = upstream.currentHandshake
        var result: JSONObject = [
            "resultType": "complete",
            "supportedVersions": .array(ProtocolRevision.supportedNewestFirst.map(JSONValue.string)),
            "capabilities": .object(advertisedCapabilities(handshake: handshake, modern: true)),
            "_meta": [ModernMetaKey.serverInfo: SidecarIdentity.implementation],
            "ttlMs": 0,
            "cacheScope": "private",
        ]
        if let instructions = instructions(handshake: handshake) { result["instructions"] = .string(instructions) }
        return .object(result)
    }

    func advertisedCapabilities(handshake: UpstreamHandshake?, modern: Bool) -> JSONObject {
        var capabilities: JSONObject = ["tools": ["listChanged": true]]
        if !modern { capabilities["logging"] = [:] }
        // Pass on what else the upstream offers; the sidecar forwards those methods unchanged.
        if let upstreamCapabilities = handshake?.capabilities.objectValue {
            for key in ["resources", "prompts", "completions"] {
                if let value = upstreamCapabilities[key] { capabilities[key] = value }
            }
        }
        return capabilities
    }

    func instructions(handshake: UpstreamHandshake?) -> String? {
        let parts = [handshake?.instructions, options.extraInstructions].compactMap { $0 }.filter { !$0.isEmpty }
        return parts.isEmpty ? nil : parts.joined(separator: "\n\n")
    }

    enum HandshakeOutcome: Sendable {
        case ready(UpstreamHandshake)
        case failed(UpstreamFailure)
        /// Not done within the wait (it goes on in the background).
        case pending
    }

    /// The upstream handshake and, when it failed, why; waiting a bounded time.
    func upstreamHandshakeOutcome(waitingAtMost limit: Duration) async -> HandshakeOutcome {
        if let handshake = upstream.currentHandshake { return .ready(handshake) }
        return await withTaskGroup(of: HandshakeOutcome.self) { group in
            group.addTask { [upstream] in
                do throws(UpstreamFailure) { return .ready(try await upstream.handshake()) } catch { return .failed(error) }
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return .pending
            }
            let first = await group.next() ?? .pending
            group.cancelAll()
            return first
        }
    }

    /// The upstream handshake, waiting a bounded time; nil if the upstream is not (yet) reachable.
    func upstreamHandshake(waitingAtMost limit: Duration) async -> UpstreamHandshake? {
        if let handshake = upstream.currentHandshake { return handshake }
        return await withTaskGroup(of: UpstreamHandshake?.self) { group in
            group.addTask { [upstream] in try? await upstream.handshake() }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

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

    // MARK: Subscriptions (2026-07-28)

    func listen(id: RequestKey, params: JSONObject?) -> Reply {
        guard let filter = params?["notifications"]?.objectValue else {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: subscriptions/listen needs a \"notifications\" object")
            )
        }
        let wantsTools = filter["toolsListChanged"]?.boolValue == true
        state.withLock { state in
            state.subscriptions[id] = Subscription(id: id.id, toolsListChanged: wantsTools)
            state.inFlight[id]?.isSubscription = true
        }
        var acknowledged = JSONObject()
        if wantsTools { acknowledged["toolsListChanged"] = true }
        send(
            JSONRPC.notification(
                method: "notifications/subscriptions/acknowledged",
                params: ["_meta": [ModernMetaKey.subscriptionID: id.id], "notifications": .object(acknowledged)]))
        return .deferred
    }

    /// Notifications from outside any call that a client may want. Everything else the upstream
    /// sends on its change stream (its own subscription acknowledgements, for one) stays here.
    static let relayedChangeNotifications: Set<String> = [
        "notifications/tools/list_changed", "notifications/resources/list_changed", "notifications/prompts/list_changed",
        "notifications/resources/updated", "notifications/message",
    ]

    /// Relays a notification the upstream sent outside any call (tools/list_changed and friends),
    /// re-issued in the client's era: plain for a legacy client, tagged with the subscription id
    /// for each modern subscription that asked for it.
    func relayUnsolicited(_ message: UpstreamMessage) {
        guard let method = message.method, Self.relayedChangeNotifications.contains(method) else {
            logger.trace("kept an upstream notification to itself: \(message.method ?? "?")")
            return
        }
        let isToolChange = method == "notifications/tools/list_changed"
        if isToolChange { state.withLock { $0.readOnlyHints = [:] } }
        let (legacyClient, subscribers) = state.withLock { state in
            (state.legacyRevision != nil, state.subscriptions.values.filter { $0.toolsListChanged })
        }
        if legacyClient {
            if method.hasSuffix("/list_changed") {
                send(JSONRPC.notification(method: method))
            } else if var params = message.value("params")?.objectValue {
                params["_meta"] = nil
                send(JSONRPC.notification(method: method, params: .object(params)))
            }
        }
        if isToolChange {
            for subscription in subscribers {
                send(JSONRPC.notification(method: method, params: ["_meta": [ModernMetaKey.subscriptionID: subscription.id]]))
            }
        }
    }

    // MARK: Tools

    func listTools(id: RequestKey, params: JSONObject?, context: RequestContext) async -> Reply {
        if let catalog { return await listTools(id: id, params: params, context: context, catalog: catalog) }
        let response: UpstreamMessage
        do {
            response = try await upstream.request(method: "tools/list", params: forwardedParams(params))
        } catch {
            return .value(JSONRPC.error(id: id.id, code: JSONRPCErrorCode.internalError, message: "tools/list failed: \(error.message)"))
        }
        guard let result = response.value("result")?.objectValue else {
            return relayResponse(response, to: id, context: context)
        }
        return toolListReply(result, id: id, context: context)
    }

    /// Paired mode's `tools/list`: the gateway's answer when it comes within
    /// `toolsListWaitForUpstream`, else the stored catalog (empty if there is none), so the client
    /// never loses the server's tools. A late answer still updates the catalog, and tells the
    /// client when it changed.
    func listTools(id: RequestKey, params: JSONObject?, context: RequestContext, catalog: ToolCatalogMemory) async -> Reply {
        let forwarded = forwardedParams(params)
        let paged = params?["cursor"] != nil
        let fetch = Task { [upstream] () -> Result<UpstreamMessage, UpstreamFailure> in
            do throws(UpstreamFailure) {
                return .success(try await upstream.request(method: "tools/list", params: forwarded))
            } catch {
                return .failure(error)
            }
        }
        let outcome = await Self.value(of: fetch, waitingAtMost: options.toolsListWaitForUpstream)
        switch outcome {
        case .success(let response)?:
            if let result = response.value("result")?.objectValue {
                if !paged { catalogFetched(result, listed: true) }
                return toolListReply(result, id: id, context: context)
            }
            let reason = response.value("error")?["message"]?.stringValue ?? "an answer with neither result nor error"
            logger.notice("the gateway refused tools/list (\(reason)); listing the stored tool catalog")
        case .failure(let failure)?:
            logger.notice("tools/list could not get the gateway's catalog (\(failure.message)); listing the stored tool catalog")
        case nil:
            logger.notice("the gateway did not list its tools within \(options.toolsListWaitForUpstream); listing the stored tool catalog")
            Task { [self] in
                if case .success(let response) = await fetch.value, !paged, let result = response.value("result")?.objectValue {
                    catalogFetched(result, listed: false)
                }
            }
        }
        let tools = paged ? [] : (catalog.current?.tools ?? [])
        state.withLock { state in
            if !paged { state.listedTools = tools }
            state.awaitingRecovery = true
        }
        return toolListReply(["tools": .array(tools)], id: id, context: context)
    }

    /// Paired mode: the gateway served a catalog (a complete, unpaged `tools/list` result). Stores it
    /// if it changed; unless the client is being answered with it right now (`listed`), tells the
    /// client when it differs from what the client was last given.
    func catalogFetched(_ result: JSONObject, listed: Bool) {
        guard result["nextCursor"] == nil || result["nextCursor"]?.isNull == true, let tools = result["tools"]?.arrayValue else { return }
        catalog?.remember(tools: tools, instructions: upstream.currentHandshake?.instructions)
        let changed = state.withLock { state -> Bool in
            defer {
                state.listedTools = tools
                state.awaitingRecovery = false
            }
            return !listed && state.listedTools != nil && state.listedTools != tools
        }
        if changed {
            logger.info("the gateway's tool catalog differs from the one listed to the client; sending notifications/tools/list_changed")
            sendToolsListChanged()
        }
    }

    /// Paired mode: a call went through while the client held the stored catalog (or the session
    /// started without the gateway). Reads the gateway's catalog once, in the background.
    func checkCatalogAfterRecovery() {
        guard catalog != nil else { return }
        let start = state.withLock { state -> Bool in
            guard state.awaitingRecovery else { return false }
            state.awaitingRecovery = false
            return true
        }
        guard start else { return }
        logger.info("the gateway answers again; checking its tool catalog")
        Task { [self] in
            guard let response = try? await upstream.request(method: "tools/list", params: nil), let result = response.value("result")?.objectValue
            else {
                state.withLock { $0.awaitingRecovery = true }
                return
            }
            catalogFetched(result, listed: false)
        }
    }

    /// `notifications/tools/list_changed`, in the client's era.
    func sendToolsListChanged() {
        let method = "notifications/tools/list_changed"
        let (legacyClient, subscribers) = state.withLock { state in
            state.readOnlyHints = [:]
            return (state.legacyRevision != nil, state.subscriptions.values.filter { $0.toolsListChanged })
        }
        if legacyClient { send(JSONRPC.notification(method: method)) }
        for subscription in subscribers {
            send(JSONRPC.notification(method: method, params: ["_meta": [ModernMetaKey.subscriptionID: subscription.id]]))
        }
    }

    /// A task's value, or nil when it takes longer than `limit` (the task goes on).
    static func value<T: Sendable>(of task: Task<T, Never>, waitingAtMost limit: Duration) async -> T? {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { await task.value }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// The client's `tools/list` result: narrowing applied, read-only hints noted, and the fields a
    /// modern revision needs.
    func toolListReply(_ upstreamResult: JSONObject, id: RequestKey, context: RequestContext) -> Reply {
        var result = upstreamResult
        let tools = result["tools"]?.arrayValue ?? []
        var hints: [String: Bool?] = [:]
        let visible = tools.filter { tool in
            guard let name = tool["name"]?.stringValue else { return false }
            let readOnly = tool["annotations"]?["readOnlyHint"]?.boolValue
            hints[name] = readOnly
            return !options.hides(toolNamed: name, readOnlyHint: readOnly)
        }
        state.withLock { state in state.readOnlyHints.merge(hints) { _, new in new } }
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
        if let refusal = await narrowingRefusal(toolName: name) {
            return .value(JSONRPC.error(id: id.id, code: JSONRPCErrorCode.invalidParams, message: refusal))
        }
        let idempotencyKey = ULID().text
        let wantsProgress = params["_meta"]?["progressToken"] != nil
        let response: UpstreamMessage
        do {
            response = try await upstream.request(
                method: "tools/call", params: forwardedParams(params), toolName: name, idempotencyKey: idempotencyKey
            ) { [self] notification in
                relayDuringCall(notification, wantsProgress: wantsProgress)
            }
        } catch {
            // Cancelled by the client or by shutdown: the request has left the in-flight table and
            // gets no answer. A failure that merely says "cancelled" (a credential source closing)
            // is answered like any other, or the request would wait forever.
            if Task.isCancelled { return .deferred }
            logger.notice("tools/call \(name) failed: \(error.code.rawValue)")
            var result = JSONRPC.toolError(Self.toolErrorText(error))
            if context.isModern, case .object(var object) = result {
                object["resultType"] = "complete"
                result = .object(object)
            }
            return .value(JSONRPC.result(id: id.id, result))
        }
        checkCatalogAfterRecovery()
        return relayResponse(response, to: id, context: context)
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

    /// Why narrowing forbids calling this tool, or nil when it may be called.
    func narrowingRefusal(toolName name: String) async -> String? {
        if options.excludedTools.contains(name) {
            return "Unknown tool: \(name) (hidden by --exclude-tool on this sidecar)"
        }
        guard options.readOnly else { return nil }
        var hint = state.withLock { $0.readOnlyHints[name] }
        if hint == nil {
            await refreshToolHints()
            hint = state.withLock { $0.readOnlyHints[name] }
        }
        switch hint {
        case .some(.some(true)): return nil
        case .none: return "Unknown tool: \(name)"
        default: return "tool \(name) is not read-only, and this sidecar runs with --read-only; ask for a sidecar without it to write"
        }
    }

    /// Reads every page of the upstream's tool list to learn which tools are read-only.
    func refreshToolHints() async {
        var cursor: String?
        var hints: [String: Bool?] = [:]
        for _ in 0..<50 {
            var params = JSONObject()
            if let cursor { params["cursor"] = .string(cursor) }
            guard let response = try? await upstream.request(method: "tools/list", params: params),
                let result = response.value("result")
            else { return }
            for tool in result["tools"]?.arrayValue ?? [] {
                if let name = tool["name"]?.stringValue { hints[name] = tool["annotations"]?["readOnlyHint"]?.boolValue }
            }
            cursor = result["nextCursor"]?.stringValue
            if cursor == nil { break }
        }
        state.withLock { state in state.readOnlyHints.merge(hints) { _, new in new } }
    }

    func relayDuringCall(_ notification: UpstreamMessage, wantsProgress: Bool) {
        switch notification.method {
        case "notifications/progress":
            if wantsProgress { writer.send(compacted(notification.bytes[...])) }
        case "notifications/tools/list_changed":
            relayUnsolicited(notification)
        default:
            // notifications/message and the like belong to this call's client.
            writer.send(compacted(notification.bytes[...]))
        }
    }

    func forwardIfOffered(id: RequestKey, method: String, params: JSONObject?, context: RequestContext) async -> Reply {
        let capability = method.hasPrefix("resources/") ? "resources" : method.hasPrefix("prompts/") ? "prompts" : "completions"
        let handshake = await upstreamHandshake(waitingAtMost: .seconds(10))
        guard handshake?.capabilities[capability] != nil else {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.methodNotFound, message: "Method not found: \(method) (the upstream offers no \(capability))"))
        }
        do {
            let response = try await upstream.request(method: method, params: forwardedParams(params))
            return relayResponse(response, to: id, context: context)
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

    /// Builds the client's response from the upstream's, touching only what must change: the id,
    /// and the fields a revision requires that the other era's upstream does not send.
    func relayResponse(_ response: UpstreamMessage, to id: RequestKey, context: RequestContext) -> Reply {
        if let error = response.raw("error") {
            return .frame(compose(id: id, member: "error", value: error))
        }
        guard let result = response.raw("result") else {
            return .value(
                JSONRPC.error(id: id.id, code: JSONRPCErrorCode.internalError, message: "the upstream sent a response with neither result nor error"))
        }
        guard result.first == UInt8(ascii: "{") else {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.internalError,
                    message: "the upstream's result is not an object; report it to the upstream's operator"))
        }
        let resultType = topLevelMember("resultType", in: result)
        if context.isModern, resultType == nil {
            var spliced: [UInt8] = Array(#"{"resultType":"complete""#.utf8)
            let rest = result.dropFirst()
            if rest.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) != UInt8(ascii: "}") {
                spliced.append(UInt8(ascii: ","))
            }
            spliced.append(contentsOf: rest)
            return .frame(compose(id: id, member: "result", value: spliced[...]))
        }
        if !context.isModern, let resultType, (try? JSONParser.parse(resultType))?.stringValue == "input_required" {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.internalError,
                    message:
                        "the upstream needs more input to finish this call, which this client's protocol revision cannot carry; use a 2026-07-28 client"
                ))
        }
        return .frame(compose(id: id, member: "result", value: result))
    }

    /// The raw value of a top-level member of a JSON object, found in place: a multi-megabyte
    /// result is neither copied nor parsed into a tree to read one small member.
    func topLevelMember(_ key: String, in object: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        object.withUnsafeBufferPointer { buffer -> ArraySlice<UInt8>? in
            guard let layout = try? JSONObjectLayout.scan(buffer), let member = layout.member(key) else { return nil }
            let range = member.valueRange
            return object[(object.startIndex + range.lowerBound)..<(object.startIndex + range.upperBound)]
        }
    }

    func compose(id: RequestKey, member: String, value: ArraySlice<UInt8>) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(value.count + id.text.utf8.count + 40)
        frame.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
        frame.append(contentsOf: id.text.utf8)
        frame.append(contentsOf: ",\"\(member)\":".utf8)
        appendCompacted(value, to: &frame)
        frame.append(UInt8(ascii: "}"))
        return frame
    }

    func compacted(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        appendCompacted(bytes, to: &output)
        return output
    }

    /// Appends JSON without raw CR/LF bytes. In valid JSON (the upstream's messages are validated
    /// on arrival) those bytes can only be whitespace between tokens, so dropping them is safe.
    func appendCompacted(_ bytes: ArraySlice<UInt8>, to output: inout [UInt8]) {
        guard bytes.contains(where: { $0 == 0x0A || $0 == 0x0D }) else {
            output.append(contentsOf: bytes)
            return
        }
        for byte in bytes where byte != 0x0A && byte != 0x0D { output.append(byte) }
    }
}

/// Fires once; later triggers are ignored. `wait` returns the first reason.
final class ShutdownLatch: Sendable {
    let state = Mutex<(reason: String?, waiter: CheckedContinuation<String, Never>?)>((nil, nil))

    func trigger(_ reason: String) {
        let waiter = state.withLock { state -> CheckedContinuation<String, Never>? in
            guard state.reason == nil else { return nil }
            state.reason = reason
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: reason)
    }

    func wait() async -> String {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> String? in
                if let reason = state.reason { return reason }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
