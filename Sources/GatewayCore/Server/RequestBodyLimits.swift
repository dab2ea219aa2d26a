import Hummingbird

/// The largest request body each endpoint accepts. A body over its endpoint's cap gets
/// `413 payload_too_large` in the contract's error JSON: at once when `Content-Length` says so
/// (nothing is read), otherwise as soon as the reader passes the cap.
public enum RequestBodyLimits {
    /// `POST /mcp`: one JSON-RPC message. The largest `tools/call` the input schemas allow in plain
    /// UTF-8 fits; a call that needs more is better split (blocks through update_issue_blocks).
    public static let mcp = 1 << 20
    /// `POST /api/v1/pairing/claim`: a code, a public key and a device name (under 1 KiB).
    public static let pairingClaim = 4 << 10
    /// `POST /api/v1/sessions`: a device id, a timestamp, a nonce and a signature (under 1 KiB).
    public static let sessions = 4 << 10
    /// Every other endpoint takes no body.
    public static let noBody = 1 << 10

    public static func limit(path: String) -> Int {
        switch path {
        case "/mcp": return mcp
        case "/api/v1/pairing/claim": return pairingClaim
        case "/api/v1/sessions": return sessions
        default: return noBody
        }
    }
}

/// Answers 413 before any handler runs when the declared `Content-Length` is over the endpoint's cap.
struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let limit = RequestBodyLimits.limit(path: request.uri.path)
        if let declared = request.headers[.contentLength], let length = Int(declared), length > limit {
            return GatewayHTTPServer.errorResponse(.payloadTooLarge(limit: limit))
        }
        return try await next(request, context)
    }
}
