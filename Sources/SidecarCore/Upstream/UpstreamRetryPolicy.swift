/// When one call to the upstream is tried again, and when it fails: the three policies of the
/// request loop in one place, each at most as often as it is safe.
///
/// - A connection that failed before the request left is retried (`maximumRetries` times, with a
///   short back-off): the upstream cannot have run it.
/// - A legacy session the upstream no longer knows (404) is initialized again, once.
/// - A refused credential (401) is renewed, once, if the credential source can renew it.
/// - 429 and 503 with a `Retry-After` no longer than `maximumRetryWait` are waited out and retried
///   (`maximumRetries` times in all, shared with the connection retries).
struct UpstreamRetryPolicy: Sendable {
    enum Decision: Equatable, Sendable {
        /// Send the call again after waiting this long.
        case retry(after: Duration)
        /// Forget the upstream session, initialize again, then send the call again.
        case reinitialize
        /// Ask the credential source for a new credential; send the call again if it has one.
        case reauthenticate
        /// Give up: the failure goes to the client.
        case fail
    }

    let maximumRetries: Int
    let maximumRetryWait: Duration
    private(set) var attempts = 0
    private var reinitialized = false
    private var reauthenticated = false

    init(maximumRetries: Int, maximumRetryWait: Duration) {
        self.maximumRetries = maximumRetries
        self.maximumRetryWait = maximumRetryWait
    }

    /// After the transport failed. Only a request that never left is sent again.
    mutating func afterConnectionFailure(requestWasSent: Bool, cancelled: Bool) -> Decision {
        guard !requestWasSent, !cancelled, attempts < maximumRetries else { return .fail }
        attempts += 1
        return .retry(after: .milliseconds(50 * attempts))
    }

    /// After the upstream answered with an HTTP error.
    ///
    /// - Parameters:
    ///   - inLegacySession: the call went with a legacy `Mcp-Session-Id`.
    mutating func afterHTTPFailure(status: Int, retryAfterSeconds: Int?, inLegacySession: Bool) -> Decision {
        if status == 404, inLegacySession, !reinitialized {
            reinitialized = true
            return .reinitialize
        }
        if status == 401, !reauthenticated {
            reauthenticated = true
            return .reauthenticate
        }
        if status == 429 || status == 503, let wait = retryAfterSeconds, attempts < maximumRetries, Duration.seconds(wait) <= maximumRetryWait {
            attempts += 1
            return .retry(after: .seconds(wait))
        }
        return .fail
    }
}
