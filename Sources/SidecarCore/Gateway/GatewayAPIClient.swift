import AgentWire
import SodiumKit
import SystemSupport

/// Sends one HTTP request and returns the whole response. `CurlHTTPClient` is the real one;
/// tests plug in their own.
public protocol GatewayTransport: Sendable {
    func send(_ request: HTTPRequest) async throws -> HTTPResponse
}

extension CurlHTTPClient: GatewayTransport {}

/// What the gateway said when a device claimed a pairing code.
public struct PairingClaim: Sendable, Equatable {
    public let deviceID: String
    public let agent: SidecarProfile.Party
    public let owner: SidecarProfile.Party
    public let grants: [SidecarProfile.Grant]
}

/// A freshly minted session. The token is in secure memory; it never goes to a log or a file.
public struct MintedSession: Sendable {
    public let token: SecretBytes
    public let sessionID: String
    /// As the gateway wrote it (ISO 8601), for display.
    public let expiresAt: String
    /// The lifetime the gateway granted; the sidecar counts it on its own monotonic clock, so a
    /// skewed wall clock cannot make it hold a token too long.
    public let expiresInSeconds: Int
}

/// The gateway's setup data (`GET /api/v1/agent-session/setup`): who the agent is and what it may do.
public struct GatewaySetupData: Sendable, Equatable {
    public let agent: SidecarProfile.Party
    public let owner: SidecarProfile.Party
    public let grants: [SidecarProfile.Grant]
    public let tools: [AgentsMarkdown.Tool]
    /// The policy object as sent (read-only mode, rate limits…); kept whole, shown as is.
    public let policy: JSONValue
}

/// The gateway's REST endpoints for pairing and sessions (docs: the gateway contract).
///
/// Errors are `UpstreamFailure` values whose message says what happened and what to do next,
/// with the gateway's own code in `gatewayCode` (for example `device_revoked`). No request or
/// error message carries a token, a key or a pairing code.
public struct GatewayAPIClient: Sendable {
    public let gateway: GatewayOrigin
    let transport: any GatewayTransport
    /// Time allowed for each call.
    public var timeout: Duration = .seconds(30)

    /// - Parameters:
    ///   - gateway: The gateway. Plain `http://` is refused unless it points at loopback.
    ///   - transport: The HTTP client.
    public init(gateway: GatewayOrigin, transport: any GatewayTransport) throws(UpstreamFailure) {
        do {
            try UpstreamURL(gateway.origin).requireSecureTransport()
        } catch {
            throw UpstreamFailure(code: .configuration, message: error.description)
        }
        self.gateway = gateway
        self.transport = transport
    }

    /// `POST /api/v1/pairing/claim`: registers the device's public key for the agent the code names.
    ///
    /// - Parameters:
    ///   - code: The pairing code in its canonical `XXXX-XXXX` form.
    ///   - publicKey: The device's Ed25519 public key.
    ///   - deviceName: A name for the device the owner will see (the host name).
    public func claimPairing(code: String, publicKey: [UInt8], deviceName: String) async throws(UpstreamFailure) -> PairingClaim {
        let body: JSONValue = [
            "code": .string(code), "publicKey": .string(Base64.encode(publicKey)), "deviceName": .string(deviceName),
        ]
        let response = try await call("POST", "/api/v1/pairing/claim", body: body, token: nil, expecting: [200, 201])
        let json = try parse(response, "/api/v1/pairing/claim")
        guard let deviceID = json["deviceId"]?.stringValue, let agent = party(json["agent"]), let owner = party(json["owner"]) else {
            throw malformed("/api/v1/pairing/claim")
        }
        return PairingClaim(deviceID: deviceID, agent: agent, owner: owner, grants: grants(json["grants"]))
    }

    /// `POST /api/v1/sessions`: signs a fresh challenge with the device key and receives a session token.
    ///
    /// - Parameters:
    ///   - deviceKey: The device key.
    ///   - deviceID: The device id from pairing.
    ///   - now: The Unix time to sign (the gateway accepts five minutes of skew).
    public func mintSession(
        deviceKey: DeviceKey, deviceID: String, now: Int64 = Timestamp.nowSeconds()
    ) async throws(UpstreamFailure)
        -> MintedSession
    {
        let nonce = Base64.encode((try? Sodium.randomBytes(16)) ?? [])
        let message = SessionChallenge.message(origin: gateway.origin, deviceID: deviceID, timestamp: now, nonce: nonce)
        let body: JSONValue = [
            "deviceId": .string(deviceID), "timestamp": .number(JSONNumber(Int(now))), "nonce": .string(nonce),
            "signature": .string(Base64.encode(deviceKey.sign(message))),
        ]
        var response = try await call("POST", "/api/v1/sessions", body: body, token: nil, expecting: [200, 201])
        defer { Sodium.wipe(&response.body) }
        let json = try parse(response, "/api/v1/sessions")
        guard let token = json["token"]?.stringValue, !token.isEmpty, let sessionID = json["sessionId"]?.stringValue,
            let lifetime = json["expiresInSeconds"]?.intValue, lifetime > 0
        else { throw malformed("/api/v1/sessions") }
        return MintedSession(
            token: SecretBytes(copying: Array(token.utf8)), sessionID: sessionID, expiresAt: json["expiresAt"]?.stringValue ?? "",
            expiresInSeconds: lifetime)
    }

    /// `GET /api/v1/agent-session/setup`.
    public func setupData(token: SecretBytes) async throws(UpstreamFailure) -> GatewaySetupData {
        let response = try await call("GET", "/api/v1/agent-session/setup", body: nil, token: token, expecting: [200])
        let json = try parse(response, "/api/v1/agent-session/setup")
        guard let agent = party(json["agent"]), let owner = party(json["owner"]) else { throw malformed("/api/v1/agent-session/setup") }
        let tools = (json["tools"]?.arrayValue ?? []).compactMap { tool -> AgentsMarkdown.Tool? in
            guard let name = tool["name"]?.stringValue else { return nil }
            return AgentsMarkdown.Tool(
                name: name, title: tool["title"]?.stringValue ?? name, readOnly: tool["readOnly"]?.boolValue ?? false,
                scope: tool["scope"]?.stringValue)
        }
        return GatewaySetupData(agent: agent, owner: owner, grants: grants(json["grants"]), tools: tools, policy: json["policy"] ?? .null)
    }

    /// `DELETE /api/v1/sessions/current`: ends the session (the token stops working at once).
    public func endSession(token: SecretBytes) async throws(UpstreamFailure) {
        _ = try await call("DELETE", "/api/v1/sessions/current", body: nil, token: token, expecting: [200, 204])
    }

    /// `POST /api/v1/devices/current/revoke`: revokes this device (logout from the device side).
    public func revokeDevice(token: SecretBytes) async throws(UpstreamFailure) {
        _ = try await call("POST", "/api/v1/devices/current/revoke", body: nil, token: token, expecting: [200, 204])
    }

    /// The tool catalog the gateway serves this agent over `/mcp` (`initialize`, `tools/list`, then
    /// `DELETE /mcp`), with the gateway's `initialize` instructions: what `setup` stores so that the
    /// first `serve` has a catalog to fall back on.
    ///
    /// - Parameter token: A session token minted by the device key.
    public func toolCatalog(token: SecretBytes) async throws(UpstreamFailure) -> (tools: [JSONValue], instructions: String?) {
        let path = "/mcp"
        var sessionID: String?
        func post(_ id: Int, _ method: String, _ params: JSONValue) async throws(UpstreamFailure) -> JSONValue {
            var headers = [HTTPHeader("Accept", "application/json, text/event-stream"), HTTPHeader("Content-Type", "application/json")]
            if let sessionID {
                headers.append(HTTPHeader("Mcp-Session-Id", sessionID))
                headers.append(HTTPHeader("MCP-Protocol-Version", ProtocolRevision.latestLegacy.rawValue))
            }
            let body: JSONValue = ["jsonrpc": "2.0", "id": .int(id), "method": .string(method), "params": params]
            let response = try await call("POST", path, body: body, token: token, expecting: [200], extraHeaders: headers)
            if sessionID == nil { sessionID = response.headers.value(for: "mcp-session-id") }
            // A JSON body, or an event stream whose first `data:` line is the response.
            var bytes = response.body[...]
            if response.headers.value(for: "content-type")?.lowercased().hasPrefix("text/event-stream") == true {
                let text = String(decoding: response.body, as: UTF8.self)
                guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("data:") }) else { throw malformed(path) }
                bytes = Array(line.dropFirst(5).utf8)[...]
            }
            guard let message = try? JSONValue(parsing: Array(bytes)) else { throw malformed(path) }
            if let error = message["error"] {
                throw UpstreamFailure(
                    code: .rejected,
                    message:
                        "the gateway refused \(method) on /mcp: \(RemoteText.oneLine(error["message"]?.stringValue ?? "no reason given"))")
            }
            guard let result = message["result"], result.objectValue != nil else { throw malformed(path) }
            return result
        }
        let initialized = try await post(
            1, "initialize",
            [
                "protocolVersion": .string(ProtocolRevision.latestLegacy.rawValue), "capabilities": [:],
                "clientInfo": SidecarIdentity.implementation,
            ])
        var tools: [JSONValue] = []
        var cursor: JSONValue?
        for page in 0..<20 {
            var params = JSONObject()
            if let cursor { params["cursor"] = cursor }
            let listed = try await post(2 + page, "tools/list", .object(params))
            guard let more = listed["tools"]?.arrayValue else { throw malformed(path) }
            tools += more
            cursor = listed["nextCursor"]
            if cursor == nil || cursor?.isNull == true || tools.count > ToolCatalogCache.maximumTools { break }
        }
        if let sessionID {
            let headers = [HTTPHeader("Mcp-Session-Id", sessionID), HTTPHeader("MCP-Protocol-Version", ProtocolRevision.latestLegacy.rawValue)]
            _ = try? await call("DELETE", path, body: nil, token: token, expecting: [200, 202, 204, 404, 405], extraHeaders: headers)
        }
        return (tools, initialized["instructions"]?.stringValue)
    }

    // MARK: - Plumbing

    private func call(
        _ method: String, _ path: String, body: JSONValue?, token: SecretBytes?, expecting: Set<Int>, extraHeaders: [HTTPHeader]? = nil
    )
        async throws(UpstreamFailure) -> HTTPResponse
    {
        var headers = extraHeaders ?? [HTTPHeader("Accept", "application/json")]
        if body != nil, extraHeaders == nil { headers.append(HTTPHeader("Content-Type", "application/json")) }
        if let token { headers.append(HTTPHeader("Authorization", secret: Self.bearer(token))) }
        let request = HTTPRequest(method: method, url: gateway.url(path), headers: headers, body: body?.serialized() ?? [], timeout: timeout)
        let response: HTTPResponse
        do {
            response = try await transport.send(request)
        } catch let error as HTTPClientError {
            throw UpstreamFailure.from(error, upstream: gateway.baseURL, timeout: timeout, peer: "gateway")
        } catch let error as UpstreamFailure {
            throw error
        } catch {
            throw UpstreamFailure(code: .unreachable, message: "the request to the gateway failed (\(error)); retry")
        }
        guard expecting.contains(response.status) else {
            throw HTTPErrorAnswer(status: response.status, headers: response.headers, body: response.body).gatewayFailure(path: path)
        }
        return response
    }

    /// `Bearer <token>`, assembled in guarded memory.
    static func bearer(_ token: SecretBytes) -> SecretBytes {
        let prefix = Array("Bearer ".utf8)
        return token.withUnsafeBytes { value in
            SecretBytes(count: prefix.count + value.count) { (buffer: UnsafeMutableRawBufferPointer) in
                buffer.copyBytes(from: prefix)
                UnsafeMutableRawBufferPointer(rebasing: buffer[prefix.count...]).copyMemory(from: value)
            }
        }
    }

    private func parse(_ response: HTTPResponse, _ path: String) throws(UpstreamFailure) -> JSONValue {
        guard let json = try? JSONValue(parsing: response.body), json.objectValue != nil else { throw malformed(path) }
        return json
    }

    private func malformed(_ path: String) -> UpstreamFailure {
        UpstreamFailure(
            code: .badResponse,
            message:
                "the gateway's answer to \(path) is not what agent-sidecar expects; check that \(gateway.baseURL) is an Agent Gateway and that both are up to date"
        )
    }

    private func party(_ value: JSONValue?) -> SidecarProfile.Party? {
        guard let id = value?["id"]?.stringValue else { return nil }
        return SidecarProfile.Party(id: id, name: value?["name"]?.stringValue ?? id)
    }

    private func grants(_ value: JSONValue?) -> [SidecarProfile.Grant] {
        (value?.arrayValue ?? []).compactMap { grant in
            guard let project = grant["project"]?.stringValue else { return nil }
            return SidecarProfile.Grant(
                project: project, name: grant["name"]?.stringValue, scopes: (grant["scopes"]?.arrayValue ?? []).compactMap(\.stringValue))
        }
    }
}
