import AgentWire
import Logging
import SodiumKit
import SystemSupport

/// One request to the upstream, tried again where `UpstreamRetryPolicy` says that is safe, and
/// notifications (including the legacy era's `notifications/cancelled`).
extension StreamableHTTPUpstream {
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
        var policy = UpstreamRetryPolicy(maximumRetries: settings.maximumRetries, maximumRetryWait: settings.maximumRetryWait)
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
                if case .retry(let wait) = policy.afterConnectionFailure(requestWasSent: error.requestWasSent, cancelled: Task.isCancelled) {
                    logger.debug("upstream connection failed before sending (\(error.code.rawValue)); retry \(policy.attempts)")
                    try? await Task.sleep(for: wait)
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
                var inLegacySession = false
                if case .legacy(_, _?) = handshake.era { inLegacySession = true }
                switch policy.afterHTTPFailure(status: status, retryAfterSeconds: failure.retryAfterSeconds, inLegacySession: inLegacySession) {
                case .reinitialize:
                    logger.info("upstream session is gone; initializing again")
                    invalidate(generation: handshake.generation)
                    continue
                case .reauthenticate:
                    if await credentials.credentialRejected(status: status, errorCode: failure.gatewayCode) { continue }
                case .retry(let wait):
                    logger.debug("upstream answered \(status); retrying in \(wait) (attempt \(policy.attempts))")
                    do { try await Task.sleep(for: wait) } catch { throw UpstreamFailure(code: .cancelled, message: "cancelled") }
                    continue
                case .fail:
                    break
                }
                throw await explained(failure)
            }
        }
    }

    /// A refusal of the credentials (401, 403) in the credential source's words.
    func explained(_ failure: UpstreamFailure) async -> UpstreamFailure {
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

    func sendCancellation(requestID: Int, era: UpstreamEra) {
        // A modern upstream treats the closed stream as the cancellation; a legacy one wants it said.
        guard case .legacy = era else { return }
        Task { await self.notify(method: "notifications/cancelled", params: ["requestId": .int(requestID), "reason": "cancelled by the client"]) }
    }
}
