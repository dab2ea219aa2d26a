import AgentWire
import Foundation
import GatewayCore
import Synchronization
import TestSupport
import Testing

/// `kill -9` of the real `agent-gateway` in the middle of a burst of writes, several times over one
/// database: no acknowledged write is lost, nothing is half applied (the tracker, the idempotency
/// records and the audit agree), and retrying every write with its key yields exactly one change each.
@Suite("agent-gateway: kill -9 during a burst of writes")
struct CrashTests {
    /// What the writers saw: keys sent, and keys whose result came back.
    final class Ledger: Sendable {
        let state = Mutex<(attempted: [String: String], acknowledged: [String: String])>(([:], [:]))
        /// - Parameter tool: `create_issue` or `comment_issue`.
        func attempted(_ key: String, tool: String) { state.withLock { $0.attempted[key] = tool } }
        func acknowledged(_ key: String, result: String) { state.withLock { $0.acknowledged[key] = result } }
        var attempted: [String: String] { state.withLock { $0.attempted } }
        var acknowledged: [String: String] { state.withLock { $0.acknowledged } }
    }

    static func arguments(for key: String, tool: String) -> JSONValue {
        tool == "create_issue"
            ? ["project": "WEB", "title": .string(key), "description": "written in a burst"]
            : ["issue": "WEB-1", "body": .string(key)]
    }

    /// Runs `writers` concurrent writers until the server dies (or each has written `limit` times).
    static func burst(client: AgentClient, round: Int, writers: Int, limit: Int, ledger: Ledger) async {
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for index in 0..<limit {
                        let key = "crash-r\(round)-w\(writer)-n\(index)"
                        let tool = index % 3 == 2 ? "comment_issue" : "create_issue"
                        ledger.attempted(key, tool: tool)
                        guard let (answer, result) = try? await client.call(tool, arguments(for: key, tool: tool), idempotencyKey: key),
                            answer.status == 200, result.isToolSuccess
                        else { return }
                        let id =
                            result["structuredContent"]?["issue"]?["id"]?.stringValue ?? result["structuredContent"]?["comment"]?["id"]?.stringValue
                        ledger.acknowledged(key, result: id ?? "")
                    }
                }
            }
        }
    }

    /// One query through the sqlite3 shell, rows as lines.
    static func sql(_ database: String, _ statement: String) throws -> [String] {
        let result = try Command.runBlocking("/usr/bin/sqlite3", [database, statement], environment: [:], mergeStderr: true, timeout: .seconds(30))
        guard result.status == 0 else { throw TestFailure("sqlite3: \(result.stdout)") }
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// The tracker, the idempotency records and the audit agree, for one agent.
    static func checkConsistency(_ database: String, agentID: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try sql(database, "PRAGMA integrity_check") == ["ok"], sourceLocation: sourceLocation)
        let agent = "'\(agentID)'"
        let issues = try sql(database, "SELECT id FROM issue WHERE createdByAgentID = \(agent)")
        let issueRecords = try sql(
            database,
            "SELECT json_extract(result, '$.structuredContent.issue.id') FROM idempotencyRecord WHERE agentID = \(agent) AND tool = 'create_issue'")
        let issueAudit = try sql(
            database,
            "SELECT json_extract(targetIDs, '$[0]') FROM auditEvent WHERE agentID = \(agent) AND tool = 'create_issue' AND outcome = 'ok'")
        #expect(issues.count == Set(issues).count, sourceLocation: sourceLocation)
        #expect(Set(issues) == Set(issueRecords) && issues.count == issueRecords.count, "issues vs records", sourceLocation: sourceLocation)
        #expect(Set(issues) == Set(issueAudit) && issues.count == issueAudit.count, "issues vs audit", sourceLocation: sourceLocation)

        let comments = try sql(database, "SELECT id FROM comment WHERE authorAgentID = \(agent)")
        let commentRecords = try sql(
            database,
            "SELECT json_extract(result, '$.structuredContent.comment.id') FROM idempotencyRecord WHERE agentID = \(agent) AND tool = 'comment_issue'"
        )
        let commentAudit = try sql(
            database,
            "SELECT json_extract(targetIDs, '$[1]') FROM auditEvent WHERE agentID = \(agent) AND tool = 'comment_issue' AND outcome = 'ok'")
        #expect(Set(comments) == Set(commentRecords) && comments.count == commentRecords.count, "comments vs records", sourceLocation: sourceLocation)
        #expect(Set(comments) == Set(commentAudit) && comments.count == commentAudit.count, "comments vs audit", sourceLocation: sourceLocation)

        // The issue-number counter moved exactly with the issues.
        let counter = try sql(
            database,
            "SELECT p.nextIssueNumber = (SELECT max(number) + 1 FROM issue WHERE projectID = p.id) FROM project p WHERE p.key = 'WEB'")
        #expect(counter == ["1"], sourceLocation: sourceLocation)
        #expect(try sql(database, "SELECT title FROM issue GROUP BY projectID, title HAVING count(*) > 1").isEmpty, sourceLocation: sourceLocation)
    }

    @Test("acknowledged writes survive, nothing is half applied, retries replay", arguments: ["normal", "full"])
    func killNineDuringBurst(durability: String) async throws {
        var server = try await GatewayProcess.start(extraArguments: ["--durability", durability, "--write-rate", "100000"])
        let database = server.database
        let (agentID, code) = try server.newAgent(scopes: [Scope.projectRead, Scope.issueCreate, Scope.issueComment])
        var client = try await AgentClient.pair(baseURL: server.url, code: code)
        let ledger = Ledger()
        var killedMidBurst = 0
        for round in 1...3 {
            let burst = Task { [client] in await Self.burst(client: client, round: round, writers: 16, limit: 60, ledger: ledger) }
            try await Task.sleep(for: .milliseconds(Int.random(in: 150...600)))
            server.stop(signal: SIGKILL)
            await burst.value
            let sent = ledger.attempted.keys.filter { $0.hasPrefix("crash-r\(round)-") }.count
            if sent < 16 * 60 { killedMidBurst += 1 }

            server = try await GatewayProcess.start(
                extraArguments: ["--durability", durability, "--write-rate", "100000"], database: database, seed: false)
            try Self.checkConsistency(database, agentID: agentID)

            // Every acknowledged write is there.
            let titles = Set(try Self.sql(database, "SELECT title FROM issue"))
            let bodies = Set(try Self.sql(database, "SELECT body FROM comment"))
            for (key, tool) in ledger.attempted where ledger.acknowledged[key] != nil {
                #expect(tool == "create_issue" ? titles.contains(key) : bodies.contains(key), "acknowledged \(key) was lost")
            }

            // The session survives the restart; the MCP session does not.
            client = AgentClient(baseURL: server.url, deviceID: client.deviceID, key: client.key, token: client.token)
            try await client.initialize()
            // Retry everything this round sent, with the same keys: committed ones replay.
            for (key, tool) in ledger.attempted where key.hasPrefix("crash-r\(round)-") {
                let (answer, result) = try await client.call(tool, Self.arguments(for: key, tool: tool), idempotencyKey: key)
                #expect(answer.status == 200 && result.isToolSuccess, "\(key): \(answer.status) \(result)")
                let id = result["structuredContent"]?["issue"]?["id"]?.stringValue ?? result["structuredContent"]?["comment"]?["id"]?.stringValue
                if let before = ledger.acknowledged[key] {
                    #expect(result["_meta"]?["io.agent-gateway/replayed"] == true, "\(key) was acknowledged, so it must replay")
                    #expect(id == before, "\(key): the replay names another record")
                }
            }
            try Self.checkConsistency(database, agentID: agentID)
            let created = ledger.attempted.filter { $0.value == "create_issue" }.count
            let commented = ledger.attempted.count - created
            #expect(try Self.sql(database, "SELECT count(*) FROM issue WHERE createdByAgentID = '\(agentID)'") == ["\(created)"])
            #expect(try Self.sql(database, "SELECT count(*) FROM comment WHERE authorAgentID = '\(agentID)'") == ["\(commented)"])
        }
        server.stop()
        #expect(killedMidBurst >= 2, "the kill came after the burst had finished in \(3 - killedMidBurst) of 3 rounds")
    }
}
