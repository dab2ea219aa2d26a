import AgentWire
import SodiumKit
import Synchronization
import Testing

@testable import SidecarCore

/// A scripted gateway: checks each request the way the real one does and answers from a script.
final class ScriptedGateway: GatewayTransport {
    struct Seen: Sendable {
        let method: String
        let url: String
        let authorization: String?
        let body: JSONValue?
    }
    let publicKey: [UInt8]
    let origin: String
    let seen = Mutex<[Seen]>([])
    /// Status and gateway error code to answer session mints with, in order; then success.
    let mintFailures = Mutex<[(Int, String)]>([])
    let tokenLifetime: Int

    init(publicKey: [UInt8], origin: String, tokenLifetime: Int = 900) {
        self.publicKey = publicKey
        self.origin = origin
        self.tokenLifetime = tokenLifetime
    }

    var requests: [Seen] { seen.withLock { $0 } }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let body: JSONValue? = request.body.isEmpty ? nil : try JSONValue(parsing: request.body)
        // The token travels in guarded memory (`secret`), never as the header's string value.
        let field = request.headers.first { $0.name.lowercased() == "authorization" }
        #expect(field == nil || field?.value == "")
        let authorization = field?.secret?.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
        seen.withLock { $0.append(Seen(method: request.method, url: request.url, authorization: authorization, body: body)) }
        let path = String(request.url.dropFirst(origin.count))
        switch (request.method, path) {
        case ("POST", "/api/v1/pairing/claim"):
            guard body?["code"]?.stringValue == "ABCD-EFGH" else { return Self.error(401, "pairing_code_invalid") }
            return Self.json(
                201,
                [
                    "deviceId": "dev_7", "agent": ["id": "agt_1", "name": "Builder"], "owner": ["id": "usr_1", "name": "Ada"],
                    "grants": [["project": "web", "scopes": ["issues:read"]]],
                ])
        case ("POST", "/api/v1/sessions"):
            if let failure = mintFailures.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return Self.error(failure.0, failure.1) }
            guard let deviceID = body?["deviceId"]?.stringValue, let timestamp = body?["timestamp"]?.intValue,
                let nonce = body?["nonce"]?.stringValue, let signature = body?["signature"]?.stringValue.flatMap({ try? Base64.decode($0) }),
                ((try? Base64.decode(nonce))?.count ?? 0) >= 16
            else { return Self.error(400, "invalid_request") }
            let message = SessionChallenge.message(origin: origin, deviceID: deviceID, timestamp: Int64(timestamp), nonce: nonce)
            guard DeviceKey.verify(signature: signature, message: message, publicKey: publicKey) else {
                return Self.error(401, "signature_invalid")
            }
            let count = requests.count
            return Self.json(
                201,
                [
                    "token": .string("ags_token\(count)"), "sessionId": .string("ses_\(count)"), "expiresAt": "2030-01-01T00:00:00Z",
                    "expiresInSeconds": .int(tokenLifetime),
                ])
        case ("DELETE", "/api/v1/sessions/current"):
            return HTTPResponse(status: 204, headers: [], body: [])
        case ("GET", "/api/v1/agent-session/setup"):
            return Self.json(
                200,
                [
                    "agent": ["id": "agt_1", "name": "Builder"], "owner": ["id": "usr_1", "name": "Ada"],
                    "device": ["id": "dev_7"],
                    "grants": [["project": "web", "name": "Website", "scopes": ["issues:read", "issues:write"]]],
                    "tools": [["name": "search_issues", "title": "Search issues", "readOnly": true, "scope": "issues:read"]],
                    "policy": ["readOnly": false], "session": ["id": "ses_1", "expiresAt": "2030-01-01T00:00:00Z"],
                ])
        case ("POST", "/api/v1/devices/current/revoke"):
            return Self.json(200, ["revoked": true])
        case ("POST", "/mcp"):
            guard authorization?.hasPrefix("Bearer ags_") == true else { return Self.error(401, "token_missing") }
            let id = body?["id"] ?? .null
            switch body?["method"]?.stringValue {
            case "initialize":
                var response = Self.json(
                    200,
                    [
                        "jsonrpc": "2.0", "id": id,
                        "result": [
                            "protocolVersion": "2025-11-25", "capabilities": ["tools": ["listChanged": false]],
                            "serverInfo": ["name": "scripted-gateway", "version": "1"], "instructions": "Scripted gateway instructions.",
                        ],
                    ])
                response.headers.append(HTTPHeader("Mcp-Session-Id", "mcp-session-1"))
                return response
            case "tools/list":
                guard request.headers.value(for: "mcp-session-id") == "mcp-session-1" else { return Self.error(400, "no_session") }
                return Self.json(200, ["jsonrpc": "2.0", "id": id, "result": ["tools": .array(Self.tools)]])
            default:
                return Self.json(200, ["jsonrpc": "2.0", "id": id, "error": ["code": -32601, "message": "not scripted"]])
            }
        case ("DELETE", "/mcp"):
            return HTTPResponse(status: 204, headers: [], body: [])
        default:
            return Self.error(404, "not_found")
        }
    }

    /// The catalog `/mcp` lists.
    static let tools: [JSONValue] = [
        [
            "name": "search_issues", "description": "Search issues", "inputSchema": ["type": "object", "properties": [:]],
            "annotations": ["readOnlyHint": true],
        ]
    ]

    static func json(_ status: Int, _ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: status, headers: [HTTPHeader("Content-Type", "application/json")], body: value.serialized())
    }

    static func error(_ status: Int, _ code: String) -> HTTPResponse {
        var headers = [HTTPHeader("Content-Type", "application/json")]
        if status == 429 { headers.append(HTTPHeader("Retry-After", "30")) }
        let value: JSONValue = ["error": ["code": .string(code), "message": "no", "retryable": .bool(status == 429)]]
        return HTTPResponse(status: status, headers: headers, body: value.serialized())
    }
}

@Suite struct GatewayAPIClientTests {
    let key = DeviceKey.generate()
    let gateway = GatewayOrigin("http://127.0.0.1:8080/")!

    func client() throws -> (GatewayAPIClient, ScriptedGateway) {
        let transport = ScriptedGateway(publicKey: key.publicKey, origin: "http://127.0.0.1:8080")
        return (try GatewayAPIClient(gateway: gateway, transport: transport), transport)
    }

    @Test func pairsMintsReadsSetupAndEnds() async throws {
        let (api, transport) = try client()
        let claim = try await api.claimPairing(code: "ABCD-EFGH", publicKey: key.publicKey, deviceName: "laptop")
        #expect(claim.deviceID == "dev_7")
        #expect(claim.owner.name == "Ada")
        #expect(claim.grants == [.init(project: "web", scopes: ["issues:read"])])
        #expect(transport.requests[0].body?["publicKey"]?.stringValue == key.publicKeyBase64)

        let session = try await api.mintSession(deviceKey: key, deviceID: claim.deviceID)
        #expect(session.expiresInSeconds == 900)
        #expect("\(session.token)".hasPrefix("<redacted"))
        let setup = try await api.setupData(token: session.token)
        #expect(setup.tools.map(\.name) == ["search_issues"])
        #expect(setup.grants.first?.name == "Website")
        #expect(transport.requests.last?.authorization?.hasPrefix("Bearer ags_token") == true)
        try await api.endSession(token: session.token)
        try await api.revokeDevice(token: session.token)
        #expect(transport.requests.map(\.method) == ["POST", "POST", "GET", "DELETE", "POST"])
        #expect(transport.requests[0].authorization == nil && transport.requests[1].authorization == nil)
    }

    @Test func gatewayErrorsBecomeOneLineAdvice() async throws {
        let (api, transport) = try client()
        do {
            _ = try await api.claimPairing(code: "WRNG-CODE", publicKey: key.publicKey, deviceName: "laptop")
            Issue.record("claim with a wrong code succeeded")
        } catch {
            #expect(error.code == .unauthorized)
            #expect(error.gatewayCode == "pairing_code_invalid")
            #expect(!error.message.contains("WRNG"))
        }
        transport.mintFailures.withLock { $0 = [(401, "device_revoked"), (429, "pairing_rate_limited"), (403, "owner_blocked")] }
        for expected in ["device_revoked", "pairing_rate_limited", "owner_blocked"] {
            do {
                _ = try await api.mintSession(deviceKey: key, deviceID: "dev_7")
                Issue.record("mint succeeded")
            } catch {
                #expect(error.gatewayCode == expected)
                #expect(!error.message.contains("\n"))
                if expected == "pairing_rate_limited" { #expect(error.retryAfterSeconds == 30 && error.message.contains("30 s")) }
                if expected == "device_revoked" { #expect(error.message.contains("run `agent-sidecar setup` and enter it")) }
            }
        }
    }

    @Test func signatureBindsTheOrigin() async throws {
        // A gateway at another origin cannot use this device's signature.
        let transport = ScriptedGateway(publicKey: key.publicKey, origin: "http://127.0.0.1:8080")
        let elsewhere = try GatewayAPIClient(gateway: GatewayOrigin("http://localhost:8080")!, transport: OriginRewriter(inner: transport))
        await #expect(throws: UpstreamFailure.self) { _ = try await elsewhere.mintSession(deviceKey: key, deviceID: "dev_7") }
        #expect(transport.requests.count == 1)
    }

    @Test func refusesPlainHTTPBeyondLoopback() {
        #expect(throws: UpstreamFailure.self) {
            try GatewayAPIClient(gateway: GatewayOrigin("http://gw.example.com")!, transport: ScriptedGateway(publicKey: [], origin: ""))
        }
    }
}

/// Forwards requests to a gateway at another origin (as a man in the middle would).
struct OriginRewriter: GatewayTransport {
    let inner: ScriptedGateway
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        var request = request
        request.url = request.url.replacing("http://localhost:8080", with: "http://127.0.0.1:8080")
        return try await inner.send(request)
    }
}

@Suite struct PairedSessionCredentialsTests {
    let key = DeviceKey.generate()

    func make(lifetime: Int = 900, clock: ManualClock = ManualClock()) throws -> (PairedSessionCredentials, ScriptedGateway) {
        let transport = ScriptedGateway(publicKey: key.publicKey, origin: "http://127.0.0.1:9", tokenLifetime: lifetime)
        let api = try GatewayAPIClient(gateway: GatewayOrigin("http://127.0.0.1:9")!, transport: transport)
        return (PairedSessionCredentials(api: api, deviceKey: key, deviceID: "dev_7", now: { clock.now }), transport)
    }

    @Test func oneSessionForConcurrentCallersThenEndedOnClose() async throws {
        let (credentials, transport) = try make()
        let headers = try await withThrowingTaskGroup(of: String?.self) { group in
            for _ in 0..<10 { group.addTask { try await credentials.authorizationHeader() } }
            var all: [String?] = []
            for try await header in group { all.append(header) }
            return all
        }
        #expect(Set(headers).count == 1)
        #expect(headers[0]?.hasPrefix("Bearer ags_") == true)
        #expect(transport.requests.filter { $0.url.hasSuffix("/api/v1/sessions") }.count == 1)
        await credentials.close()
        #expect(transport.requests.last?.method == "DELETE")
        #expect(transport.requests.last?.authorization == headers[0])
        await #expect(throws: UpstreamFailure.self) { _ = try await credentials.authorizationHeader() }
    }

    @Test func renewsOnTokenExpiredButNotOnRevocation() async throws {
        let (credentials, transport) = try make()
        let first = try await credentials.authorizationHeader()
        #expect(await credentials.credentialRejected(status: 401, errorCode: "token_expired"))
        let second = try await credentials.authorizationHeader()
        #expect(first != second)
        #expect(await credentials.credentialRejected(status: 401, errorCode: "device_revoked") == false)
        #expect(await credentials.credentialRejected(status: 403, errorCode: "owner_blocked") == false)
        transport.mintFailures.withLock { $0 = [(401, "agent_revoked")] }
        #expect(await credentials.credentialRejected(status: 401, errorCode: "token_expired") == false)
        do {
            _ = try await credentials.authorizationHeader()
        } catch let failure as UpstreamFailure {
            Issue.record("second mint should have succeeded: \(failure)")
        }
    }

    @Test func renewsShortlyBeforeExpiry() async throws {
        // A 3-second lifetime: the margin is capped at a third, so the token is renewed after 2 s.
        // The clock is moved by hand, so a slow machine cannot change the outcome.
        let clock = ManualClock()
        let (credentials, transport) = try make(lifetime: 3, clock: clock)
        let first = try await credentials.authorizationHeader()
        clock.advance(by: .milliseconds(1900))
        #expect(try await credentials.authorizationHeader() == first)
        clock.advance(by: .milliseconds(200))
        #expect(try await credentials.authorizationHeader() != first)
        #expect(transport.requests.filter { $0.url.hasSuffix("/api/v1/sessions") }.count == 2)
    }
}

/// A monotonic clock that only moves when a test says so.
final class ManualClock: Sendable {
    private let start = ContinuousClock.now
    private let offset = Mutex(Duration.zero)
    var now: ContinuousClock.Instant { start + offset.withLock { $0 } }
    func advance(by duration: Duration) { offset.withLock { $0 += duration } }
}
