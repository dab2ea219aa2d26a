import AgentWire
import Foundation
import Testing

/// Exactly-once writes when the gateway commits and the answer is lost on the way back.
///
/// The sidecar retries by itself only where nothing can have been done (a refused connection, 429 or
/// 503 with Retry-After, 401 `token_expired`), always with the call's `Idempotency-Key`. A response
/// lost after the request was sent is a tool error; the agent retries the call with the same
/// `idempotencyKey` argument, and the gateway returns the stored result.
@Suite("Exactly-once writes under faults", .secretScan)
struct FaultExactlyOnceTests {
    static let serveFlags = ["--request-timeout", "2", "--connect-timeout", "2"]

    /// The issues titled `title`, as the tracker holds them.
    static func issues(titled title: String, in gateway: TestGateway) async throws -> [String] {
        let rows = try await gateway.sql(
            "SELECT p.key || '-' || i.number FROM issue i JOIN project p ON p.id = i.projectID WHERE i.title = '\(title)' ORDER BY i.number")
        return rows.split(separator: "\n").map(String.init)
    }

    static func createRule(_ fault: String, _ parameters: JSONObject = [:], count: Int = 1) -> JSONValue {
        var rule: JSONObject = ["fault": .string(fault), "match": ["rpc": "tools/call", "tool": "create_issue"], "count": .int(count)]
        for member in parameters { rule[member.key] = member.value }
        return .object(rule)
    }

    struct LostResponse: CustomStringConvertible, Sendable {
        let name: String
        let rule: JSONValue
        var progress = false
        var description: String { name }
    }

    static let lostResponses: [LostResponse] = [
        LostResponse(name: "connection reset before the answer (twice)", rule: createRule("reset", ["afterBytes": 0], count: 2)),
        LostResponse(name: "connection reset mid-answer", rule: createRule("reset", ["afterBytes": 200])),
        LostResponse(name: "answer never comes (timeout)", rule: createRule("stall-headers", ["forward": true])),
        LostResponse(name: "answer body stalls (timeout)", rule: createRule("stall-body")),
        LostResponse(name: "SSE stream cut after the commit", rule: createRule("truncate", ["afterEvents": 2]), progress: true),
    ]

    @Test("the gateway commits, the answer is lost, the agent retries with the same idempotencyKey: one issue", arguments: lostResponses)
    func lostResponse(fault: LostResponse) async throws {
        let pairing = try await ProxiedPairing.start()
        let sidecar = try await pairing.serve(extra: Self.serveFlags)
        let title = "exactly once \(UUID().uuidString.prefix(8))"
        let arguments: JSONValue = ["project": "WEB", "title": .string(title), "idempotencyKey": .string("agent-key-\(title)")]
        let meta: JSONValue? = fault.progress ? ["progressToken": "p-1"] : nil

        try await pairing.proxy.inject(fault.rule)
        let started = ContinuousClock.now
        let first = try await sidecar.callTool(1, "create_issue", arguments, meta: meta, timeout: .seconds(15))
        // The 2 s request timeout at most, plus what a busy machine adds.
        #expect(ContinuousClock.now - started < .seconds(2) + FaultInjectionTests.slack)
        #expect(SidecarUnderTest.toolError(first) != nil, "\(fault): \(first)")
        let committed = try await Self.issues(titled: title, in: pairing.gateway)
        #expect(committed.count == 1, "\(fault): the gateway should have committed once, holds \(committed)")

        let retry = try await sidecar.callTool(2, "create_issue", arguments, meta: meta, timeout: .seconds(15))
        #expect(SidecarUnderTest.toolError(retry) == nil, "\(fault): \(retry)")
        #expect(retry["result"]?["_meta"]?["io.agent-gateway/replayed"] == true, "\(fault): \(retry)")
        #expect(retry["result"]?["structuredContent"]?["issue"]?["key"]?.stringValue == committed.first)
        #expect(try await Self.issues(titled: title, in: pairing.gateway) == committed)

        // The tracker, the idempotency records and the audit agree.
        #expect(try await pairing.gateway.sql("SELECT count(*) FROM idempotencyRecord WHERE tool = 'create_issue'") == "1")
        #expect(try await pairing.gateway.sql("SELECT count(*) FROM auditEvent WHERE tool = 'create_issue' AND outcome = 'ok'") == "1")
        let replays = Int(try await pairing.gateway.sql("SELECT count(*) FROM auditEvent WHERE tool = 'create_issue' AND outcome = 'replayed'"))
        #expect((replays ?? 0) >= 1)
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test("a 503 with Retry-After after the commit: the sidecar's own retry keeps the Idempotency-Key and gets the stored result")
    func sidecarRetryAfterCommit() async throws {
        let pairing = try await ProxiedPairing.start()
        let sidecar = try await pairing.serve(extra: Self.serveFlags)
        let title = "retried by the sidecar \(UUID().uuidString.prefix(8))"
        try await pairing.proxy.inject(Self.createRule("status", ["status": 503, "retryAfter": "1", "forward": true]))
        // No idempotencyKey argument: only the sidecar's header protects this call.
        let response = try await sidecar.callTool(1, "create_issue", ["project": "WEB", "title": .string(title)], timeout: .seconds(15))
        #expect(SidecarUnderTest.toolError(response) == nil, "\(response)")
        #expect(response["result"]?["_meta"]?["io.agent-gateway/replayed"] == true, "\(response)")
        let issues = try await Self.issues(titled: title, in: pairing.gateway)
        #expect(issues.count == 1, "\(issues)")
        #expect(response["result"]?["structuredContent"]?["issue"]?["key"]?.stringValue == issues.first)
        let calls = try await pairing.proxy.requests().filter { $0["tool"]?.stringValue == "create_issue" }
        #expect(calls.count == 2)
        #expect(Set(calls.compactMap { $0["idempotencyKey"]?.stringValue }).count == 1)
    }

    @Test("a stale keep-alive connection: libcurl's resend of a committed write is replayed, not done twice")
    func hiddenResendIsReplayed() async throws {
        let pairing = try await ProxiedPairing.start()
        let sidecar = try await pairing.serve(extra: Self.serveFlags)
        #expect(SidecarUnderTest.toolError(try await sidecar.callTool(1, "list_projects")) == nil)
        let title = "resent by libcurl \(UUID().uuidString.prefix(8))"
        try await pairing.proxy.inject(Self.createRule("reset", ["afterBytes": 0]))
        let response = try await sidecar.callTool(2, "create_issue", ["project": "WEB", "title": .string(title)], timeout: .seconds(15))
        #expect(SidecarUnderTest.toolError(response) == nil, "\(response)")
        let calls = try await pairing.proxy.requests().filter { $0["tool"]?.stringValue == "create_issue" }
        #expect(calls.count == 2, "libcurl resends once on a fresh connection")
        #expect(Set(calls.compactMap { $0["idempotencyKey"]?.stringValue }).count == 1)
        #expect(response["result"]?["_meta"]?["io.agent-gateway/replayed"] == true, "\(response)")
        #expect(try await Self.issues(titled: title, in: pairing.gateway).count == 1)
    }

    @Test("concurrent duplicates from two sidecars of one agent: one issue, every caller gets it")
    func concurrentDuplicates() async throws {
        let pairing = try await ProxiedPairing.start()
        let sidecars = [try await pairing.serve(extra: Self.serveFlags), try await pairing.serve(extra: Self.serveFlags)]
        let title = "concurrent duplicate \(UUID().uuidString.prefix(8))"
        let arguments: JSONValue = ["project": "WEB", "title": .string(title), "idempotencyKey": .string("dup-\(title)")]
        // Warm both up so the duplicates leave together.
        for sidecar in sidecars { #expect(SidecarUnderTest.toolError(try await sidecar.callTool(1, "list_projects")) == nil) }

        let perSidecar = 6
        for sidecar in sidecars {
            for index in 0..<perSidecar {
                sidecar.send([
                    "jsonrpc": "2.0", "id": .int(100 + index), "method": "tools/call",
                    "params": ["name": "create_issue", "arguments": arguments],
                ])
            }
        }
        var keys: Set<String> = []
        var inFlight = 0
        var nextID = 200
        for sidecar in sidecars {
            let answers = try await sidecar.responses(to: Set((0..<perSidecar).map { 100 + $0 }), timeout: .seconds(15)).responses
            for index in 0..<perSidecar {
                var response = try #require(answers[100 + index])
                // `idempotency_in_flight` is retryable: the agent tries again with the same key.
                var attempts = 0
                while let error = SidecarUnderTest.toolError(response), error.hasPrefix("idempotency_in_flight"), attempts < 20 {
                    inFlight += 1
                    attempts += 1
                    try await Task.sleep(for: .milliseconds(50))
                    nextID += 1
                    response = try await sidecar.callTool(nextID, "create_issue", arguments)
                }
                #expect(SidecarUnderTest.toolError(response) == nil, "\(response)")
                if let key = response["result"]?["structuredContent"]?["issue"]?["key"]?.stringValue { keys.insert(key) }
            }
        }
        let issues = try await Self.issues(titled: title, in: pairing.gateway)
        #expect(issues.count == 1, "\(issues)")
        #expect(keys == Set(issues), "\(keys) vs \(issues)")
        #expect(try await pairing.gateway.sql("SELECT count(*) FROM auditEvent WHERE tool = 'create_issue' AND outcome = 'ok'") == "1")
        let replayed = try await pairing.gateway.sql("SELECT count(*) FROM auditEvent WHERE tool = 'create_issue' AND outcome = 'replayed'")
        #expect(Int(replayed) == 2 * perSidecar - 1, "replays: \(replayed), in-flight refusals: \(inFlight)")

        // The same key with other arguments is refused, and writes nothing.
        let other = try await sidecars[0].callTool(
            300, "create_issue", ["project": "WEB", "title": "something else", "idempotencyKey": .string("dup-\(title)")])
        #expect(SidecarUnderTest.toolError(other)?.hasPrefix("idempotency_key_reused") == true, "\(other)")
        #expect(try await Self.issues(titled: "something else", in: pairing.gateway).isEmpty)
    }
}
