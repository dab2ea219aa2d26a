import AgentWire
import Logging
import SodiumKit
import SystemSupport

/// Finding the upstream's era: a `server/discover` probe for the stateless 2026-07-28 revision
/// first (unless the upstream already answered as legacy), then the `initialize` handshake.
extension StreamableHTTPUpstream {
    func performHandshake() async throws -> UpstreamHandshake {
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
}
