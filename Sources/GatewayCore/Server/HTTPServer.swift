import AgentWire
import Hummingbird
import Logging
import NIOCore

/// The request context of the gateway's routes: the standard one plus the client address (an
/// IPv4 address or an IPv6 /64, as the connection and pairing limits count it).
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let clientAddress: String
    /// The peer's exact address (for the trusted-proxy check).
    public let remoteIP: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        clientAddress = ClientAddress.key(source.channel.remoteAddress)
        let ip = source.channel.remoteAddress?.ipAddress ?? ""
        remoteIP = ip.lowercased().hasPrefix("::ffff:") && ip.contains(".") ? String(ip.dropFirst(7)) : ip
    }
}

/// The gateway's HTTP surface (Hummingbird 2): the REST contract, `/mcp`, `/healthz` and `/readyz`.
public struct GatewayHTTPServer: Sendable {
    public let gateway: Gateway
    let sessions = MCPSessions()

    public init(gateway: Gateway) { self.gateway = gateway }

    /// An application listening on `host:port` (port 0 picks one); `onListening` gets the bound port.
    public func makeApplication(
        host: String, port: Int, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: BodyLimitMiddleware())
        router.add(middleware: GatewayErrorMiddleware())
        router.get("healthz") { _, _ in Self.json(["ok": true]) }
        router.get("readyz") { _, _ in
            let failure = await gateway.readinessFailure()
            return Self.json(
                failure.map { ["ready": false, "reason": .string($0)] } ?? ["ready": true], status: failure == nil ? .ok : .serviceUnavailable)
        }
        router.post("api/v1/pairing/claim") { request, context in
            let body = try await Self.readJSON(request, limit: RequestBodyLimits.pairingClaim)
            return Self.json(try await gateway.claimPairingCode(body, clientAddress: context.clientAddress), status: .created)
        }
        router.post("api/v1/sessions") { request, _ in
            let body = try await Self.readJSON(request, limit: RequestBodyLimits.sessions)
            return Self.json(try await gateway.createSession(body), status: .created)
        }
        router.delete("api/v1/sessions/current") { request, _ in
            let principal = try await gateway.authenticate(authorization: request.headers[.authorization])
            try await gateway.endSession(principal)
            return Response(status: .noContent)
        }
        router.post("api/v1/devices/current/revoke") { request, _ in
            let principal = try await gateway.authenticate(
                authorization: request.headers[.authorization], refusedCall: { .api("revoke_device") })
            return Self.json(try await gateway.revokeDevice(principal))
        }
        router.get("api/v1/agent-session/setup") { request, _ in
            let principal = try await gateway.authenticate(authorization: request.headers[.authorization], refusedCall: { .api("setup") })
            return Self.json(try await gateway.setupPacket(principal))
        }
        addOwnerAPI(to: router)
        addConsole(to: router)
        router.post("mcp") { request, _ in await self.handleMCPPost(request) }
        router.delete("mcp") { request, _ in await self.handleMCPDelete(request) }
        router.get("mcp") { _, _ in
            var response = Self.errorResponse(
                GatewayError(code: .methodNotAllowed, status: 405, message: "this gateway offers no server-initiated SSE stream; POST to /mcp"))
            response.headers[.allow] = "POST, DELETE"
            return response
        }
        let registry = ConnectionRegistry(limits: gateway.configuration.connectionLimits, logger: logger)
        let app = Application(
            router: router, server: GuardedHTTP1Channel.builder(registry: registry),
            configuration: .init(address: .hostname(host, port: port), serverName: "agent-gateway"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger)
        return app
    }

    /// The body as JSON: `payload_too_large` over `limit` bytes, `bad_request` when it is not JSON.
    static func readJSON(_ request: Request, limit: Int) async throws -> JSONValue {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: limit) } catch {
            throw GatewayError.payloadTooLarge(limit: limit)
        }
        do { return try JSONValue(parsing: Array(buffer.readableBytesView)) } catch {
            throw GatewayError.badRequest("the request body is not valid JSON (\(error)); send a JSON object")
        }
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }

    static func errorResponse(_ error: GatewayError) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let wait = error.retryAfterSeconds { headers[.retryAfter] = String(wait) }
        return Response(status: error.status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: error.body.serialized())))
    }
}

/// Routes throw; this turns whatever they throw into the gateway's error JSON: a `GatewayError`
/// as it is (it is an `HTTPResponseError`), anything else as `internal_error`, never as the
/// framework's bare 500.
struct GatewayErrorMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as GatewayError {
            throw error
        } catch let error as HTTPError {
            throw error
        } catch {
            throw Gateway.asGatewayError(error)
        }
    }
}
