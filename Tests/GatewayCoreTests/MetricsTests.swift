import AgentWire
import Foundation
import GatewayCore
import TestSupport
import Testing

/// `serve --metrics-port` (issue 18): Prometheus metrics on a listener of their own, counting the
/// calls made, with no secret and no argument text in them.
@Suite("agent-gateway /metrics")
struct MetricsTests {
    /// The samples of a Prometheus text exposition: `name{label="value",…}` (labels sorted) to value.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else {
                samples[String(series)] = value
                continue
            }
            let labels = series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: ",").sorted()
            samples["\(series[..<brace]){\(labels.joined(separator: ","))}"] = value
        }
        return samples
    }

    static func series(_ name: String, _ labels: [String: String] = [:]) -> String {
        labels.isEmpty ? name : "\(name){\(labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ","))}"
    }

    @Test("a scrape after calls: counts by tool and outcome, latency, rate-limit refusals, sessions; no secret, no argument text")
    func scrapeMatchesCalls() async throws {
        let server = try await GatewayProcess.start(extraArguments: ["--metrics-port", "0", "--read-rate", "12"])
        defer { server.stop() }
        let metricsURL = try #require(server.metricsURL)
        #expect(metricsURL.hasPrefix("http://127.0.0.1:") && metricsURL.hasSuffix("/metrics"), "loopback by default: \(metricsURL)")
        #expect(!metricsURL.hasPrefix(server.url + "/"), "a listener of its own")
        let (_, code) = try server.newAgent(scopes: [Scope.projectRead, Scope.issueCreate])
        let client = try await AgentClient.pair(baseURL: server.url, code: code)

        let secretText = "ARGUMENT-TEXT-\(UUID().uuidString)"
        let secretKey = "KEY-\(UUID().uuidString)"
        for _ in 0..<3 {
            let (answer, result) = try await client.call("list_projects")
            #expect(answer.status == 200 && result.isToolSuccess)
        }
        for index in 0..<2 {
            let (_, result) = try await client.call(
                "create_issue", ["project": "WEB", "title": .string("\(secretText)-\(index)"), "description": .string(secretText)],
                idempotencyKey: "\(secretKey)-\(index)")
            #expect(result.isToolSuccess, "\(result)")
        }
        let (_, replay) = try await client.call(
            "create_issue", ["project": "WEB", "title": .string("\(secretText)-0"), "description": .string(secretText)],
            idempotencyKey: "\(secretKey)-0")
        #expect(replay["_meta"]?["io.agent-gateway/replayed"] == true)
        let (_, missing) = try await client.call("get_issue", ["issue": "WEB-999"])
        #expect(missing.toolErrorCode == "not_found")
        let unknownName = "exfiltrate_\(secretText)"
        let (unknown, _) = try await client.call(unknownName, ["text": .string(secretText)])
        #expect(unknown.json["error"] != nil)
        // Reads so far: 3 + 1 + 1 (an unknown tool costs a read); the bucket holds 12 and refills one
        // every 5 s, so reads go on until two are refused (at most 40, however slow the machine).
        var limited = 0
        var searches = 0
        while limited < 2, searches < 40 {
            let (answer, _) = try await client.call("search_issues", ["project": "WEB", "query": .string(secretText)])
            searches += 1
            if answer.status == 429 && answer.errorCode == "rate_limited" { limited += 1 }
        }
        #expect(limited == 2, "\(searches) reads, \(limited) refused by a bucket of 12")

        let scrape = try await HTTP.send("GET", metricsURL)
        #expect(scrape.status == 200)
        #expect(scrape.header("Content-Type")?.hasPrefix("text/plain") == true)
        let text = String(decoding: scrape.body, as: UTF8.self)
        let samples = Self.samples(text)
        let calls = GatewayMetrics.callsName
        #expect(samples[Self.series(calls, ["tool": "list_projects", "outcome": "ok"])] == 3, "\(text)")
        #expect(samples[Self.series(calls, ["tool": "create_issue", "outcome": "ok"])] == 2)
        #expect(samples[Self.series(calls, ["tool": "create_issue", "outcome": "replayed"])] == 1)
        #expect(samples[Self.series(calls, ["tool": "get_issue", "outcome": "not_found"])] == 1)
        #expect(samples[Self.series(calls, ["tool": "unknown", "outcome": "unknown_tool"])] == 1)
        #expect(samples[Self.series(calls, ["tool": "search_issues", "outcome": "rate_limited"])] == Double(limited))
        #expect(samples[Self.series(calls, ["tool": "search_issues", "outcome": "ok"])] == Double(searches - limited))
        #expect(samples[Self.series(GatewayMetrics.rateLimitedName, ["bucket": "read"])] == Double(limited))
        let duration = GatewayMetrics.durationName
        #expect(samples[Self.series(duration + "_count", ["tool": "list_projects"])] == 3)
        #expect(samples[Self.series(duration + "_count", ["tool": "create_issue"])] == 3)
        #expect(samples[Self.series(duration + "_bucket", ["tool": "list_projects", "le": "+Inf"])] == 3)
        #expect((samples[Self.series(duration + "_sum", ["tool": "list_projects"])] ?? 0) > 0)
        #expect(samples[GatewayMetrics.approvalsWaitingName] == 0)
        #expect(samples[GatewayMetrics.mcpSessionsName] == 1)
        let total: Double = samples.filter { $0.key.hasPrefix(calls + "{") }.values.reduce(0, +)
        let made = Double(3 + 3 + 1 + 1 + searches)
        #expect(total == made)

        // Nothing a caller chose or holds: no argument text, idempotency key, token, agent, device or session id.
        for secret in [secretText, secretKey, client.token, client.deviceID, "agt_", "dev_", "ses_", "ags_", "WEB-999", "exfiltrate"] {
            #expect(!text.contains(secret), "the scrape shows \(secret)")
        }
        // The gateway's own port does not serve it.
        let onGateway = try await HTTP.send("GET", server.url + "/metrics")
        #expect(onGateway.status == 404)
    }

    @Test("approvals waiting: a call held for an approval shows as 1 until it is decided")
    func approvalsWaitingGauge() async throws {
        let directory = temporaryDirectory()
        let policy = directory + "/policy.yaml"
        try """
        version: 1
        tools:
          comment_issue:
            tier: high
            approval: call
            waitSeconds: 50
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let server = try await GatewayProcess.start(extraArguments: ["--metrics-port", "0", "--policy", policy, "--idle-timeout", "120"])
        defer { server.stop() }
        let metricsURL = try #require(server.metricsURL)
        let (_, code) = try await offThePool { try server.newAgent(scopes: Scope.all) }
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        let call = Task { try await client.call("comment_issue", ["issue": "WEB-1", "body": "Deployed."]) }
        func waiting() async throws -> Double? {
            Self.samples(String(decoding: try await HTTP.send("GET", metricsURL).body, as: UTF8.self))[GatewayMetrics.approvalsWaitingName]
        }
        var polls = 0
        while try await waiting() != 1, polls < 300 {
            try await Task.sleep(for: .milliseconds(100))
            polls += 1
        }
        #expect(try await waiting() == 1, "the waiting call never showed")
        let listed = try JSONValue(parsing: try await offThePool { try server.admin(["approvals", "list", "--json"]) })
        let id = try #require(listed["requests"]?.arrayValue?.first?["id"]?.stringValue)
        _ = try await offThePool { try server.admin(["approvals", "approve", id, "--reason", "fine"]) }
        let (_, result) = try await call.value
        #expect(result.isToolSuccess, "\(result)")
        #expect(try await waiting() == 0)
    }

    @Test("open MCP sessions are counted on both backends (PostgreSQL: rows not ended)", arguments: StoreBackend.allCases)
    func openSessionsOnBothBackends(backend: StoreBackend) async throws {
        let server = try await InProcessGateway(clock: ManualClock(), backend: backend)
        defer { server.stop() }
        func open() async -> Double? {
            Self.samples(String(decoding: await server.gateway.metricsExposition(), as: UTF8.self))[GatewayMetrics.mcpSessionsName]
        }
        #expect(await open() == 0)
        let (_, code) = try await server.newAgent(scopes: [Scope.projectRead])
        let first = try await AgentClient.pair(baseURL: server.url, code: code)
        var second = first
        try await second.initialize()
        #expect(await open() == 2)
        let ended = try await first.rpc("ping", headers: [:])
        #expect(ended.status == 200)
        var headers = first.authorization
        headers["Mcp-Session-Id"] = first.mcpSessionID
        headers["MCP-Protocol-Version"] = first.protocolVersion
        let deleted = try await HTTP.send("DELETE", server.url + "/mcp", headers: headers)
        #expect(deleted.status == 200 || deleted.status == 204, "\(deleted.status)")
        #expect(await open() == 1)
    }

    @Test("without --metrics-port there is no metrics listener; a bad --metrics-port is refused")
    func offByDefault() async throws {
        let server = try await GatewayProcess.start()
        defer { server.stop() }
        #expect(server.metricsURL == nil)
        let database = server.database
        let refused = try await offThePool {
            try runGatewayCommandResult(["serve", "--db", database, "--port", "0", "--metrics-port", "70000"])
        }
        #expect(refused.status != 0 && refused.stderr.contains("--metrics-port"), "\(refused.stderr)")
    }
}
