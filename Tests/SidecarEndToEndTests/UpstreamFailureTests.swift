import AgentWire
import Foundation
import Testing

@Suite("A failing upstream is reported clearly, within its deadline, and the next call works", .secretScan)
struct UpstreamFailureTests {
    func toolErrorText(_ response: JSONValue) -> String? {
        guard response["result"]?["isError"]?.boolValue == true else { return nil }
        return response["result"]?["content"]?[0]?["text"]?.stringValue
    }

    @Test("an upstream that is down: connection refused, answered at once")
    func upstreamDown() async throws {
        // A port that was just free: nothing listens there.
        let fixture = try await FixtureServer.start()
        let url = fixture.url
        fixture.child.kill()
        _ = try await fixture.child.waitForExit(timeout: .seconds(5))
        // A request timeout far above the test's own wait: an answer proves the refusal was not
        // waited out. (No wall-clock bound: this machine may be slow; the benchmark measures speed.)
        let sidecar = try await SidecarUnderTest.legacy(upstream: url, extra: ["--request-timeout", "600"])
        let response = try await sidecar.callTool(1, "echo", ["text": "x"], timeout: .seconds(60))
        let text = try #require(toolErrorText(response))
        #expect(text.contains("cannot reach the upstream"))
        let tools = try await sidecar.call(2, "tools/list")
        #expect(tools["error"]?["code"]?.intValue == -32603)
        try await sidecar.validateAgainstSchema()
    }

    @Test("a slow upstream hits --request-timeout and the sidecar says so")
    func slowUpstream() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, extra: ["--request-timeout", "1"])
        let response = try await sidecar.callTool(1, "slow", ["ms": 10_000], timeout: .seconds(10))
        #expect(try #require(toolErrorText(response)).contains("did not answer within 1 s"))
        let stalled = try await sidecar.callTool(2, "garbage", ["kind": "stall-body"], timeout: .seconds(10))
        #expect(toolErrorText(stalled) != nil)
        let next = try await sidecar.callTool(3, "echo", ["text": "next"])
        #expect(next["result"]?["content"]?[0]?["text"]?.stringValue == "next")
        try await sidecar.validateAgainstSchema()
    }

    @Test("401: the message says the credentials were rejected; with the right token from --bearer-env it works")
    func unauthorized() async throws {
        let fixture = try await FixtureServer.start(["--require-bearer", "fixture-token-123"])
        let without = try await SidecarUnderTest.legacy(upstream: fixture.url)
        let refused = try await without.callTool(1, "echo", ["text": "x"])
        #expect(try #require(toolErrorText(refused)).contains("rejected the credentials"))
        #expect(!without.child.stderr.contains("fixture-token-123"))

        let with = try await SidecarUnderTest.legacy(
            upstream: fixture.url, extra: ["--bearer-env", "FIXTURE_TOKEN"], environment: ["FIXTURE_TOKEN": "fixture-token-123"])
        let accepted = try await with.callTool(2, "echo", ["text": "authorized"])
        #expect(accepted["result"]?["content"]?[0]?["text"]?.stringValue == "authorized")
        #expect(!with.child.stderr.contains("fixture-token-123"))
        #expect(!with.child.allStdoutLines.joined().contains("fixture-token-123"))
        try await with.validateAgainstSchema()
    }

    @Test("429 and 503 with Retry-After are retried with the same Idempotency-Key; 500 is reported")
    func retries() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        let retried = try await sidecar.callTool(1, "fail", ["status": 429, "retryAfter": 1, "times": 1], timeout: .seconds(15))
        #expect(retried["result"]?["isError"]?.boolValue != true, "expected success after one retry: \(retried)")
        let calls = (try await fixture.log()["requests"]?.arrayValue ?? []).filter { $0["tool"]?.stringValue == "fail" }
        #expect(calls.count == 2)
        #expect(Set(calls.compactMap { $0["idempotencyKey"]?.stringValue }).count == 1)

        let unavailable = try await sidecar.callTool(2, "fail", ["status": 503, "retryAfter": 1, "times": 1], timeout: .seconds(15))
        #expect(unavailable["result"]?["isError"]?.boolValue != true)

        let failed = try await sidecar.callTool(3, "fail", ["status": 500], timeout: .seconds(15))
        #expect(try #require(toolErrorText(failed)).contains("upstream failed"))

        let limited = try await sidecar.callTool(4, "fail", ["status": 429], timeout: .seconds(15))
        #expect(try #require(toolErrorText(limited)).contains("rate limiting"))
        try await sidecar.validateAgainstSchema()
    }

    @Test("garbage from the upstream is reported, never relayed", arguments: ["text", "truncated-sse", "wrong-id"])
    func garbage(kind: String) async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, extra: ["--request-timeout", "5"])
        let response = try await sidecar.callTool(1, "garbage", ["kind": .string(kind)], timeout: .seconds(15))
        #expect(toolErrorText(response) != nil, "\(kind): \(response)")
        let next = try await sidecar.callTool(2, "echo", ["text": "after garbage"])
        #expect(next["result"]?["content"]?[0]?["text"]?.stringValue == "after garbage")
        try await sidecar.validateAgainstSchema()
    }

    @Test("a 404 for a known session re-initializes once and retries")
    func sessionExpiry() async throws {
        let fixture = try await FixtureServer.start(["--era", "legacy"])
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        _ = try await sidecar.callTool(1, "echo", ["text": "before"])
        try await fixture.control("expire-sessions")
        let after = try await sidecar.callTool(2, "echo", ["text": "after"])
        #expect(after["result"]?["content"]?[0]?["text"]?.stringValue == "after")
        let initializes = (try await fixture.log()["requests"]?.arrayValue ?? []).filter { $0["method"]?.stringValue == "initialize" }
        #expect(initializes.count == 2)
        try await sidecar.validateAgainstSchema()
    }

    @Test("plain http:// to a non-loopback host is refused at start with a one-line reason")
    func refusesPlainHTTP() async throws {
        let sidecar = try SidecarUnderTest(arguments: ["--upstream", "http://example.com/mcp"], revision: "2025-06-18")
        let status = try await sidecar.child.waitForExit(timeout: .seconds(10))
        #expect(status == 2)
        #expect(sidecar.child.stderr.contains("refusing plain http://"))
        #expect(sidecar.child.allStdoutLines.isEmpty)
    }
}
