import AgentWire
import Synchronization

/// The revision that governs one request.
struct RequestContext: Sendable {
    let revision: ProtocolRevision
    var isModern: Bool { revision.isModern }
}

/// A request refused before it is handled (an unsupported version).
struct ProtocolError: Error {
    let code: Int
    let message: String
    var data: JSONValue? = nil
}

/// Which MCP revision the client speaks, and what the sidecar says about itself in each era.
///
/// A legacy client negotiates once with `initialize` (2024-11-05 … 2025-11-25); a modern one names
/// its revision in every request's `_meta` (2026-07-28, stateless). Both can meet one sidecar: a
/// request's own `_meta` wins, then the revision `initialize` agreed, then the latest legacy one
/// (a client that skipped the handshake). Knows nothing of the upstream but the handshake it is given.
final class ProtocolNegotiation: Sendable {
    struct State {
        /// What `initialize` agreed; set once.
        var legacyRevision: ProtocolRevision?
        /// The client sent `notifications/initialized`.
        var initialized = false
        /// The revision of the last modern request, for errors that cannot name a request.
        var lastModernRevision: ProtocolRevision?
    }

    let state = Mutex(State())
    /// `--instructions`: added after the upstream's own.
    let extraInstructions: String?

    init(extraInstructions: String?) {
        self.extraInstructions = extraInstructions
    }

    /// The revision `initialize` agreed, if the session has one.
    var legacyRevision: ProtocolRevision? { state.withLock { $0.legacyRevision } }

    func recordInitialized() { state.withLock { $0.initialized = true } }

    // MARK: Negotiating

    /// Validates `initialize` and records the negotiated revision at once, on the reader thread,
    /// so messages that follow on the same stream see it. Returns an error reply, or nil.
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

    /// Which revision governs a request: the one in its modern `_meta`, else the one negotiated by
    /// `initialize`, else (a client that skipped the handshake) the latest legacy revision. A
    /// version the sidecar does not speak, without a negotiated one to fall back on, is refused
    /// with `-32022` listing what it speaks.
    func context(params: JSONObject?) -> Result<RequestContext, ProtocolError> {
        let negotiated = legacyRevision
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

    /// Why a JSON-RPC batch is refused in this session, or nil when batches are allowed (only a
    /// session that negotiated 2025-03-26 has them).
    func batchRefusal() -> String? {
        let revision = legacyRevision
        if let revision, revision.allowsBatches { return nil }
        let named = revision.map { "revision \($0.rawValue)" } ?? "this session"
        return "JSON-RPC batches are not allowed in \(named) (only 2025-03-26 has them); send one message per line"
    }

    /// An error for a message whose id could not be read, in the form the session's revision wants
    /// (`"id": null`, or no id from 2025-11-25 on).
    func errorWithoutID(code: Int, message: String) -> JSONValue {
        let revision = state.withLock { $0.legacyRevision ?? $0.lastModernRevision }
        return JSONRPC.errorWithoutID(code: code, message: message, revision: revision)
    }

    // MARK: What the sidecar says about itself

    /// The `initialize` result: the negotiated revision, the capabilities, and the instructions.
    func initializeResult(id: RequestKey, handshake: UpstreamHandshake?, instructions: String?) -> Reply {
        let revision = legacyRevision ?? .latestLegacy
        var result: JSONObject = [
            "protocolVersion": .string(revision.rawValue),
            "capabilities": .object(Self.advertisedCapabilities(handshake: handshake, modern: false)),
            "serverInfo": SidecarIdentity.implementation,
        ]
        if let instructions { result["instructions"] = .string(instructions) }
        return .value(JSONRPC.result(id: id.id, .object(result)))
    }

    /// The `server/discover` result: every revision the sidecar speaks, newest first.
    func discoverResult(handshake: UpstreamHandshake?) -> JSONValue {
        var result: JSONObject = [
            "resultType": "complete",
            "supportedVersions": .array(ProtocolRevision.supportedNewestFirst.map(JSONValue.string)),
            "capabilities": .object(Self.advertisedCapabilities(handshake: handshake, modern: true)),
            "_meta": [ModernMetaKey.serverInfo: SidecarIdentity.implementation],
            "ttlMs": 0,
            "cacheScope": "private",
        ]
        if let instructions = instructions(handshake: handshake) { result["instructions"] = .string(instructions) }
        return .object(result)
    }

    /// Tools (with change notifications) always; logging for a legacy client; and whatever
    /// resources, prompts and completions the upstream offers, since those methods are forwarded.
    static func advertisedCapabilities(handshake: UpstreamHandshake?, modern: Bool) -> JSONObject {
        var capabilities: JSONObject = ["tools": ["listChanged": true]]
        if !modern { capabilities["logging"] = [:] }
        if let upstreamCapabilities = handshake?.capabilities.objectValue {
            for key in ["resources", "prompts", "completions"] {
                if let value = upstreamCapabilities[key] { capabilities[key] = value }
            }
        }
        return capabilities
    }

    /// The upstream's instructions, then the sidecar's own (`--instructions`).
    func instructions(handshake: UpstreamHandshake?) -> String? {
        let parts = [handshake?.instructions, extraInstructions].compactMap { $0 }.filter { !$0.isEmpty }
        return parts.isEmpty ? nil : parts.joined(separator: "\n\n")
    }
}

/// How the upstream handshake stood after a bounded wait.
enum HandshakeOutcome: Sendable {
    case ready(UpstreamHandshake)
    case failed(UpstreamFailure)
    /// Not done within the wait (it goes on in the background).
    case pending
}

extension MCPUpstream {
    /// The handshake and, when it failed, why; waiting at most `limit`.
    func handshakeOutcome(waitingAtMost limit: Duration) async -> HandshakeOutcome {
        if let handshake = currentHandshake { return .ready(handshake) }
        let outcome: HandshakeOutcome? = await value(within: limit) {
            do throws(UpstreamFailure) { return .ready(try await self.handshake()) } catch { return .failed(error) }
        }
        return outcome ?? .pending
    }

    /// The handshake, waiting at most `limit`; nil if the upstream is not (yet) reachable.
    func handshake(waitingAtMost limit: Duration) async -> UpstreamHandshake? {
        if let handshake = currentHandshake { return handshake }
        return await value(within: limit) { try? await self.handshake() }
    }
}
