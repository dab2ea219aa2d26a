import AgentWire
import Logging
import Synchronization

/// Change notifications toward the client, in the client's era: plain for a legacy client (the
/// session is the subscription), and for a modern one (2026-07-28, stateless) through its open
/// `subscriptions/listen` requests, each notification tagged with the subscription's id.
///
/// A `subscriptions/listen` request stays open (in flight, unanswered) until the client cancels it
/// or the sidecar shuts down, which answers it with its completion result.
final class Subscriptions: Sendable {
    struct Subscription {
        let id: JSONValue
        let toolsListChanged: Bool
    }

    /// Notifications from outside any call that a client may want. Everything else the upstream
    /// sends on its change stream (its own subscription acknowledgements, for one) stays here.
    static let relayedChangeNotifications: Set<String> = [
        "notifications/tools/list_changed", "notifications/resources/list_changed", "notifications/prompts/list_changed",
        "notifications/resources/updated", "notifications/message",
    ]

    let open = Mutex<[RequestKey: Subscription]>([:])
    let writer: StdoutWriter
    let negotiation: ProtocolNegotiation
    /// Forgets its read-only hints when the tool list changes.
    let narrowing: ToolNarrowing
    let logger: Logger

    init(writer: StdoutWriter, negotiation: ProtocolNegotiation, narrowing: ToolNarrowing, logger: Logger) {
        self.writer = writer
        self.negotiation = negotiation
        self.narrowing = narrowing
        self.logger = logger
    }

    /// `subscriptions/listen`: records the subscription and acknowledges it; the request itself
    /// stays unanswered (`.deferred`).
    ///
    /// - Parameter opened: Called once the subscription is recorded, before the acknowledgement is
    ///   sent (the router marks the request as a subscription, which shutdown does not wait for).
    func listen(id: RequestKey, params: JSONObject?, opened: () -> Void) -> Reply {
        guard let filter = params?["notifications"]?.objectValue else {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: subscriptions/listen needs a \"notifications\" object")
            )
        }
        let wantsTools = filter["toolsListChanged"]?.boolValue == true
        open.withLock { $0[id] = Subscription(id: id.id, toolsListChanged: wantsTools) }
        opened()
        var acknowledged = JSONObject()
        if wantsTools { acknowledged["toolsListChanged"] = true }
        send(
            JSONRPC.notification(
                method: "notifications/subscriptions/acknowledged",
                params: ["_meta": [ModernMetaKey.subscriptionID: id.id], "notifications": .object(acknowledged)]))
        return .deferred
    }

    /// The client cancelled a request; if it was a subscription, it ends without an answer.
    func cancel(_ key: RequestKey) {
        open.withLock { _ = $0.removeValue(forKey: key) }
    }

    /// Shutdown: every open subscription gets its completion result.
    func completeAll() {
        let all = open.withLock { open -> [Subscription] in
            defer { open = [:] }
            return Array(open.values)
        }
        for subscription in all {
            let result: JSONValue = ["resultType": "complete", "_meta": [ModernMetaKey.subscriptionID: subscription.id]]
            send(JSONRPC.result(id: subscription.id, result))
        }
    }

    /// Relays a notification the upstream sent outside any call (tools/list_changed and friends),
    /// re-issued in the client's era: plain for a legacy client, tagged with the subscription id
    /// for each modern subscription that asked for it.
    func relayUnsolicited(_ message: UpstreamMessage) {
        guard let method = message.method, Self.relayedChangeNotifications.contains(method) else {
            logger.trace("kept an upstream notification to itself: \(message.method ?? "?")")
            return
        }
        let isToolChange = method == "notifications/tools/list_changed"
        if isToolChange { narrowing.forgetHints() }
        let legacyClient = negotiation.legacyRevision != nil
        let subscribers = toolSubscribers()
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

    /// `notifications/tools/list_changed` of the sidecar's own (paired mode's catalog changed),
    /// in the client's era.
    func sendToolsListChanged() {
        let method = "notifications/tools/list_changed"
        narrowing.forgetHints()
        if negotiation.legacyRevision != nil { send(JSONRPC.notification(method: method)) }
        for subscription in toolSubscribers() {
            send(JSONRPC.notification(method: method, params: ["_meta": [ModernMetaKey.subscriptionID: subscription.id]]))
        }
    }

    func toolSubscribers() -> [Subscription] {
        open.withLock { open in open.values.filter { $0.toolsListChanged } }
    }

    func send(_ message: JSONValue) { writer.send(message.serialized()) }
}
