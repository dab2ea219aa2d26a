import AgentWire
import Logging
import SodiumKit
import SystemSupport

/// One HTTP exchange with the upstream: the headers every request carries, the POST, and reading
/// its answer, a JSON body or an event stream whose `message` events carry notifications, server
/// requests (refused: the sidecar offers its upstream no client features) and the response.
extension StreamableHTTPUpstream {
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

    func post(
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
}
