import AgentWire
import Foundation
import Testing

/// Faults between `agent-sidecar serve --profile` and the real `agent-gateway`, injected by
/// `Reliability/fault-proxy.py`. For each: the client gets the right outcome (a tool error with the
/// right failure code, or success after a safe retry) within its deadline, and the next call works.
@Suite("Faults between the sidecar and the gateway", .secretScan)
struct FaultInjectionTests {
    /// The sidecar's flags in these tests: an 8 s request timeout and a 1 MB cap.
    static let serveFlags = ["--request-timeout", "8", "--connect-timeout", "8", "--max-message-bytes", "1000000"]
    static let requestTimeout: Duration = .seconds(8)
    /// What a busy CI machine may add to an answer (every suite runs at once on two cores). An
    /// answer that must not wait for anything still has to come well before the request timeout.
    static let slack: Duration = .seconds(8)

    /// One fault and what the client must see.
    struct FaultCase: CustomStringConvertible {
        let name: String
        /// Rules for the proxy (installed before the call, cleared after it).
        var rules: [JSONValue] = []
        /// Close the proxy's listener instead (connection refused).
        var refuse = false
        var tool = "list_projects"
        var arguments: JSONValue = [:]
        var meta: JSONValue? = nil
        /// The failure code the sidecar logs, or nil when the call must succeed.
        let code: String?
        /// A fragment of the tool error text.
        var text: String? = nil
        /// How long the outcome takes by design (a Retry-After, the request timeout); it must
        /// arrive no sooner and at most ``FaultInjectionTests/slack`` later.
        var wait: Duration = .zero
        /// How many requests for this tool the proxy must have seen (retries included).
        var attempts: Int? = nil
        var description: String { name }
    }

    static func rule(_ fault: String, _ parameters: JSONObject = [:], tool: String = "list_projects", count: Int? = 1) -> JSONValue {
        var rule: JSONObject = ["fault": .string(fault), "match": ["rpc": "tools/call", "tool": .string(tool)]]
        if let count { rule["count"] = .int(count) }
        for member in parameters { rule[member.key] = member.value }
        return .object(rule)
    }

    /// A gateway-style error body.
    static func gatewayError(_ code: String, _ message: String, retryable: Bool) -> JSONValue {
        let body: JSONValue = ["error": ["code": .string(code), "message": .string(message), "retryable": .bool(retryable)]]
        return .string(body.jsonText)
    }

    static let transportCases: [FaultCase] = [
        FaultCase(name: "connection refused", refuse: true, code: "unreachable", text: "connection refused"),
        // A kept-alive connection that dies before any byte of the answer: libcurl sends the request
        // again once, on a fresh connection (its guard against stale keep-alive connections). The
        // Idempotency-Key is the same, so the gateway replays a write instead of doing it twice.
        FaultCase(
            name: "reset before the response, once", rules: [rule("reset", ["afterBytes": 0])], code: nil,
            attempts: 2),
        FaultCase(
            name: "reset before the response, twice", rules: [rule("reset", ["afterBytes": 0], count: 2)], code: "unreachable",
            text: "broke mid-response", attempts: 2),
        FaultCase(
            name: "reset mid-response", rules: [rule("reset", ["afterBytes": 160])], code: "unreachable", text: "broke mid-response", attempts: 1),
        FaultCase(
            name: "stalled headers", rules: [rule("stall-headers")], code: "timed_out", text: "did not answer within 8 s",
            wait: requestTimeout, attempts: 1),
        FaultCase(
            name: "stalled body", rules: [rule("stall-body")], code: "timed_out", text: "did not answer within 8 s",
            wait: requestTimeout, attempts: 1),
        FaultCase(
            name: "truncated SSE stream", rules: [rule("truncate", ["afterEvents": 1])], meta: ["progressToken": "p-1"], code: "bad_response",
            text: "closed its event stream before answering", attempts: 1),
        FaultCase(
            name: "response over the cap (JSON)", rules: [rule("oversize", ["bytes": 2_000_000])], code: "too_large",
            text: "exceeded the size limit", attempts: 1),
        FaultCase(
            name: "response over the cap (SSE)", rules: [rule("oversize", ["bytes": 2_000_000, "sse": true])], code: "too_large",
            text: "size limit", attempts: 1),
    ]

    static let statusCases: [FaultCase] = [
        FaultCase(
            name: "500", rules: [rule("status", ["status": 500, "body": gatewayError("internal_error", "the gateway failed", retryable: true)])],
            code: "upstream_error", text: "HTTP 500 internal_error", attempts: 1),
        FaultCase(
            name: "502 with an HTML body", rules: [rule("status", ["status": 502, "body": "<html>bad gateway</html>", "contentType": "text/html"])],
            code: "upstream_error", text: "HTTP 502", attempts: 1),
        FaultCase(
            name: "503 without Retry-After", rules: [rule("status", ["status": 503])], code: "upstream_error", text: "HTTP 503", attempts: 1),
        FaultCase(
            name: "503 with Retry-After: 1, once", rules: [rule("status", ["status": 503, "retryAfter": "1"])], code: nil,
            wait: .seconds(1), attempts: 2),
        FaultCase(
            name: "429 with Retry-After: 1, once", rules: [rule("status", ["status": 429, "retryAfter": "1"])], code: nil,
            wait: .seconds(1), attempts: 2),
        FaultCase(
            name: "429 with Retry-After: 1, every time",
            rules: [rule("status", ["status": 429, "retryAfter": "1"], count: nil)], code: "rate_limited", text: "HTTP 429",
            wait: .seconds(2), attempts: 3),
        FaultCase(
            name: "429 without Retry-After", rules: [rule("status", ["status": 429])], code: "rate_limited", text: "rate limiting", attempts: 1),
        FaultCase(
            name: "429 with a Retry-After too long to wait", rules: [rule("status", ["status": 429, "retryAfter": "60"])],
            code: "rate_limited", text: "HTTP 429", attempts: 1),
    ]

    static let authCases: [FaultCase] = [
        FaultCase(
            name: "401 token_expired once: a new session, the call repeated",
            rules: [
                rule(
                    "status",
                    ["status": 401, "body": gatewayError("token_expired", "the session expired; mint a new one", retryable: true)])
            ], code: nil, attempts: 2),
        FaultCase(
            name: "401 token_expired twice: reported after one renewal",
            rules: [
                rule(
                    "status", ["status": 401, "body": gatewayError("token_expired", "the session expired; mint a new one", retryable: true)],
                    count: 2)
            ], code: "unauthorized", text: "HTTP 401 token_expired", attempts: 2),
        FaultCase(
            name: "401 device_revoked: reported, no new session",
            rules: [
                rule(
                    "status",
                    ["status": 401, "body": gatewayError("device_revoked", "this device was revoked", retryable: false)])
            ], code: "unauthorized", text: "run `agent-sidecar setup` and enter it", attempts: 1),
        FaultCase(
            name: "401 agent_revoked: reported, no new session",
            rules: [
                rule("status", ["status": 401, "body": gatewayError("agent_revoked", "the agent was revoked", retryable: false)])
            ], code: "unauthorized", text: "revoked by its owner", attempts: 1),
        FaultCase(
            name: "403 owner_blocked",
            rules: [rule("status", ["status": 403, "body": gatewayError("owner_blocked", "the owner is blocked", retryable: false)])],
            code: "forbidden", text: "owner is blocked", attempts: 1),
    ]

    /// Runs the cases in order through one sidecar; after each, a call without a fault must work.
    func run(_ cases: [FaultCase]) async throws {
        let pairing = try await ProxiedPairing.start()
        let sidecar = try await pairing.serve(extra: Self.serveFlags)
        var id = 1
        // The machine's own slowness, measured by the plain call before each case: a loaded CI
        // machine (load 15 seen) takes seconds for what an idle one does in milliseconds, and the
        // upper bound below grows with it rather than with a guess.
        var baseline = ContinuousClock.now
        #expect(SidecarUnderTest.toolError(try await sidecar.callTool(id, "list_projects")) == nil)
        var plainCall = ContinuousClock.now - baseline
        for fault in cases {
            try await pairing.proxy.clearLog()
            if fault.refuse { try await pairing.proxy.refuse() }
            for rule in fault.rules { try await pairing.proxy.inject(rule) }
            let codesBefore = sidecar.failureCodes.count
            let logsBefore = sidecar.child.stderr.count
            id += 1
            let started = ContinuousClock.now
            var others: [JSONValue] = []
            var params: JSONObject = ["name": .string(fault.tool), "arguments": fault.arguments]
            if let meta = fault.meta { params["_meta"] = meta }
            sidecar.send(["jsonrpc": "2.0", "id": .int(id), "method": "tools/call", "params": .object(params)])
            let response = try await sidecar.child.response(
                to: .int(id), timeout: fault.wait + Self.slack + plainCall * 4 + .seconds(30), others: &others)
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < fault.wait + Self.slack + plainCall * 4, "\(fault): answered after \(elapsed) (a plain call took \(plainCall))")
            #expect(elapsed > fault.wait - .milliseconds(100), "\(fault): answered after \(elapsed), sooner than it should")
            let error = SidecarUnderTest.toolError(response)
            if let code = fault.code {
                #expect(error != nil, "\(fault): expected a tool error, got \(response)")
                if let text = fault.text { #expect(error?.contains(text) == true, "\(fault): \(error ?? "no error")") }
                #expect(!(error ?? "").contains("\n"), "\(fault): the message must be one line")
                let codes = try await waitForFailureCodes(sidecar, count: codesBefore + 1)
                #expect(codes.last == code, "\(fault): logged \(codes.suffix(1))")
            } else {
                #expect(error == nil, "\(fault): \(response)")
            }
            let calls = try await pairing.proxy.requests().filter { $0["tool"]?.stringValue == fault.tool }
            if let attempts = fault.attempts {
                #expect(calls.count == attempts, "\(fault): the proxy saw \(calls.count) calls")
                // Retries of one call keep its Idempotency-Key.
                #expect(Set(calls.compactMap { $0["idempotencyKey"]?.stringValue }).count == 1, "\(fault)")
            }
            // The sidecar's own retries: only for a connection refused before any byte was sent.
            let newLogs = String(sidecar.child.stderr.dropFirst(logsBefore))
            #expect(newLogs.contains("failed before sending") == fault.refuse, "\(fault): the sidecar's own retries")
            if fault.meta?["progressToken"] != nil {
                #expect(others.contains { $0["method"]?.stringValue == "notifications/progress" }, "\(fault): progress before the cut")
            }
            try await pairing.proxy.clear()

            id += 1
            baseline = ContinuousClock.now
            let next = try await sidecar.callTool(id, "get_issue", ["issue": "WEB-1"], timeout: .seconds(30))
            plainCall = ContinuousClock.now - baseline
            #expect(next["result"]?["structuredContent"]?["issue"]?["key"] == "WEB-1", "after \(fault): \(next)")
        }
        try await sidecar.validateAgainstSchema()
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }

    func waitForFailureCodes(_ sidecar: SidecarUnderTest, count: Int) async throws -> [String] {
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline {
            let codes = sidecar.failureCodes
            if codes.count >= count { return codes }
            try await Task.sleep(for: .milliseconds(10))
        }
        return sidecar.failureCodes
    }

    @Test("transport faults: refused, reset, stalled headers and body, truncated SSE, over the cap")
    func transportFaults() async throws { try await run(Self.transportCases) }

    @Test("HTTP status faults: 5xx, 429 and 503 with and without Retry-After")
    func statusFaults() async throws { try await run(Self.statusCases) }

    @Test("401 for an expired token against 401 for a revoked one, and 403")
    func authenticationFaults() async throws {
        try await run(Self.authCases)
    }

    @Test("token_expired makes exactly one new session; a revocation makes none")
    func renewalCounts() async throws {
        let pairing = try await ProxiedPairing.start()
        let sidecar = try await pairing.serve(extra: Self.serveFlags)
        #expect(SidecarUnderTest.toolError(try await sidecar.callTool(1, "list_projects")) == nil)
        let sessions = { try await pairing.proxy.requests().filter { $0["path"]?.stringValue == "/api/v1/sessions" }.count }

        try await pairing.proxy.clearLog()
        try await pairing.proxy.inject(Self.authCases[0].rules[0])
        #expect(SidecarUnderTest.toolError(try await sidecar.callTool(2, "list_projects")) == nil)
        #expect(try await sessions() == 1)

        try await pairing.proxy.clearLog()
        try await pairing.proxy.inject(Self.authCases[2].rules[0])
        #expect(SidecarUnderTest.toolError(try await sidecar.callTool(3, "list_projects")) != nil)
        #expect(try await sessions() == 0)
        // The refusal is told once on stderr.
        let own = sidecar.child.stderr.split(separator: "\n").filter { $0.hasPrefix("agent-sidecar: ") }
        #expect(own.count == 1, "\(own)")
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test("the gateway's own 429: a Retry-After too long to wait is reported at once, with the wait, and writes nothing")
    func gatewayRateLimit() async throws {
        let pairing = try await ProxiedPairing.start(serveArguments: ["--write-rate", "1"])
        let sidecar = try await pairing.serve(extra: Self.serveFlags)
        let first = try await sidecar.callTool(1, "create_issue", ["project": "WEB", "title": "within the limit"])
        #expect(SidecarUnderTest.toolError(first) == nil, "\(first)")
        let started = ContinuousClock.now
        let second = try await sidecar.callTool(2, "create_issue", ["project": "WEB", "title": "over the limit"])
        #expect(ContinuousClock.now - started < Self.slack)
        let error = try #require(SidecarUnderTest.toolError(second))
        #expect(error.contains("HTTP 429 rate_limited") && error.contains("retry after"), "\(error)")
        #expect(try await pairing.gateway.sql("SELECT count(*) FROM issue WHERE title = 'over the limit'") == "0")
        // Reads have their own bucket.
        #expect(SidecarUnderTest.toolError(try await sidecar.callTool(3, "list_projects")) == nil)
    }

    @Test("a self-signed gateway is refused; with --ca-file it is trusted, and a wrong host name is still refused")
    func selfSignedGateway() async throws {
        let world = try PairingWorld()
        let certificate = try await SelfSignedCertificate.make(in: world.root)
        let wrongName = try await SelfSignedCertificate.make(in: world.root, name: "elsewhere", subjectAltName: "DNS:elsewhere.test")
        let plain = try await FaultProxy.start()
        let tls = try await FaultProxy.start(certificate: certificate)
        let gateway = try await TestGateway.start(in: world.root, serveArguments: ["--public-origin", tls.url])
        try await plain.setUpstream(gateway.url)
        try await tls.setUpstream(gateway.url)

        // setup refuses the self-signed gateway with one line, before any file is written.
        let refused = try await world.sidecar([
            "setup", "--gateway", tls.url, "--project-dir", world.project, "--code", world.issued(try await gateway.pairingCode()),
        ])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains("TLS"), "\(refused.stderr)")
        #expect(world.read("sidecar-home/profiles/default.json") == nil)

        // Pair over plain http (setup has no --ca-file), then point the profile at the TLS listener.
        let paired = try await world.sidecar([
            "setup", "--gateway", plain.url, "--project-dir", world.project, "--code", world.issued(try await gateway.pairingCode()),
        ])
        #expect(paired.status == 0, "\(paired)")
        let profilePath = world.path("sidecar-home/profiles/default.json")
        var profile = try JSONValue(parsing: try #require(world.read("sidecar-home/profiles/default.json")))
        if case .object(var object) = profile {
            object["gateway"] = .string(tls.url)
            profile = .object(object)
        }
        try Data(profile.serialized()).write(to: URL(fileURLWithPath: profilePath))

        let untrusted = try await FaultInjectionTests.oneCall(world: world, extra: Self.serveFlags)
        #expect(untrusted.error?.contains("TLS with the") == true, "\(untrusted.error ?? "no error")")
        #expect(untrusted.error?.contains("--ca-file") == true)
        #expect(untrusted.elapsed < Self.slack)

        let trusted = try await FaultInjectionTests.oneCall(world: world, extra: Self.serveFlags + ["--ca-file", certificate.certificate])
        #expect(trusted.error == nil, "\(trusted.error ?? "")")

        let otherCA = try await FaultInjectionTests.oneCall(world: world, extra: Self.serveFlags + ["--ca-file", wrongName.certificate])
        #expect(otherCA.error?.contains("TLS with the") == true, "\(otherCA.error ?? "no error")")

        let status = try await world.sidecar(["status"])
        #expect(status.status == 1 && status.stderr.contains("TLS"), "\(status)")
    }

    /// Starts `serve --profile default`, makes one `list_projects` call, and stops.
    static func oneCall(world: PairingWorld, extra: [String]) async throws -> (error: String?, elapsed: Duration) {
        let sidecar = try world.serve(extra: extra)
        _ = try await sidecar.initialize()
        let started = ContinuousClock.now
        let response = try await sidecar.callTool(1, "list_projects", timeout: .seconds(15))
        let elapsed = ContinuousClock.now - started
        sidecar.child.closeStdin()
        _ = try await sidecar.child.waitForExit(timeout: .seconds(10))
        return (SidecarUnderTest.toolError(response), elapsed)
    }
}
