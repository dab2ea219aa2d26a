/// Why a call to the upstream failed, as the client will read it: `message` is one line that says
/// what happened and what to do next. Tests assert on `code`.
public struct UpstreamFailure: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case unreachable
        case timedOut = "timed_out"
        case tls
        case unauthorized
        case forbidden
        case rateLimited = "rate_limited"
        case upstreamError = "upstream_error"
        case rejected
        case badResponse = "bad_response"
        case tooLarge = "too_large"
        case cancelled
        case configuration
    }

    public let code: Code
    public let message: String
    public var httpStatus: Int? = nil
    /// The gateway's own error code (`{"error":{"code":…}}`), when it sent one.
    public var gatewayCode: String? = nil
    public var retryAfterSeconds: Int? = nil
    /// Whether the upstream certainly did not run the call: the request never left (the connection
    /// was refused, the handshake or the credential failed first), or it was refused before it ran
    /// (401, 403, 429). A write that failed this way wrote nothing, so it is safe to retry.
    public var callDidNotRun = false

    public init(
        code: Code, message: String, httpStatus: Int? = nil, gatewayCode: String? = nil, retryAfterSeconds: Int? = nil,
        callDidNotRun: Bool = false
    ) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
        self.gatewayCode = gatewayCode
        self.retryAfterSeconds = retryAfterSeconds
        self.callDidNotRun = callDidNotRun
    }

    /// This failure, marked as one where the call did not run.
    func notRun() -> UpstreamFailure {
        var copy = self
        copy.callDidNotRun = true
        return copy
    }

    public var description: String { message }

    /// - Parameters:
    ///   - error: What libcurl reported.
    ///   - upstream: The URL, for the message.
    ///   - timeout: The time that was allowed.
    ///   - peer: What to call the other side in the message ("upstream", or "gateway" for the REST calls).
    static func from(_ error: HTTPClientError, upstream: String, timeout: Duration, peer: String = "upstream") -> UpstreamFailure {
        var failure = describe(error, upstream: upstream, timeout: timeout, peer: peer)
        failure.callDidNotRun = !error.requestWasSent
        return failure
    }

    private static func describe(_ error: HTTPClientError, upstream: String, timeout: Duration, peer: String) -> UpstreamFailure {
        switch error.code {
        case .connectionRefused:
            return UpstreamFailure(
                code: .unreachable, message: "cannot reach the \(peer) at \(upstream) (connection refused); check that it is running, then retry")
        case .hostNotFound:
            return UpstreamFailure(
                code: .unreachable, message: "cannot resolve the \(peer) host of \(upstream); check the URL and your network, then retry")
        case .connectTimedOut:
            return UpstreamFailure(
                code: .unreachable, message: "could not connect to the \(peer) at \(upstream) in time; check your network, then retry")
        case .timedOut:
            return UpstreamFailure(
                code: .timedOut,
                message: "the \(peer) did not answer within \(timeout.milliseconds / 1000) s; retry later, or raise --request-timeout")
        case .tlsFailure:
            return UpstreamFailure(
                code: .tls, message: "TLS with the \(peer) failed (\(error.detail)); check its certificate, or pass its CA with --ca-file")
        case .connectionLost:
            return UpstreamFailure(code: .unreachable, message: "the connection to the \(peer) broke mid-response (\(error.detail)); retry")
        case .responseTooLarge:
            return UpstreamFailure(
                code: .tooLarge, message: "the \(peer)'s response exceeded the size limit; ask for less, or raise --max-message-bytes")
        case .invalidURL:
            return UpstreamFailure(
                code: .configuration,
                message: "the \(peer) URL \(upstream) is not usable (\(error.detail)); fix \(peer == "upstream" ? "--upstream" : "the URL")")
        case .transport:
            return UpstreamFailure(code: .unreachable, message: "the request to the \(peer) failed (\(error.detail)); retry")
        }
    }
}
