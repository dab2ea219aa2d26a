import AgentWire
import Testing

@testable import SidecarCore

@Suite("The upstream's retry policy")
struct UpstreamRetryPolicyTests {
    @Test("a connection that failed before sending is retried up to the limit, with a growing pause")
    func connectionRetries() {
        var policy = UpstreamRetryPolicy(maximumRetries: 2, maximumRetryWait: .seconds(10))
        #expect(policy.afterConnectionFailure(requestWasSent: false, cancelled: false) == .retry(after: .milliseconds(50)))
        #expect(policy.afterConnectionFailure(requestWasSent: false, cancelled: false) == .retry(after: .milliseconds(100)))
        #expect(policy.afterConnectionFailure(requestWasSent: false, cancelled: false) == .fail)
    }

    @Test("a request that left, or a cancelled call, is never sent again")
    func sentOrCancelledIsNotRetried() {
        var policy = UpstreamRetryPolicy(maximumRetries: 5, maximumRetryWait: .seconds(10))
        #expect(policy.afterConnectionFailure(requestWasSent: true, cancelled: false) == .fail)
        #expect(policy.afterConnectionFailure(requestWasSent: false, cancelled: true) == .fail)
        #expect(policy.attempts == 0)
    }

    @Test("a lost legacy session is initialized again once; a stateless 404 fails")
    func lostSession() {
        var policy = UpstreamRetryPolicy(maximumRetries: 2, maximumRetryWait: .seconds(10))
        #expect(policy.afterHTTPFailure(status: 404, retryAfterSeconds: nil, inLegacySession: true) == .reinitialize)
        #expect(policy.afterHTTPFailure(status: 404, retryAfterSeconds: nil, inLegacySession: true) == .fail)
        var stateless = UpstreamRetryPolicy(maximumRetries: 2, maximumRetryWait: .seconds(10))
        #expect(stateless.afterHTTPFailure(status: 404, retryAfterSeconds: nil, inLegacySession: false) == .fail)
    }

    @Test("a refused credential is renewed once")
    func reauthenticateOnce() {
        var policy = UpstreamRetryPolicy(maximumRetries: 2, maximumRetryWait: .seconds(10))
        #expect(policy.afterHTTPFailure(status: 401, retryAfterSeconds: nil, inLegacySession: false) == .reauthenticate)
        #expect(policy.afterHTTPFailure(status: 401, retryAfterSeconds: nil, inLegacySession: false) == .fail)
        #expect(policy.afterHTTPFailure(status: 403, retryAfterSeconds: nil, inLegacySession: false) == .fail)
    }

    @Test("429 and 503 wait out a short Retry-After, share the retry budget, and give up on a long one")
    func retryAfter() {
        var policy = UpstreamRetryPolicy(maximumRetries: 2, maximumRetryWait: .seconds(10))
        #expect(policy.afterConnectionFailure(requestWasSent: false, cancelled: false) == .retry(after: .milliseconds(50)))
        #expect(policy.afterHTTPFailure(status: 429, retryAfterSeconds: 1, inLegacySession: false) == .retry(after: .seconds(1)))
        #expect(policy.afterHTTPFailure(status: 503, retryAfterSeconds: 1, inLegacySession: false) == .fail)
        var patient = UpstreamRetryPolicy(maximumRetries: 2, maximumRetryWait: .seconds(10))
        #expect(patient.afterHTTPFailure(status: 429, retryAfterSeconds: 60, inLegacySession: false) == .fail)
        #expect(patient.afterHTTPFailure(status: 429, retryAfterSeconds: nil, inLegacySession: false) == .fail)
        #expect(patient.afterHTTPFailure(status: 500, retryAfterSeconds: 1, inLegacySession: false) == .fail)
    }
}

@Suite("One mapping of HTTP error answers, for the upstream and the gateway's REST client")
struct HTTPErrorAnswerTests {
    static func answer(_ status: Int, _ body: String = "", retryAfter: String? = nil) -> HTTPErrorAnswer {
        HTTPErrorAnswer(status: status, headers: retryAfter.map { [HTTPHeader("Retry-After", $0)] } ?? [], body: Array(body.utf8))
    }

    @Test(
        "statuses map to failure codes, and refusals before the call ran are marked",
        arguments: [
            (401, UpstreamFailure.Code.unauthorized, true), (403, .forbidden, true), (429, .rateLimited, true), (500, .upstreamError, false),
            (503, .upstreamError, false), (400, .rejected, false), (404, .rejected, false), (405, .rejected, false), (422, .rejected, false),
        ])
    func statuses(status: Int, code: UpstreamFailure.Code, didNotRun: Bool) {
        let failure = Self.answer(status).upstreamFailure
        #expect(failure.code == code)
        #expect(failure.httpStatus == status)
        #expect(failure.callDidNotRun == didNotRun)
        #expect(Self.answer(status).gatewayFailure(path: "/x").code == code)
    }

    @Test("the gateway's code, message and Retry-After are read; its message is one short line")
    func gatewayBody() {
        let long = String(repeating: "y", count: 1000)
        let answer = Self.answer(429, #"{"error":{"code":"rate_limited","message":"slow\ndown \#(long)"}}"#, retryAfter: " 7 ")
        #expect(answer.gatewayCode == "rate_limited")
        #expect(answer.retryAfterSeconds == 7)
        let message = answer.message ?? ""
        #expect(!message.contains("\n") && message.hasPrefix("slow down") && message.count <= RemoteText.maximumCharacters + 1)
        #expect(answer.upstreamFailure.message.contains("HTTP 429 rate_limited"))
    }

    @Test("a code the sidecar knows gets its own advice at the REST endpoints; an unknown one the gateway's words")
    func gatewayAdvice() {
        let revoked = Self.answer(401, #"{"error":{"code":"device_revoked","message":"gateway words"}}"#).gatewayFailure(path: "/api/v1/sessions")
        #expect(revoked.message.contains("agent-sidecar setup"))
        #expect(revoked.needsNewPairing && revoked.gatewayError == .deviceRevoked)
        let odd = Self.answer(409, #"{"error":{"code":"something_new","message":"gateway words"}}"#).gatewayFailure(path: "/api/v1/x")
        #expect(odd.message.contains("gateway words") && odd.message.contains("(something_new)") && odd.gatewayError == nil)
        #expect(!odd.needsNewPairing)
    }

    @Test("a body that is not JSON still maps by status")
    func garbageBody() {
        let failure = Self.answer(502, "<html>bad gateway</html>").upstreamFailure
        #expect(failure.code == .upstreamError && failure.gatewayCode == nil)
    }
}

@Suite("The gateway's error codes, as both sides read them")
struct GatewayErrorCodeTests {
    @Test("refusals that need a new pairing, and those that refuse the device")
    func classes() {
        #expect(Set(GatewayErrorCode.allCases.filter(\.needsNewPairing)) == [.agentRevoked, .deviceRevoked, .deviceUnknown])
        let needingPairing = GatewayErrorCode.allCases.filter(\.needsNewPairing)
        #expect(needingPairing.allSatisfy { $0.refusesDevice })
        #expect(!GatewayErrorCode.tokenExpired.refusesDevice && !GatewayErrorCode.sessionEnded.refusesDevice)
        #expect(Set(GatewayErrorCode.allCases.map(\.rawValue)).count == GatewayErrorCode.allCases.count)
        // Interpolated into a message, a code reads as it is sent (the sidecar matches on that text).
        #expect("\(GatewayErrorCode.idempotencyInFlight)" == "idempotency_in_flight")
    }
}
