import AgentWire
import Hummingbird

/// An error a client of the gateway can meet: a stable code that tests and the sidecar match on,
/// an HTTP status for REST and auth failures, and a one-line message saying what to do next.
///
/// Equality is on the code alone, so that tests never depend on prose.
public struct GatewayError: HTTPResponseError, Sendable, Hashable, CustomStringConvertible {
    public let code: GatewayErrorCode
    /// The HTTP status of a REST or authentication failure (tool-call failures travel as results).
    public let statusCode: Int
    public let message: String
    public let retryable: Bool
    /// Seconds to wait, for 429 answers (`Retry-After`).
    public let retryAfterSeconds: Int?

    public init(code: GatewayErrorCode, status: Int, message: String, retryable: Bool = false, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.statusCode = status
        self.message = message
        self.retryable = retryable
        self.retryAfterSeconds = retryAfterSeconds
    }

    public static func == (lhs: GatewayError, rhs: GatewayError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
    public var description: String { "\(code.rawValue): \(message)" }
    public var status: HTTPResponse.Status { HTTPResponse.Status(code: statusCode) }

    /// The `{"error":{"code","message","retryable"}}` body used by every REST error and auth failure.
    public var body: JSONValue {
        ["error": ["code": .string(code.rawValue), "message": .string(message), "retryable": .bool(retryable)]]
    }

    /// What a route answers when it throws this error: the error JSON, its status, and
    /// `Retry-After` on a 429.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let wait = retryAfterSeconds { headers[.retryAfter] = String(wait) }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body.serialized())))
    }

    // MARK: Authentication (401)

    static let setupAgain = "run `agent-sidecar setup` again"

    public static let tokenMissing = GatewayError(
        code: .tokenMissing, status: 401,
        message: "no session token was sent; send `Authorization: Bearer ags_…` from a session minted at POST /api/v1/sessions")
    public static let tokenInvalid = GatewayError(
        code: .tokenInvalid, status: 401,
        message: "the session token is not known to this gateway; mint a new session with the device key")
    public static let tokenExpired = GatewayError(
        code: .tokenExpired, status: 401, message: "the session token expired; mint a new session with the device key", retryable: true)
    public static let sessionEnded = GatewayError(
        code: .sessionEnded, status: 401, message: "this session was ended; mint a new session with the device key")
    public static let deviceRevoked = GatewayError(
        code: .deviceRevoked, status: 401,
        message: "this device was revoked; ask the owner for a new pairing code and \(setupAgain)")
    public static let agentRevoked = GatewayError(
        code: .agentRevoked, status: 401,
        message: "the agent was revoked by its owner; ask the owner for a new pairing code and \(setupAgain)")
    public static let ownerBlocked = GatewayError(
        code: .ownerBlocked, status: 403,
        message: "the agent's owner is blocked on this gateway; ask a gateway administrator to unblock the owner")
    /// The same code as a block (the sidecar treats both alike), with its own advice.
    public static let ownerNotEntitled = GatewayError(
        code: .ownerBlocked, status: 403,
        message: "the agent's owner has no agent entitlement on this gateway; ask a gateway administrator to switch it on")
    public static let signatureInvalid = GatewayError(
        code: .signatureInvalid, status: 401,
        message: "the session signature does not verify for this device and gateway origin; check the gateway URL or \(setupAgain)")
    public static let timestampOutOfRange = GatewayError(
        code: .timestampOutOfRange, status: 401,
        message: "the session request's timestamp is more than 5 minutes off the gateway's clock; fix the local clock and retry")
    public static let nonceReused = GatewayError(
        code: .nonceReused, status: 401, message: "this session nonce was already used; sign a fresh challenge with a new random nonce")
    public static let deviceUnknown = GatewayError(
        code: .deviceUnknown, status: 401, message: "this gateway does not know the device; \(setupAgain) with a new pairing code")
    public static let pairingCodeInvalid = GatewayError(
        code: .pairingCodeInvalid, status: 401,
        message: "the pairing code is not valid; check it, or ask the owner for a new one (codes look like XXXX-XXXX)")
    public static let pairingCodeExpired = GatewayError(
        code: .pairingCodeExpired, status: 401, message: "the pairing code expired (codes last 10 minutes); ask the owner for a new one")
    public static let pairingCodeUsed = GatewayError(
        code: .pairingCodeUsed, status: 401, message: "the pairing code was already used; ask the owner for a new one")

    // MARK: Requests

    public static func badRequest(_ message: String) -> GatewayError {
        GatewayError(code: .badRequest, status: 400, message: message)
    }
    public static func validationFailed(_ message: String) -> GatewayError {
        GatewayError(code: .validationFailed, status: 422, message: message)
    }
    public static func notFound(_ message: String) -> GatewayError {
        GatewayError(code: .notFound, status: 404, message: message)
    }
    public static func rateLimited(retryAfter: Int) -> GatewayError {
        GatewayError(
            code: .rateLimited, status: 429,
            message: "this agent is over its rate limit; retry after \(retryAfter) s", retryable: true, retryAfterSeconds: retryAfter)
    }
    /// An agent has 1,024 transactions waiting for the database writer already.
    public static let tooManyCallsWaiting = GatewayError(
        code: .rateLimited, status: 429,
        message: "this agent has too many calls waiting at the gateway; wait for their answers, then retry after 1 s", retryable: true,
        retryAfterSeconds: 1)
    /// A request body over the endpoint's cap (413).
    public static func payloadTooLarge(limit: Int) -> GatewayError {
        let size = limit >= 1 << 20 ? "\(limit >> 20) MiB" : "\(limit >> 10) KiB"
        return GatewayError(
            code: .payloadTooLarge, status: 413,
            message: "the request body is larger than \(size), the limit of this endpoint; send a smaller body")
    }
    public static func pairingRateLimited(retryAfter: Int) -> GatewayError {
        GatewayError(
            code: .pairingRateLimited, status: 429,
            message: "too many failed pairing attempts from this address; wait \(retryAfter) s and check the code",
            retryable: true, retryAfterSeconds: retryAfter)
    }

    // MARK: Tool-call failures (HTTP 200, isError results)

    public static func scopeDenied(tool: String, scope: String, project: String?) -> GatewayError {
        let place = project.map { " on project \($0)" } ?? ""
        return GatewayError(
            code: .scopeDenied, status: 403,
            message: "the agent has no `\(scope)` grant\(place), which \(tool) needs; ask the owner to grant it")
    }
    public static func projectNotGranted(_ project: String) -> GatewayError {
        GatewayError(
            code: .projectNotGranted, status: 403,
            message: "the agent has no grant for project \(project); use list_projects to see granted projects, or ask the owner")
    }
    public static let idempotencyKeyReused = GatewayError(
        code: .idempotencyKeyReused, status: 422,
        message: "this idempotency key was already used with different arguments; use a new key for a new change")
    public static let idempotencyInFlight = GatewayError(
        code: .idempotencyInFlight, status: 409,
        message: "a call with this idempotency key is still running; wait for it and retry with the same key", retryable: true)
    public static func notSupported(_ message: String) -> GatewayError {
        GatewayError(code: .notSupported, status: 501, message: message)
    }

    // MARK: Approvals (issue 17)

    public static func approvalDenied(by approver: String, reason: String, requestID: String) -> GatewayError {
        GatewayError(
            code: .approvalDenied, status: 403,
            message: "\(approver) denied this call (request \(requestID)): \(reason); do not retry it unchanged, tell the user and ask how to go on")
    }
    public static func approvalPending(approver: String, requestID: String, openMinutes: Int) -> GatewayError {
        GatewayError(
            code: .approvalPending, status: 409,
            message:
                "no decision yet: request \(requestID) waits for \(approver) to approve; it stays open \(openMinutes) more minute\(openMinutes == 1 ? "" : "s"), and calling again with the same arguments resumes the wait (no second request, the change happens at most once)",
            retryable: true)
    }
    public static func approvalExpired(requestID: String) -> GatewayError {
        GatewayError(
            code: .approvalExpired, status: 409,
            message: "request \(requestID) expired without a decision; call again to ask anew, and tell the user who must approve")
    }
    public static func breakGlassRequired(tool: String, project: String?) -> GatewayError {
        let place = project.map { " on project \($0)" } ?? ""
        return GatewayError(
            code: .breakGlassRequired, status: 403,
            message:
                "\(tool)\(place) is critical: it runs only after an admin who holds a break-glass grant approves it, and no admin holds one now; ask an admin (`agent-gateway breakglass open`)"
        )
    }

    public static let databaseUnavailable = GatewayError(
        code: .databaseUnavailable, status: 503,
        message: "the gateway's database did not answer; retry in a few seconds (writes with the same idempotencyKey)", retryable: true,
        retryAfterSeconds: 2)

    // MARK: The tracker behind the gateway (Plane)

    public static func trackerUnavailable(_ message: String) -> GatewayError {
        GatewayError(code: .trackerUnavailable, status: 503, message: message, retryable: true, retryAfterSeconds: 5)
    }
    public static func trackerRateLimited(retryAfter: Int) -> GatewayError {
        GatewayError(
            code: .trackerRateLimited, status: 503,
            message: "the tracker (Plane) is over its rate limit for this gateway; retry after \(retryAfter) s with the same idempotencyKey",
            retryable: true, retryAfterSeconds: retryAfter)
    }
    public static func trackerRejected(_ message: String) -> GatewayError {
        GatewayError(code: .trackerRejected, status: 422, message: message)
    }

    public static let internalError = GatewayError(
        code: .internalError, status: 500, message: "the gateway failed to handle the call; retry, and report it if it persists",
        retryable: true)
}
