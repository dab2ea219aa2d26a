import AgentWire
import Logging
import SodiumKit
import SystemSupport

extension StreamableHTTPUpstream {
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
}
