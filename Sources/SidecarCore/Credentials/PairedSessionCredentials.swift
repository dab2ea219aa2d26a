import AgentWire
import SodiumKit

/// Session tokens for paired mode: the sidecar signs a challenge with the device key, holds the
/// short-lived token it gets in secure memory, renews it shortly before it expires (or once when
/// the gateway says `token_expired`), and ends the session at the gateway on close.
///
/// Concurrent callers share one mint: a burst of tool calls at start-up makes one session.
///
/// When the gateway refuses the device for a reason only a person can fix (the device or agent was
/// revoked, the owner blocked, the device unknown, its signature refused), every failed call says
/// so in the sidecar's words, and `onRefusal` hears about each such reason once, so `serve` can
/// print one line on stderr rather than one per call.
public actor PairedSessionCredentials: UpstreamCredentialSource {

    private let api: GatewayAPIClient
    private let deviceKey: DeviceKey
    private let deviceID: String
    private let refreshMargin: Duration
    /// The monotonic clock that renewal is timed on; tests pass one they can move.
    private let now: @Sendable () -> ContinuousClock.Instant

    private struct Session {
        let token: SecretBytes
        /// `Bearer <token>`, made once per session in guarded memory: requests carry this.
        let header: SecretBytes
        let id: String
        let renewAt: ContinuousClock.Instant
    }
    private var session: Session?
    private var minting: Task<Session, any Error>?
    private var closed = false
    private let onRefusal: (@Sendable (UpstreamFailure) -> Void)?
    private var reportedRefusals: Set<String> = []

    /// - Parameters:
    ///   - api: The gateway client.
    ///   - deviceKey: The decrypted device key.
    ///   - deviceID: The device id from the profile.
    ///   - refreshMargin: How long before expiry to renew (capped at a third of the lifetime).
    ///   - onRefusal: Told once per refusal code (`GatewayErrorCode.refusesDevice`), with the explanation.
    ///   - now: The monotonic clock (default `ContinuousClock.now`).
    public init(
        api: GatewayAPIClient, deviceKey: DeviceKey, deviceID: String, refreshMargin: Duration = .seconds(60),
        onRefusal: (@Sendable (UpstreamFailure) -> Void)? = nil, now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) {
        self.now = now
        self.api = api
        self.deviceKey = deviceKey
        self.deviceID = deviceID
        self.refreshMargin = refreshMargin
        self.onRefusal = onRefusal
    }

    /// `Bearer <token>` as a string (for tests and diagnostics; requests use ``authorizationSecret()``).
    public func authorizationHeader() async throws -> String? {
        let current = try await currentSession()
        return current.header.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// `Bearer <token>` in guarded memory, minting or renewing the session first when needed.
    public func authorizationSecret() async throws -> SecretBytes? {
        try await currentSession().header
    }

    /// On a 401 `token_expired` or `session_ended` (the owner was blocked and unblocked since; the
    /// gateway ended the session) or a 401 without a code, drops the token and mints a new one; any
    /// other rejection (revoked, blocked) is final and is reported by the caller.
    public func credentialRejected(status: Int, errorCode: String?) async -> Bool {
        let known = errorCode.flatMap(GatewayErrorCode.init(rawValue:))
        if let errorCode, known?.refusesDevice == true {
            _ = explain(UpstreamFailure(code: status == 403 ? .forbidden : .unauthorized, message: "", httpStatus: status, gatewayCode: errorCode))
            return false
        }
        guard status == 401, errorCode == nil || known == .tokenExpired || known == .sessionEnded, !closed else { return false }
        session = nil
        return (try? await currentSession()) != nil
    }

    /// Ends the session at the gateway (best effort) and forgets the token.
    public func close() async {
        closed = true
        minting?.cancel()
        guard let current = session else { return }
        session = nil
        try? await api.endSession(token: current.token)
    }

    /// A refusal in the sidecar's words (what happened, and `agent-sidecar setup` or whom to ask).
    public func explainRejection(_ failure: UpstreamFailure) async -> UpstreamFailure { explain(failure) }

    private func explain(_ failure: UpstreamFailure) -> UpstreamFailure {
        guard let code = failure.gatewayCode, failure.gatewayError != .tokenExpired,
            let message = GatewayErrorAdvice.message(for: code, retryAfter: failure.retryAfterSeconds)
        else { return failure }
        let explained = UpstreamFailure(
            code: failure.code, message: message, httpStatus: failure.httpStatus, gatewayCode: code, retryAfterSeconds: failure.retryAfterSeconds,
            callDidNotRun: failure.callDidNotRun)
        if failure.gatewayError?.refusesDevice == true, reportedRefusals.insert(code).inserted { onRefusal?(explained) }
        return explained
    }

    /// The id of the current session, if there is one (for status output; not a secret).
    public var sessionID: String? { session?.id }

    private func currentSession() async throws -> Session {
        if closed { throw UpstreamFailure(code: .cancelled, message: "the sidecar is shutting down") }
        if let session, now() < session.renewAt { return session }
        if let minting { return try await minting.value }
        let task = Task { [api, deviceKey, deviceID, refreshMargin, now] () throws -> Session in
            let minted = try await api.mintSession(deviceKey: deviceKey, deviceID: deviceID)
            let lifetime = Duration.seconds(minted.expiresInSeconds)
            let margin = min(refreshMargin, lifetime / 3)
            return Session(
                token: minted.token, header: GatewayAPIClient.bearer(minted.token), id: minted.sessionID, renewAt: now() + lifetime - margin)
        }
        minting = task
        defer { minting = nil }
        let fresh: Session
        do { fresh = try await task.value } catch let failure as UpstreamFailure { throw explain(failure) }
        if closed {
            try? await api.endSession(token: fresh.token)
            throw UpstreamFailure(code: .cancelled, message: "the sidecar is shutting down")
        }
        session = fresh
        return fresh
    }
}
