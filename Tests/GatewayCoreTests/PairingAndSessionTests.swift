import AgentWire
import Foundation
import GatewayCore
import SodiumKit
import Testing

@Suite("Pairing and sessions over HTTP")
struct PairingAndSessionTests {
    @Test(arguments: StoreBackend.allCases)
    func pairingCodeIsSingleUse(backend: StoreBackend) async throws {
        let gateway = try await InProcessGateway(clock: ManualClock(), backend: backend)
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        #expect(code.count == 9 && code.contains("-"))
        _ = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let again = try await HTTP.send(
            "POST", gateway.url + "/api/v1/pairing/claim", json: ["code": .string(code), "publicKey": .string(DeviceKey().publicKeyBase64)])
        #expect(again.status == 401)
        #expect(again.errorCode == "pairing_code_used")
        #expect(again.json["error"]?["retryable"]?.boolValue == false)
    }

    @Test func pairingCodeAcceptsLowerCaseAndNoDash() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        let typed = code.lowercased().replacingOccurrences(of: "-", with: "")
        let client = try await AgentClient.pair(baseURL: gateway.url, code: typed)
        #expect(client.deviceID.hasPrefix("dev_"))
    }

    @Test func pairingCodeExpiresAfterTenMinutes() async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock)
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        clock.advance(seconds: 601)
        let answer = try await HTTP.send(
            "POST", gateway.url + "/api/v1/pairing/claim", json: ["code": .string(code), "publicKey": .string(DeviceKey().publicKeyBase64)])
        #expect(answer.status == 401)
        #expect(answer.errorCode == "pairing_code_expired")
    }

    @Test func pairingCodeStillValidJustBeforeTenMinutes() async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock)
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        clock.advance(seconds: 590)
        let answer = try await HTTP.send(
            "POST", gateway.url + "/api/v1/pairing/claim", json: ["code": .string(code), "publicKey": .string(DeviceKey().publicKeyBase64)])
        #expect(answer.status == 201)
        #expect(answer.json["owner"] == ["id": "alice", "name": "Alice"])
    }

    @Test func failedClaimsAreSlowedNotLockedOut() async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock)
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        // Text that is not a code is refused without a lookup, and costs no attempt.
        for _ in 0..<10 {
            let answer = try await HTTP.send(
                "POST", gateway.url + "/api/v1/pairing/claim",
                json: ["code": "not-a-pairing-code", "publicKey": .string(DeviceKey().publicKeyBase64)])
            #expect(answer.status == 401 && answer.errorCode == "pairing_code_invalid")
        }
        for attempt in 1...5 {
            let answer = try await HTTP.send(
                "POST", gateway.url + "/api/v1/pairing/claim",
                json: ["code": .string("ZZZZ-ZZZ\(attempt)"), "publicKey": .string(DeviceKey().publicKeyBase64)])
            #expect(answer.status == 401)
            #expect(answer.errorCode == "pairing_code_invalid")
        }
        // The sixth attempt, with the right code, is held a moment and then accepted.
        let slowed = try await HTTP.send(
            "POST", gateway.url + "/api/v1/pairing/claim", json: ["code": .string(code), "publicKey": .string(DeviceKey().publicKeyBase64)])
        #expect(slowed.status == 201)
    }

    @Test(arguments: StoreBackend.allCases)
    func sessionChecksSignatureTimestampAndNonce(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock, backend: backend)
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code, initialize: false)
        let endpoint = gateway.url + "/api/v1/sessions"

        // Signed by another key.
        let forged = AgentClient.sessionBody(baseURL: gateway.url, deviceID: client.deviceID, key: DeviceKey())
        var answer = try await HTTP.send("POST", endpoint, json: forged)
        #expect(answer.status == 401 && answer.errorCode == "signature_invalid")

        // Signed for another gateway origin.
        let elsewhere = AgentClient.sessionBody(
            baseURL: gateway.url, origin: "https://gateway.example.com", deviceID: client.deviceID, key: client.key)
        answer = try await HTTP.send("POST", endpoint, json: elsewhere)
        #expect(answer.status == 401 && answer.errorCode == "signature_invalid")

        // localhost names the same loopback gateway.
        let port = gateway.url.split(separator: ":").last!
        let viaLocalhost = AgentClient.sessionBody(
            baseURL: gateway.url, origin: "http://localhost:\(port)", deviceID: client.deviceID, key: client.key)
        answer = try await HTTP.send("POST", endpoint, json: viaLocalhost)
        #expect(answer.status == 201)

        // Six minutes off, either way: off the gateway's clock, not the wall clock (on a loaded
        // machine a minute can pass between the two, which brought -360 s inside the window).
        let now = clock.nowSeconds
        for skew in [-360, 360] as [Int64] {
            let stale = AgentClient.sessionBody(baseURL: gateway.url, deviceID: client.deviceID, key: client.key, timestamp: now + skew)
            answer = try await HTTP.send("POST", endpoint, json: stale)
            #expect(answer.status == 401 && answer.errorCode == "timestamp_out_of_range")
        }

        // A nonce works once.
        let nonce = Base64.encode(try! Sodium.randomBytes(16))
        let first = AgentClient.sessionBody(baseURL: gateway.url, deviceID: client.deviceID, key: client.key, nonce: nonce)
        answer = try await HTTP.send("POST", endpoint, json: first)
        #expect(answer.status == 201)
        #expect(answer.json["token"]?.stringValue?.hasPrefix("ags_") == true)
        #expect(answer.json["sessionId"]?.stringValue?.hasPrefix("ses_") == true)
        #expect(answer.json["expiresInSeconds"]?.intValue == 900)
        let replay = AgentClient.sessionBody(baseURL: gateway.url, deviceID: client.deviceID, key: client.key, nonce: nonce)
        answer = try await HTTP.send("POST", endpoint, json: replay)
        #expect(answer.status == 401 && answer.errorCode == "nonce_reused")

        // Unknown device, malformed body.
        answer = try await HTTP.send("POST", endpoint, json: AgentClient.sessionBody(baseURL: gateway.url, deviceID: "dev_nope", key: client.key))
        #expect(answer.status == 401 && answer.errorCode == "device_unknown")
        answer = try await HTTP.send("POST", endpoint, json: ["deviceId": .string(client.deviceID)])
        #expect(answer.status == 422 && answer.errorCode == "validation_failed")
        let garbage = try await HTTPRaw.post(endpoint, body: Array("{not json".utf8))
        #expect(garbage.status == 400 && garbage.errorCode == "bad_request")
    }

    @Test func tokenExpiresAfterItsTTL() async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock) { $0.sessionTTLSeconds = 60 }
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        var client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        #expect(try await client.call("list_projects").1.isToolSuccess)
        clock.advance(seconds: 61)
        let (answer, _) = try await client.call("list_projects")
        #expect(answer.status == 401 && answer.errorCode == "token_expired")
        try await client.newSession()
        #expect(try await client.call("list_projects").1.isToolSuccess)
    }

    @Test(arguments: StoreBackend.allCases)
    func sessionEndAndDeviceRevoke(backend: StoreBackend) async throws {
        let gateway = try await InProcessGateway(clock: ManualClock(), backend: backend)
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        var client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let setup = try await HTTP.send("GET", gateway.url + "/api/v1/agent-session/setup", headers: client.authorization)
        #expect(setup.status == 200)
        #expect(setup.json["policy"]?["noDelete"]?.boolValue == true)
        #expect(setup.json["device"]?["id"]?.stringValue == client.deviceID)
        #expect(setup.json["grants"]?.arrayValue?.first?["name"]?.stringValue == "Website")

        let ended = try await HTTP.send("DELETE", gateway.url + "/api/v1/sessions/current", headers: client.authorization)
        #expect(ended.status == 204)
        var answer = try await client.call("list_projects").0
        #expect(answer.status == 401 && answer.errorCode == "session_ended")

        try await client.newSession()
        try await client.initialize()
        let revoked = try await HTTP.send("POST", gateway.url + "/api/v1/devices/current/revoke", headers: client.authorization)
        #expect(revoked.status == 200 && revoked.json["revoked"]?.boolValue == true)
        answer = try await client.call("list_projects").0
        #expect(answer.status == 401 && answer.errorCode == "device_revoked")
        answer = try await HTTP.send(
            "POST", gateway.url + "/api/v1/sessions", json: AgentClient.sessionBody(baseURL: gateway.url, deviceID: client.deviceID, key: client.key))
        #expect(answer.status == 401 && answer.errorCode == "device_revoked")

        let missing = try await HTTP.send("GET", gateway.url + "/api/v1/agent-session/setup")
        #expect(missing.status == 401 && missing.errorCode == "token_missing")
        let unknown = try await HTTP.send("GET", gateway.url + "/api/v1/agent-session/setup", headers: ["Authorization": "Bearer ags_nope"])
        #expect(unknown.status == 401 && unknown.errorCode == "token_invalid")
    }
}

/// Raw bodies (not JSON) for malformed-request tests.
enum HTTPRaw {
    static func post(_ url: String, body: [UInt8]) async throws -> HTTPAnswer {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (data, response) = try await HTTP.session.data(for: request)
        return HTTPAnswer(status: (response as! HTTPURLResponse).statusCode, headers: [:], body: Array(data))
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
