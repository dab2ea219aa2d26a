import AgentWire
import Logging
import Synchronization

/// Paired mode never loses its tools: when the gateway cannot be used, `tools/list` is answered
/// from the stored catalog (``ToolCatalogMemory``) and `initialize`'s instructions say why.
///
/// The first call that reaches the gateway again reads its catalog once, stores it if it changed,
/// and sends `notifications/tools/list_changed` when it differs from what the client was given.
final class StoredCatalogFallback: Sendable {
    struct State {
        /// The tools last listed to the client (from the gateway or the stored catalog).
        var listedTools: [JSONValue]?
        /// The client holds the stored catalog (or a session started without the gateway), so the
        /// first call that reaches the gateway again checks the catalog.
        var awaitingRecovery = false
    }

    let catalog: ToolCatalogMemory
    let upstream: any MCPUpstream
    let options: ServeOptions
    let negotiation: ProtocolNegotiation
    let subscriptions: Subscriptions
    let logger: Logger
    let state = Mutex(State())

    init(
        catalog: ToolCatalogMemory, upstream: any MCPUpstream, options: ServeOptions, negotiation: ProtocolNegotiation,
        subscriptions: Subscriptions, logger: Logger
    ) {
        self.catalog = catalog
        self.upstream = upstream
        self.options = options
        self.negotiation = negotiation
        self.subscriptions = subscriptions
        self.logger = logger
    }

    // MARK: initialize

    /// The handshake for `initialize`, and its instructions: the gateway's, or, when the gateway
    /// failed or had not answered in time, the stored catalog's and the reason.
    func initializeHandshake() async -> (handshake: UpstreamHandshake?, instructions: String?) {
        switch await upstream.handshakeOutcome(waitingAtMost: options.initializeWaitForUpstream) {
        case .ready(let ready):
            return (ready, negotiation.instructions(handshake: ready))
        case .failed(let failure):
            state.withLock { $0.awaitingRecovery = true }
            return (nil, degradedInstructions(catalog: catalog.current, reason: failure))
        case .pending:
            state.withLock { $0.awaitingRecovery = true }
            return (nil, degradedInstructions(catalog: catalog.current, reason: nil))
        }
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
        if failure.gatewayError?.refusesDevice == true { return true }
        return failure.code == .unauthorized || failure.code == .forbidden || failure.code == .configuration
    }

    // MARK: tools/list

    /// The `tools/list` result to give the client (before narrowing): the gateway's answer when it
    /// comes within `toolsListWaitForUpstream`, else the stored catalog (empty if there is none).
    /// A late answer still updates the catalog, and tells the client when it changed.
    ///
    /// - Parameter params: The client's params, as forwarded upstream.
    func listTools(params: JSONObject?) async -> JSONObject {
        let paged = params?["cursor"] != nil
        let fetch = Task { [upstream] () -> Result<UpstreamMessage, UpstreamFailure> in
            do throws(UpstreamFailure) {
                return .success(try await upstream.request(method: "tools/list", params: params))
            } catch {
                return .failure(error)
            }
        }
        let outcome = await value(within: options.toolsListWaitForUpstream) { await fetch.value }
        switch outcome {
        case .success(let response)?:
            if let result = response.value("result")?.objectValue {
                if !paged { catalogFetched(result, listed: true) }
                return result
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
        return ["tools": .array(tools)]
    }

    /// The gateway served a catalog (a complete, unpaged `tools/list` result). Stores it if it
    /// changed; unless the client is being answered with it right now (`listed`), tells the client
    /// when it differs from what the client was last given.
    func catalogFetched(_ result: JSONObject, listed: Bool) {
        guard result["nextCursor"] == nil || result["nextCursor"]?.isNull == true, let tools = result["tools"]?.arrayValue else { return }
        catalog.remember(tools: tools, instructions: upstream.currentHandshake?.instructions)
        let changed = state.withLock { state -> Bool in
            defer {
                state.listedTools = tools
                state.awaitingRecovery = false
            }
            return !listed && state.listedTools != nil && state.listedTools != tools
        }
        if changed {
            logger.info("the gateway's tool catalog differs from the one listed to the client; sending notifications/tools/list_changed")
            subscriptions.sendToolsListChanged()
        }
    }

    /// A call went through while the client held the stored catalog (or the session started
    /// without the gateway). Reads the gateway's catalog once, in the background.
    func checkAfterRecovery() {
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
}
