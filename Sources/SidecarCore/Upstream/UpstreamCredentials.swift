import SodiumKit

/// Supplies the `Authorization` header of upstream requests. Generic mode uses a fixed bearer
/// token from the environment; paired mode mints and refreshes short-lived session tokens.
public protocol UpstreamCredentialSource: Sendable {
    /// The full value of the `Authorization` header, or `nil` to send none. Throws an
    /// `UpstreamFailure` when no credential can be had (for example, the device was revoked).
    func authorizationHeader() async throws -> String?
    /// The same value in guarded memory, which is what requests carry (the default makes it from
    /// ``authorizationHeader()``; sources holding a secret return their guarded copy).
    func authorizationSecret() async throws -> SecretBytes?
    /// Called when the upstream answered 401. Returns true when a fresh credential is ready and the
    /// request should be sent once more.
    func credentialRejected(status: Int, errorCode: String?) async -> Bool
    /// Ends whatever the source holds (a session at the gateway); the caller bounds the time.
    func close() async
    /// Rewrites the upstream's refusal of a call (HTTP 401 or 403) into advice of the source's own
    /// (paired mode names `agent-sidecar setup`); the default returns it unchanged.
    func explainRejection(_ failure: UpstreamFailure) async -> UpstreamFailure
}

extension UpstreamCredentialSource {
    public func explainRejection(_ failure: UpstreamFailure) async -> UpstreamFailure { failure }
    public func authorizationSecret() async throws -> SecretBytes? {
        try await authorizationHeader().map { SecretBytes(copying: Array($0.utf8)) }
    }
}

/// A bearer token that never changes, read once from an environment variable (`--bearer-env`),
/// so it never appears in argv or `ps`.
public struct StaticCredentials: UpstreamCredentialSource {
    let header: String?
    let secret: SecretBytes?

    public init(bearerToken: String?) {
        self.header = bearerToken.map { "Bearer \($0)" }
        self.secret = header.map { SecretBytes(copying: Array($0.utf8)) }
    }

    public func authorizationHeader() async throws -> String? { header }
    public func authorizationSecret() async throws -> SecretBytes? { secret }
    public func credentialRejected(status: Int, errorCode: String?) async -> Bool { false }
    public func close() async {}
}
