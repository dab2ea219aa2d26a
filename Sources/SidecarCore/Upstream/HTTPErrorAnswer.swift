import AgentWire
import SystemSupport

/// An HTTP error answer as both of the sidecar's clients read it, the MCP upstream
/// (`StreamableHTTPUpstream`) and the gateway's REST endpoints (`GatewayAPIClient`): the status,
/// the error object's code and message (the gateway's `{"error":{"code","message"}}`, or a
/// JSON-RPC error's message), and `Retry-After`. The one mapping from an HTTP status to an
/// `UpstreamFailure.Code`; each client words the message for its own audience.
struct HTTPErrorAnswer: Sendable {
    let status: Int
    /// The gateway's error code, when the body has one.
    let gatewayCode: String?
    /// The error object's message, made one short line (it is remote text).
    let message: String?
    let retryAfterSeconds: Int?

    init(status: Int, headers: [HTTPHeader], body: [UInt8]) {
        let error = (try? JSONParser.parse(body))?["error"]
        self.status = status
        gatewayCode = error?["code"]?.stringValue
        message = error?["message"]?.stringValue.map(RemoteText.oneLine)
        retryAfterSeconds = headers.value(for: "retry-after").flatMap { Int($0.trimmingSpaces()) }
    }

    /// 401 unauthorized, 403 forbidden, 429 rate limited, 5xx the other side failed; any other
    /// status rejects the request.
    var failureCode: UpstreamFailure.Code {
        switch status {
        case 401: return .unauthorized
        case 403: return .forbidden
        case 429: return .rateLimited
        case 500..<600: return .upstreamError
        default: return .rejected
        }
    }

    /// Refused before it ran: unauthenticated, forbidden, or over the rate limit. A write refused
    /// this way wrote nothing.
    var callDidNotRun: Bool { status == 401 || status == 403 || status == 429 }

    /// The failure, with `message` worded by the caller.
    func failure(message: String) -> UpstreamFailure {
        UpstreamFailure(
            code: failureCode, message: message, httpStatus: status, gatewayCode: gatewayCode, retryAfterSeconds: retryAfterSeconds,
            callDidNotRun: callDidNotRun)
    }

    /// Worded for the MCP upstream: what happened, with the upstream's own message when it gave one.
    var upstreamFailure: UpstreamFailure {
        let code = gatewayCode.map { " \($0)" } ?? ""
        func say(_ what: String, _ advice: String) -> String { "\(what) (HTTP \(status)\(code)): \(message ?? advice)" }
        switch failureCode {
        case .unauthorized:
            return failure(
                message: say("the upstream rejected the credentials", "check the token given with --bearer-env, or run `agent-sidecar setup` again"))
        case .forbidden:
            return failure(message: say("the upstream refused the call", "the credentials lack permission; ask the upstream's owner"))
        case .rateLimited:
            return failure(
                message: say("the upstream is rate limiting this client", retryAfterSeconds.map { "retry after \($0) s" } ?? "retry later"))
        case .upstreamError:
            return failure(message: say("the upstream failed", "retry later; if it persists, tell the upstream's operator"))
        default:
            return failure(message: say("the upstream rejected the request", "check --upstream and the sidecar's flags"))
        }
    }

    /// Worded for the gateway's REST endpoint `path`: the sidecar's own advice for the codes it
    /// knows, otherwise the gateway's message.
    func gatewayFailure(path: String) -> UpstreamFailure {
        if let gatewayCode, let known = GatewayErrorAdvice.message(for: gatewayCode, retryAfter: retryAfterSeconds) {
            return failure(message: known)
        }
        let detail = message.map { ": " + $0 } ?? ""
        let retry = retryAfterSeconds.map { "; retry after \($0) s" } ?? "; retry later or check the gateway"
        return failure(message: "the gateway answered \(status) to \(path)\(gatewayCode.map { " (\($0))" } ?? "")\(detail)\(retry)")
    }
}

/// Text from the other side (an error message, a header), made safe to show on one line: control
/// characters become spaces, and it is cut to 300 characters.
enum RemoteText {
    static let maximumCharacters = 300

    static func oneLine(_ text: String) -> String { text.flattenedToOneLine(limit: maximumCharacters) }
}
