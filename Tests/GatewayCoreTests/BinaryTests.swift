import AgentWire
import Foundation
import GatewayCore
import Testing

/// Tests against the real `agent-gateway` binary: admin CLI, `serve --port 0`, the database file.
@Suite("agent-gateway binary", .serialized)
struct BinaryTests {
    @Test func fullFlowThroughTheBinary() async throws {
        let server = try await GatewayProcess.start()
        defer { server.stop() }
        let idJSON = try server.admin([
            "agent", "create", "--owner", "alice", "--name", "codex", "--project", "WEB", "OPS", "--scope", "project:read", "issue:create", "--json",
        ])
        let agentID = try #require(try JSONValue(parsing: idJSON)["id"]?.stringValue)
        #expect(agentID.hasPrefix("agt_"))
        let codeJSON = try server.admin(["agent", "pair", agentID, "--json"])
        let code = try #require(try JSONValue(parsing: codeJSON)["code"]?.stringValue)
        #expect(PairingCodeFormat.normalize(code) == code)

        var client = try await AgentClient.pair(baseURL: server.url, code: code)
        #expect(try await client.toolNames() == ["list_projects", "get_project_context", "search_issues", "get_issue", "create_issue"])
        let created = try await client.call("create_issue", ["project": "OPS", "title": "From the binary"], idempotencyKey: ULID().text).1
        #expect(created["structuredContent"]?["issue"]?["key"]?.stringValue == "OPS-4")

        let health = try await HTTP.send("GET", server.url + "/healthz")
        #expect(health.status == 200 && health.json["ok"]?.boolValue == true)

        let audit = try JSONValue(parsing: server.admin(["audit", "--agent", agentID, "--json"]))
        let events = audit["events"]?.arrayValue ?? []
        #expect(events.count == 1)
        #expect(events.first?["tool"]?.stringValue == "create_issue")
        #expect(events.first?["outcome"]?.stringValue == "ok")
        let plainAudit = try server.admin(["audit"])
        #expect(plainAudit.contains("create_issue"))

        // Secrets never reach the database: scan the file and its WAL for the token and the code.
        let tokenBytes = Array(client.token.utf8)
        let tokenBody = Array(client.token.dropFirst(4).utf8)
        for suffix in ["", "-wal", "-shm"] {
            guard let data = FileManager.default.contents(atPath: server.database + suffix) else { continue }
            let bytes = Array(data)
            #expect(!contains(bytes, tokenBytes) && !contains(bytes, tokenBody), "token found in \(suffix)")
            #expect(!contains(bytes, Array(code.utf8)) && !contains(bytes, Array(code.replacingOccurrences(of: "-", with: "").utf8)))
        }

        // Session TTL and restart: the session survives a restart of the process.
        client.mcpSessionID = nil
        server.stop()
        let restarted = try await GatewayProcess.start(database: server.database, seed: false)
        defer { restarted.stop() }
        let answer = try await HTTP.send("GET", restarted.url + "/api/v1/agent-session/setup", headers: client.authorization)
        // The origin changed with the port, but an existing token stays valid.
        #expect(answer.status == 200)
    }

    @Test func revokeAndBlockFailTheVeryNextCall() async throws {
        let server = try await GatewayProcess.start()
        defer { server.stop() }
        let (agentID, code) = try server.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        #expect(try await client.call("list_projects").1.isToolSuccess)
        try server.admin(["agent", "revoke", agentID])
        let (revoked, _) = try await client.call("list_projects")
        #expect(revoked.status == 401 && revoked.errorCode == "agent_revoked")
        #expect(revoked.json["error"]?["message"]?.stringValue?.contains("agent-sidecar setup") == true)
        let session = try await HTTP.send(
            "POST", server.url + "/api/v1/sessions", json: AgentClient.sessionBody(baseURL: server.url, deviceID: client.deviceID, key: client.key))
        #expect(session.status == 401 && session.errorCode == "agent_revoked")

        let (_, otherCode) = try server.newAgent(scopes: [Scope.projectRead])
        let other = try await AgentClient.pair(baseURL: server.url, code: otherCode)
        #expect(try await other.call("get_issue", ["issue": "WEB-1"]).1.isToolSuccess)
        try server.admin(["owner", "block", "alice"])
        let (blocked, _) = try await other.call("get_issue", ["issue": "WEB-1"])
        #expect(blocked.status == 403 && blocked.errorCode == "owner_blocked")
        let setup = try await HTTP.send("GET", server.url + "/api/v1/agent-session/setup", headers: other.authorization)
        #expect(setup.status == 403 && setup.errorCode == "owner_blocked")
        try server.admin(["owner", "unblock", "alice"])
        // Blocking ended the session: the token from before the block stays dead after the unblock
        // (issue 11: unblocking revived it), and the device mints a new one with its key.
        let (stale, _) = try await other.call("get_issue", ["issue": "WEB-1"])
        #expect(stale.status == 401 && stale.errorCode == "session_ended", "\(stale.status) \(stale.errorCode ?? "")")
        var renewed = other
        try await renewed.newSession()
        #expect(try await renewed.call("get_issue", ["issue": "WEB-1"]).1.isToolSuccess)
    }

    @Test func sessionTTLAndRateFlags() async throws {
        // 5 s: long enough that the first call lands inside it on a loaded machine (1 s did not).
        let server = try await GatewayProcess.start(extraArguments: ["--session-ttl", "5", "--read-rate", "2"])
        defer { server.stop() }
        let (_, code) = try server.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        #expect(try await client.call("list_projects").1.isToolSuccess)
        try await Task.sleep(for: .milliseconds(5500))
        let (expired, _) = try await client.call("list_projects")
        #expect(expired.status == 401 && expired.errorCode == "token_expired")
        #expect(expired.json["error"]?["retryable"]?.boolValue == true)
    }

    @Test func committedWritesSurviveKillNine() async throws {
        let server = try await GatewayProcess.start()
        let (_, code) = try server.newAgent(scopes: [Scope.projectRead, Scope.issueCreate])
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        var keys: [String] = []
        for index in 0..<20 {
            let result = try await client.call("create_issue", ["project": "WEB", "title": .string("durable \(index)")], idempotencyKey: ULID().text)
                .1
            keys.append(try #require(result["structuredContent"]?["issue"]?["key"]?.stringValue))
        }
        server.stop(signal: SIGKILL)
        let store = try SQLiteGatewayStore(path: server.database)
        #expect(try store.journalMode() == "wal")
        let titles = try await store.read { store in
            let web = try store.project(key: "WEB")!
            return try store.searchIssues(IssueQuery(projectID: web.id, text: "durable", afterNumber: 0, limit: 100)).map(\.title)
        }
        #expect(titles.count == 20)
    }

    @Test func adminErrorsSayWhatToDo() throws {
        let directory = temporaryDirectory()
        let database = directory + "/gateway.sqlite"
        try runGatewayCommand(["seed-demo", "--db", database])
        #expect(throws: TestFailure.self) {
            try runGatewayCommand([
                "agent", "create", "--db", database, "--owner", "alice", "--name", "x", "--project", "WEB", "--scope", "issue:delete",
            ])
        }
        #expect(throws: TestFailure.self) {
            try runGatewayCommand([
                "agent", "create", "--db", database, "--owner", "zed", "--name", "x", "--project", "WEB", "--scope", "project:read",
            ])
        }
        #expect(throws: TestFailure.self) { try runGatewayCommand(["agent", "pair", "--db", database, "agt_nope"]) }
        #expect(try runGatewayCommand(["seed-demo", "--db", database, "--json"]).contains("\"seeded\":false"))
    }
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var index = 0
    let last = haystack.count - needle.count
    while index <= last {
        if haystack[index] == first && haystack[index..<index + needle.count].elementsEqual(needle) { return true }
        index += 1
    }
    return false
}
