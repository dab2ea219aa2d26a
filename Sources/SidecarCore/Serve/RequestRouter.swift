import AgentWire
import Logging
import Synchronization

/// From a line of stdin to the reply of each request in it: parsing, batches, notifications, and
/// dispatch by method, with the in-flight table that makes every request answered at most once.
///
/// Runs on the reader thread, in arrival order (so a `notifications/cancelled` is always seen
/// after the request it names). Cheap methods (`ping`, `server/discover`, `logging/setLevel`, the
/// bookkeeping of `initialize`) are answered right there; every other request becomes one task, so
/// a slow call never delays another. The method handlers are in `RequestRouter+Methods.swift`.
final class RequestRouter: Sendable {
    struct InFlight {
        /// Which request this is: a client may reuse an id once its request was cancelled, and a
        /// late reply of the cancelled one must not answer the new one.
        let serial: UInt64
        var task: Task<Void, Never>?
        var batch: BatchCollector?
        var isSubscription = false
    }

    let options: ServeOptions
    let upstream: any MCPUpstream
    let logger: Logger
    let writer: StdoutWriter
    let negotiation: ProtocolNegotiation
    let narrowing: ToolNarrowing
    let subscriptions: Subscriptions
    /// Paired mode only.
    let catalogFallback: StoredCatalogFallback?
    let inFlight = Mutex<[RequestKey: InFlight]>([:])
    private let nextSerial = Atomic<UInt64>(0)

    init(
        options: ServeOptions, upstream: any MCPUpstream, logger: Logger, writer: StdoutWriter, negotiation: ProtocolNegotiation,
        narrowing: ToolNarrowing, subscriptions: Subscriptions, catalogFallback: StoredCatalogFallback?
    ) {
        self.options = options
        self.upstream = upstream
        self.logger = logger
        self.writer = writer
        self.negotiation = negotiation
        self.narrowing = narrowing
        self.subscriptions = subscriptions
        self.catalogFallback = catalogFallback
    }

    // MARK: Messages

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
        if let refusal = negotiation.batchRefusal() {
            sendWithoutID(code: JSONRPCErrorCode.invalidRequest, message: refusal)
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
                ? negotiation.errorWithoutID(code: JSONRPCErrorCode.invalidRequest, message: "Invalid request: \(reason)")
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

    func receiveNotification(method: String, params: JSONObject?) {
        switch method {
        case "notifications/initialized":
            negotiation.recordInitialized()
        case "notifications/cancelled":
            guard let requestID = params?["requestId"], let key = RequestKey(requestID) else { return }
            subscriptions.cancel(key)
            guard let entry = inFlight.withLock({ $0.removeValue(forKey: key) }) else { return }
            logger.debug("client cancelled request \(key.text)")
            entry.task?.cancel()
            entry.batch?.deliver(nil)
        default:
            break  // progress, roots and unknown notifications need no action
        }
    }

    func deliver(_ frame: [UInt8], batch: BatchCollector?) {
        if let batch { batch.deliver(frame) } else { writer.send(frame) }
    }

    /// An error that cannot name its request (a parse error, an oversized line, a refused batch).
    func sendWithoutID(code: Int, message: String) {
        writer.send(negotiation.errorWithoutID(code: code, message: message).serialized())
    }

    // MARK: Requests

    func receiveRequest(id: RequestKey, method: String, params: JSONObject?, batch: BatchCollector?) {
        let serial = nextSerial.add(1, ordering: .relaxed).newValue
        let duplicate = inFlight.withLock { table -> Bool in
            if table[id] != nil { return true }
            table[id] = InFlight(serial: serial, batch: batch)
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
        switch negotiation.context(params: params) {
        case .success(let found): context = found
        case .failure(let error):
            finish(id, serial, .value(JSONRPC.error(id: id.id, code: error.code, message: error.message, data: error.data)))
            return
        }
        // 2026-07-28 has no batches: a modern request inside one (possible only in a 2025-03-26
        // session) is refused there, or an open subscription would hold the batch's array forever.
        if batch != nil, context.isModern {
            finish(
                id, serial,
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
            finish(id, serial, .value(JSONRPC.result(id: id.id, [:])))
            return
        case "server/discover":
            finish(id, serial, .value(JSONRPC.result(id: id.id, negotiation.discoverResult(handshake: upstream.currentHandshake))))
            return
        case "logging/setLevel" where context.revision.hasLoggingSetLevel:
            finish(id, serial, setLogLevel(id: id, params: params))
            return
        case "initialize":
            if let refusal = negotiation.negotiate(id: id, params: params) {
                finish(id, serial, refusal)
                return
            }
        default:
            break
        }
        let task = Task { [self] in
            let reply = await handle(id: id, serial: serial, method: method, params: params, context: context)
            finish(id, serial, reply)
        }
        inFlight.withLock { table in
            if table[id]?.serial == serial { table[id]?.task = task }
        }
    }

    /// Sends the reply of a request unless it was cancelled: every request is answered at most once.
    func finish(_ id: RequestKey, _ serial: UInt64, _ reply: Reply) {
        guard let frame = reply.frame else { return }
        // The request leaves the in-flight table and its reply is queued under one lock: shutdown,
        // which waits for the table to empty before it closes stdout, can never slip in between
        // and drop the reply. A reply of a cancelled request whose id came back in use by a newer
        // one finds the newer serial and is dropped.
        inFlight.withLock { table in
            guard let entry = table[id], entry.serial == serial else { return }
            table[id] = nil
            deliver(frame, batch: entry.batch)
        }
    }

    func handle(id: RequestKey, serial: UInt64, method: String, params: JSONObject?, context: RequestContext) async -> Reply {
        switch method {
        case "initialize":
            return await initializeReply(id: id)
        case "tools/list":
            return await listTools(id: id, params: params, context: context)
        case "tools/call":
            return await callTool(id: id, params: params, context: context)
        case "subscriptions/listen" where context.isModern:
            return subscriptions.listen(id: id, params: params) {
                inFlight.withLock { table in
                    if table[id]?.serial == serial { table[id]?.isSubscription = true }
                }
            }
        case "resources/list", "resources/read", "resources/templates/list", "resources/subscribe", "resources/unsubscribe",
            "prompts/list", "prompts/get", "completion/complete":
            return await forwardIfOffered(id: id, method: method, params: params, context: context)
        default:
            return .value(JSONRPC.error(id: id.id, code: JSONRPCErrorCode.methodNotFound, message: "Method not found: \(method)"))
        }
    }

    // MARK: Shutdown

    /// Requests still waiting for their answer, open subscriptions excluded.
    var callsInFlight: Int {
        inFlight.withLock { table in table.values.count { !$0.isSubscription } }
    }

    /// Empties the table: what is left gets no answer. Returns the tasks still running (open
    /// subscriptions have none), for the caller to cancel.
    func drain() -> [Task<Void, Never>] {
        inFlight.withLock { table in
            defer { table = [:] }
            return table.values.compactMap { $0.isSubscription ? nil : $0.task }
        }
    }
}
