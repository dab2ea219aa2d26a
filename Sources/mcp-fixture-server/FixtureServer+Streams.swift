import AgentWire
import Foundation
import Hummingbird

/// The legacy era's GET stream and DELETE, and the modern `subscriptions/listen` stream.
extension FixtureServer {
    // MARK: GET and DELETE (legacy sessions)

    func handleStandaloneStream(_ request: Request, headers: MCPHeaders) -> Response {
        state.record(
            RequestRecord(
                httpMethod: "GET", sessionID: headers.sessionID, protocolVersionHeader: headers.protocolVersion,
                idempotencyKey: headers.idempotencyKey))
        if options.verbose { Self.log("GET session=\(headers.sessionID ?? "-")") }
        guard options.era != .modern else { return Reply.empty(.methodNotAllowed, headers: [.allow: "POST"]) }
        guard let sessionID = headers.sessionID else {
            return Reply.failure(.invalidRequest("Bad Request: no Mcp-Session-Id; initialize first"), id: nil)
        }
        guard state.sessionExists(sessionID) else {
            return Reply.failure(
                ProtocolFailure(status: .notFound, code: -32001, message: "Session not found: \(sessionID); send initialize again"), id: nil)
        }
        if let version = headers.protocolVersion, !ProtocolVersions.legacy.contains(version) {
            return Reply.failure(.invalidRequest("Bad Request: unsupported MCP-Protocol-Version \(version)"), id: nil)
        }
        guard headers.accepts("text/event-stream") else {
            return Reply.failure(.invalidRequest("Not Acceptable: send Accept: text/event-stream", status: .notAcceptable), id: nil)
        }
        return notificationStream(.standalone(sessionID: sessionID), firstFrame: nil, request: request)
    }

    func handleDelete(headers: MCPHeaders) -> Response {
        state.record(
            RequestRecord(
                httpMethod: "DELETE", sessionID: headers.sessionID, protocolVersionHeader: headers.protocolVersion,
                idempotencyKey: headers.idempotencyKey))
        if options.verbose { Self.log("DELETE session=\(headers.sessionID ?? "-")") }
        guard options.era != .modern else { return Reply.empty(.methodNotAllowed, headers: [.allow: "POST"]) }
        guard let sessionID = headers.sessionID else {
            return Reply.failure(.invalidRequest("Bad Request: no Mcp-Session-Id to delete"), id: nil)
        }
        guard state.deleteSession(sessionID) else {
            return Reply.failure(ProtocolFailure(status: .notFound, code: -32001, message: "Session not found: \(sessionID)"), id: nil)
        }
        return Reply.empty(.noContent)
    }

    /// `subscriptions/listen`: an SSE stream that acknowledges, then carries list-changed notifications.
    func listen(params: JSONValue?, environment: CallEnvironment) -> Response {
        let wantsTools = params?["notifications"]?["toolsListChanged"]?.boolValue ?? false
        var honoured: JSONObject = [:]
        if wantsTools { honoured["toolsListChanged"] = true }
        let acknowledgement = JSONRPCBytes.notification(
            method: "notifications/subscriptions/acknowledged",
            params: ["_meta": ["io.modelcontextprotocol/subscriptionId": environment.id], "notifications": .object(honoured)])
        return notificationStream(
            .subscription(id: environment.id, toolsListChanged: wantsTools), firstFrame: SSE.frame(acknowledgement), request: environment.request)
    }

    /// A long-lived SSE stream, registered until the client goes away or the session ends,
    /// with an SSE comment every keep-alive interval.
    func notificationStream(_ kind: NotificationStream.Kind, firstFrame: ByteBuffer?, request: Request) -> Response {
        let (streamID, frames, continuation) = state.openStream(kind)
        if let firstFrame { continuation.yield(firstFrame) }
        let interval = options.keepaliveMilliseconds
        let state = self.state
        return Response(
            status: .ok, headers: Self.closingStreamHeaders,
            body: ResponseBody { writer in
                let keepalive = Task {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(interval))
                        continuation.yield(SSE.keepalive)
                    }
                }
                defer {
                    keepalive.cancel()
                    state.closeStream(streamID)
                }
                _ = try await request.body.consumeWithInboundCloseHandler { _ in
                    for await frame in frames { try await writer.write(frame) }
                } onInboundClosed: {
                    continuation.finish()
                }
                try await writer.finish(nil)
            })
    }
}
