import AgentWire
import HTTPTypes
import Hummingbird
import NIOCore

/// The owner API, `/api/owner/v1/…`: JSON for a signed-in person (session cookie, or the trusted
/// proxy's header). Every state change needs the session's CSRF token in `X-CSRF-Token`.
/// Documented in docs/gateway-contract.md.
extension GatewayHTTPServer {
    static let ownerAPIPrefix = "api/owner/v1"

    static let notSignedIn = GatewayError(
        code: .notSignedIn, status: 401, message: "sign in first: open a sign-in link from `agent-gateway user login-link USER`")
    static let csrfFailed = GatewayError(
        code: .csrfFailed, status: 403, message: "the X-CSRF-Token header is missing or wrong; read csrfToken from GET /api/owner/v1/me and send it"
    )

    /// Runs an owner API handler for the signed-in person; `changes` requires the CSRF token.
    func ownerAPI(
        _ request: Request, _ context: GatewayRequestContext, changes: Bool = false,
        _ body: @escaping (OwnerService, SignedInUser) async throws -> Response
    ) async -> Response {
        var signedIn: SignedInUser?
        let response: Response
        do {
            signedIn = try await signedInUser(request, context)
            guard let signedIn else { throw Self.notSignedIn }
            if changes, !gateway.csrfMatches(request.headers[HTTPField.Name("X-CSRF-Token")!], for: signedIn) { throw Self.csrfFailed }
            response = try await body(try gateway.ownerService(for: signedIn.user), signedIn)
        } catch let error as AdminError {
            response = Self.json(
                ["error": ["code": .string(error.code), "message": .string(error.message), "retryable": false]],
                status: ConsoleHTTP.status(for: error))
        } catch {
            response = Self.errorResponse(Gateway.asGatewayError(error))
        }
        return finish(response, signedIn: signedIn)
    }

    func addOwnerAPI(to router: Router<GatewayRequestContext>) {
        let api = router.group(RouterPath(Self.ownerAPIPrefix))
        api.get("me") { request, context in
            await self.ownerAPI(request, context) { _, signedIn in
                Self.json(["user": Self.userJSON(signedIn.user), "csrfToken": .string(signedIn.csrfToken)])
            }
        }
        api.post("sign-out") { request, context in
            await self.ownerAPI(request, context, changes: true) { _, signedIn in
                try await self.gateway.signOut(signedIn)
                var response = Response(status: .noContent)
                response.headers[.setCookie] = ConsoleHTTP.sessionCookie("", secure: self.gateway.configuration.secureCookies, maxAgeSeconds: 0)
                return response
            }
        }
        api.get("agents") { request, context in
            await self.ownerAPI(request, context) { service, _ in Self.json(["agents": .array(try await service.agents().map(\.json))]) }
        }
        api.post("agents") { request, context in
            await self.ownerAPI(request, context, changes: true) { service, _ in
                let body = try await Self.readJSON(request, limit: ConsoleHTTP.bodyLimit)
                var grants: [String: [String]] = [:]
                for grant in body["grants"]?.arrayValue ?? [] {
                    guard let project = grant["project"]?.stringValue else { throw GatewayError.validationFailed("each grant needs a project key") }
                    grants[project.uppercased(), default: []] += grant["scopes"]?.arrayValue?.compactMap(\.stringValue) ?? []
                }
                let id = try await service.createAgent(name: body["name"]?.stringValue ?? "", grants: grants)
                return Self.json(["agent": try await service.agent(id).json], status: .created)
            }
        }
        api.get("agents/:agent") { request, context in
            await self.ownerAPI(request, context) { service, _ in
                Self.json(["agent": try await service.agent(try context.parameters.require("agent")).json])
            }
        }
        api.post("agents/:agent/pairing-codes") { request, context in
            await self.ownerAPI(request, context, changes: true) { service, _ in
                let body = (try? await Self.readJSON(request, limit: ConsoleHTTP.bodyLimit)) ?? [:]
                let ttl = body["ttlSeconds"]?.intValue ?? self.gateway.configuration.pairingCodeTTLSeconds
                guard (60...3600).contains(ttl) else { throw GatewayError.validationFailed("ttlSeconds must be 60 to 3600") }
                let (code, expiresAt) = try await service.pairingCode(agentID: try context.parameters.require("agent"), ttlSeconds: ttl)
                return Self.json(
                    [
                        "code": .string(code), "expiresAt": .string(Timestamp.rfc3339(milliseconds: expiresAt)), "ttlSeconds": .int(ttl),
                        "setupCommand": .string(self.setupCommand),
                    ], status: .created)
            }
        }
        api.get("agents/:agent/devices") { request, context in
            await self.ownerAPI(request, context) { service, _ in
                Self.json(["devices": .array(try await service.devices(agentID: try context.parameters.require("agent")).map(Self.deviceJSON))])
            }
        }
        api.post("agents/:agent/devices/:device/revoke") { request, context in
            await self.ownerAPI(request, context, changes: true) { service, _ in
                let device = try context.parameters.require("device")
                try await service.revokeDevice(agentID: try context.parameters.require("agent"), deviceID: device)
                return Self.json(["revoked": true, "device": .string(device)])
            }
        }
        api.get("agents/:agent/sessions") { request, context in
            await self.ownerAPI(request, context) { service, _ in
                Self.json(["sessions": .array(try await service.sessions(agentID: try context.parameters.require("agent")).map(Self.sessionJSON))])
            }
        }
        api.post("agents/:agent/sessions/:session/end") { request, context in
            await self.ownerAPI(request, context, changes: true) { service, _ in
                let session = try context.parameters.require("session")
                try await service.endSession(agentID: try context.parameters.require("agent"), sessionID: session)
                return Self.json(["ended": true, "session": .string(session)])
            }
        }
        api.post("agents/:agent/revoke") { request, context in
            await self.ownerAPI(request, context, changes: true) { service, _ in
                let agent = try context.parameters.require("agent")
                try await service.revokeAgent(agent)
                return Self.json(["agent": try await service.agent(agent).json])
            }
        }
        api.get("audit") { request, context in
            await self.ownerAPI(request, context) { service, _ in
                let query = try Self.auditQuery(request.uri.queryParameters)
                let events = try await service.audit(query)
                let next: JSONValue = events.count == query.limit ? events.last.map { .string($0.id) } ?? .null : .null
                return Self.json(["events": .array(events.map(GatewayAdmin.json)), "nextCursor": next])
            }
        }
        api.get("actions") { request, context in
            await self.ownerAPI(request, context) { service, _ in
                Self.json(["actions": .array(try await service.actions().map(OwnerActionLog.json))])
            }
        }
        api.get("approvals") { request, context in
            await self.ownerAPI(request, context) { service, _ in
                let pendingOnly = request.uri.queryParameters.get("status") != "all"
                let moment = self.gateway.now
                return Self.json(["requests": .array(try await service.approvals(pendingOnly: pendingOnly).map { GatewayAdmin.json($0, at: moment) })]
                )
            }
        }
        for verdict in ["approve", "deny"] {
            api.post(RouterPath("approvals/:request/\(verdict)")) { request, context in
                await self.ownerAPI(request, context, changes: true) { service, _ in
                    let body = (try? await Self.readJSON(request, limit: ConsoleHTTP.bodyLimit)) ?? [:]
                    let id = try context.parameters.require("request")
                    let decided = try await service.decide(requestID: id, approve: verdict == "approve", reason: body["reason"]?.stringValue)
                    self.gateway.shared.announceDecision(id)
                    return Self.json(["request": GatewayAdmin.json(decided, at: self.gateway.now)])
                }
            }
        }
        api.get("admin/users") { request, context in
            await self.ownerAPI(request, context) { service, _ in Self.json(["users": .array(try await service.users().map(Self.userJSON))]) }
        }
        api.post("admin/users/:user/entitlement") { request, context in
            await self.ownerAPI(request, context, changes: true) { service, _ in
                let body = try await Self.readJSON(request, limit: ConsoleHTTP.bodyLimit)
                guard let enabled = body["enabled"]?.boolValue else { throw GatewayError.validationFailed("send {\"enabled\": true} or false") }
                let user = try context.parameters.require("user")
                try await service.setEntitlement(userID: user, entitled: enabled)
                return Self.json(["user": .string(user), "agentsEntitled": .bool(enabled)])
            }
        }
        api.post("admin/users/:user/block") { request, context in
            await self.ownerAPI(request, context, changes: true) { service, _ in
                let body = try await Self.readJSON(request, limit: ConsoleHTTP.bodyLimit)
                guard let blocked = body["blocked"]?.boolValue else { throw GatewayError.validationFailed("send {\"blocked\": true} or false") }
                let user = try context.parameters.require("user")
                try await service.setBlocked(userID: user, blocked: blocked)
                return Self.json(["user": .string(user), "blocked": .bool(blocked)])
            }
        }
    }

    /// The command an owner gives the developer: the code goes in at setup's prompt, never here.
    var setupCommand: String { "agent-sidecar setup --gateway \(gateway.acceptedOrigins.first ?? "URL")" }

    static func auditQuery(_ parameters: Parameters) throws -> AuditQuery {
        func milliseconds(_ name: String) throws -> Int64? {
            guard let text = parameters.get(name) else { return nil }
            guard let value = Int64(text) else { throw GatewayError.validationFailed("\(name) must be Unix milliseconds") }
            return value
        }
        let limit = parameters.get("limit").map { Int($0) ?? -1 } ?? 50
        guard (1...OwnerService.auditPageLimit).contains(limit) else {
            throw GatewayError.validationFailed("limit must be 1 to \(OwnerService.auditPageLimit)")
        }
        return AuditQuery(
            agentID: parameters.get("agent"), tool: parameters.get("tool"), outcome: parameters.get("outcome"), since: try milliseconds("since"),
            until: try milliseconds("until"), beforeID: parameters.get("cursor"), limit: limit)
    }

    static func userJSON(_ user: UserRecord) -> JSONValue {
        [
            "id": .string(user.id), "name": .string(user.name), "role": .string(user.role), "agentsEntitled": .bool(user.agentsEntitled),
            "blocked": .bool(user.blockedAt != nil),
        ]
    }

    static func time(_ value: Int64?) -> JSONValue { value.map { .string(Timestamp.rfc3339(milliseconds: $0, fractional: true)) } ?? .null }

    static func deviceJSON(_ device: DeviceRecord) -> JSONValue {
        ["id": .string(device.id), "name": .string(device.name), "createdAt": time(device.createdAt), "revokedAt": time(device.revokedAt)]
    }

    static func sessionJSON(_ session: SessionRecord) -> JSONValue {
        [
            "id": .string(session.id), "device": .string(session.deviceID), "createdAt": time(session.createdAt),
            "expiresAt": time(session.expiresAt), "endedAt": time(session.endedAt),
        ]
    }
}
